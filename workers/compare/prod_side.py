"""The slim projection of a request envelope that the comparator keeps while a pair waits.

A decoded 1.2 KB envelope is ~11 KB of Python objects, most of it the request (messages, tool
definitions) that no comparison reads. The join keeps only what a ``Comparison`` needs: ids,
event time, endpoint, tenant, pins, the prod answer / latency / status / model / token usage /
cited ids, the gold label, and the prod tool calls as ``(name, canonical arguments)`` keys.
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
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cited_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Gold:
    answer: str | None
    cited_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProdSide:
    req_id: str
    req_hash: str
    ts_ms: int
    endpoint: str
    tenant: str
    pins: dict[str, str]
    prod: ProdSummary
    tool_keys: frozenset[tuple[str, str]]
    gold: Gold | None = None

    @classmethod
    def of(cls, env: RequestEnvelope) -> ProdSide:
        usage = env.prod.usage
        return cls(
            req_id=env.req_id,
            req_hash=env.req_hash,
            ts_ms=env.ts_ms,
            endpoint=env.endpoint,
            tenant=env.tenant,
            pins=env.pins,
            prod=ProdSummary(
                env.prod.answer,
                env.prod.latency_ms,
                env.prod.status,
                env.prod.model or env.request.model,
                usage.prompt_tokens if usage else None,
                usage.completion_tokens if usage else None,
                env.prod.cited_ids,
            ),
            # str, not the bytes orjson returns: those keep a ~4 KB buffer each alive
            tool_keys=frozenset((c.name, canonical_json(c.arguments).decode()) for c in env.tool_io),
            gold=Gold(env.gold.answer, env.gold.cited_ids) if env.gold else None,
        )
