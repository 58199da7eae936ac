"""The slim projection of a request envelope that the comparator keeps while a pair waits.

A decoded 1.2 KB envelope is ~11 KB of Python objects, most of it the request (messages, tool
definitions) that no comparison reads. The join keeps only what a ``Comparison`` needs: ids,
event time, endpoint, tenant, pins, the prod answer / latency / status / model / token usage /
cited ids, the gold label, and the prod tool calls as ``(name, canonical arguments)`` keys (a
set, and in call order: the agent's steps).

:meth:`ProdSide.decode_python` reads a record (its value and key) with the one check every
consumer of the requests topic applies, :func:`~shadowlane.contracts.request_check.check_request`
(the whole contract, ``req_hash`` recomputed, the key), and keeps the projection: a record the
shadow workers dead-letter is dead-lettered here too, with the same reason.

The native hot path (``shadowlane_native``, Rust, built from ``native/`` by ``make``) applies the
same checks straight to the bytes and keeps the projection as Rust values while the request
waits in the join (:func:`read_request`); :func:`as_side` makes them Python objects for the pairs
the Python builder handles. It vouches only for records it is sure of and answers ``None`` for
anything else (a value pydantic would coerce, a repeated key, a float inside the request or tool
arguments, a broken record), which then takes the Python check. Tests hold the two paths equal on
generated and mutated records (``tests/unit/compare/test_prod_side_native.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from shadowlane.compare.quality import tool_key
from shadowlane.compare.retrieval import question_text
from shadowlane.contracts.envelope import RequestEnvelope, RetrievedPassage
from shadowlane.contracts.request_check import check_request

if TYPE_CHECKING:
    from shadowlane_native import NativeProjection, NativeRequest


def _native_reader() -> Callable[[bytes, bytes | None], NativeRequest | None] | None:
    try:
        from shadowlane_native import parse_request
    except ImportError:  # `make` always builds it; a bare `pip install .` does not
        return None
    return parse_request


NATIVE_REQUESTS = _native_reader()
"""The native reader, or None when ``shadowlane_native`` is not installed (the comparator warns
at start-up when it runs without it)."""

Request: TypeAlias = "ProdSide | NativeRequest"
"""A request as the join holds it: the native reader's record, or (for a record that reader
declines, or without it) the Python projection."""


def read_request(data: bytes | None, key: bytes | None) -> Request:
    """The join's record of a requests-topic record (value and key); :class:`DecodeError` as
    :func:`~shadowlane.contracts.request_check.check_request` gives it."""
    if data is not None and NATIVE_REQUESTS is not None:
        record = NATIVE_REQUESTS(data, key)
        if record is not None:
            return record
    return ProdSide.decode_python(data, key)


def as_side(env: Request) -> ProdSide:
    """The Python projection of a join record (the native one's fields made Python objects)."""
    return env if isinstance(env, ProdSide) else ProdSide.from_native(env.fields())


# Slotted but not frozen: a frozen dataclass's __init__ costs ~5× more (one object.__setattr__
# per field), and these are built once per request on the comparator's hot path. Nothing
# mutates them after construction.
@dataclass(slots=True)
class ProdSummary:
    answer: str | None
    latency_ms: float
    status: int
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cited_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class Gold:
    answer: str | None
    cited_ids: tuple[str, ...]


@dataclass(slots=True)
class ProdSide:
    req_id: str
    req_hash: str
    ts_ms: int
    endpoint: str
    tenant: str
    pins: dict[str, str]
    prod: ProdSummary
    # this turn's calls (tool_io after the conversation history's, which the replay resends and
    # does not call again): tool agreement and matched calls read them
    tool_keys: frozenset[tuple[str, str]]
    # this turn's calls in the order made (tool_io after the conversation history's): the agent's steps
    tool_steps: tuple[tuple[str, str], ...]
    gold: Gold | None = None
    buckets: dict[str, str] = field(default_factory=dict)
    candidate_served: bool = False  # a rollout's candidate arm served it: no shadow replays it
    served_pins: dict[str, str] = field(default_factory=dict)  # what prod's response said it served
    # retrieval drift: the question each arm's retrieval is judged on, and prod's retrieval
    question: str | None = None  # the last user message's text (retrieval.question_text)
    paraphrases: tuple[str, ...] = ()
    retrieved: tuple[RetrievedPassage, ...] = ()

    @staticmethod
    def decode(data: bytes | None, key: bytes | None) -> ProdSide:
        """The projection of a requests-topic record; :class:`DecodeError` as ``check_request``
        gives it."""
        return as_side(read_request(data, key))

    @classmethod
    def decode_python(cls, data: bytes | None, key: bytes | None) -> ProdSide:
        """:meth:`decode` through ``check_request`` alone: the reference the native path is held to."""
        return cls.of(check_request(data, key))

    @classmethod
    def from_native(cls, fields: NativeProjection) -> ProdSide:
        (req_id, req_hash, ts_ms, endpoint, tenant, pins, answer, latency_ms, status, model,
         prompt, completion, cited, tool_keys, gold, buckets, served, question,
         paraphrases, served_pins, retrieved, history) = fields  # fmt: skip
        return cls(
            req_id,
            req_hash,
            ts_ms,
            endpoint,
            tenant,
            pins,
            ProdSummary(answer, latency_ms, status, model, prompt, completion, cited),
            frozenset(tool_keys[history:]),
            tool_keys[history:],  # the native reader gives them in order
            None if gold is None else Gold(*gold),
            buckets,
            served,
            served_pins,
            question,
            paraphrases,
            tuple(RetrievedPassage.trusted({"id": i, "text": t}) for i, t in retrieved) if retrieved else (),
        )

    @classmethod
    def of(cls, env: RequestEnvelope) -> ProdSide:
        usage = env.prod.usage
        # str, not the bytes orjson returns: those keep a ~4 KB buffer each alive
        steps = tuple(tool_key(c.name, c.arguments) for c in env.tool_io)
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
            tool_keys=frozenset(steps[env.history_tool_calls :]),
            tool_steps=steps[env.history_tool_calls :],
            gold=Gold(env.gold.answer, env.gold.cited_ids) if env.gold else None,
            buckets=env.buckets,
            candidate_served=env.exposure is not None and env.exposure.arm == "candidate",
            served_pins=env.prod.served_pins,
            question=question_text(env.request.messages),
            paraphrases=env.paraphrases,
            retrieved=env.prod.retrieved,
        )
