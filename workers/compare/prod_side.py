"""The slim projection of a request envelope that the comparator keeps while a pair waits.

A decoded 1.2 KB envelope is ~11 KB of Python objects, most of it the request (messages, tool
definitions) that no comparison reads. The join keeps only what a ``Comparison`` needs: ids,
endpoint, tenant, pins, the prod answer / latency / status and the prod tool calls as
``(name, canonical arguments)`` keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.envelope import RequestEnvelope
from workers.hashing import canonical_json


@dataclass(frozen=True, slots=True)
class ProdSummary:
    answer: str | None
    latency_ms: float
    status: int


@dataclass(frozen=True, slots=True)
class ProdSide:
    req_id: str
    req_hash: str
    endpoint: str
    tenant: str
    pins: dict[str, str]
    prod: ProdSummary
    tool_keys: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, env: RequestEnvelope) -> ProdSide:
        return cls(
            req_id=env.req_id,
            req_hash=env.req_hash,
            endpoint=env.endpoint,
            tenant=env.tenant,
            pins=env.pins,
            prod=ProdSummary(env.prod.answer, env.prod.latency_ms, env.prod.status),
            # str, not the bytes orjson returns: those keep a ~4 KB buffer each alive
            tool_keys=frozenset((c.name, canonical_json(c.arguments).decode()) for c in env.tool_io),
        )
