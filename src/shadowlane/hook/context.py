"""Per-request recording the prod handler can feed without knowing about Kafka.

The mirroring middleware opens a :class:`MirrorContext` for each mirrored request. Handler code
that executes tools server-side calls :func:`record_tool_call` (a no-op outside a mirrored
request) so the shadow can later answer the same tool call from the recorded output, and
:func:`set_pins` to say which model / prompt / index versions served the request, and
:func:`set_served_pins` for what the serving side reported it actually used (verified against the
pins by the comparator: ``shadowlane.compare.pins``).

Handlers that know more about a request label it: :func:`set_gold` (the correct answer, for eval
traffic), :func:`set_paraphrases` (other wordings of the last user message, for λ replays),
:func:`set_citations` (the ids prod's answer cited), :func:`set_retrieved` (the passages prod's
retriever returned, for retrieval drift), :func:`set_buckets` (breakdown labels such as
tense or verb, which reports slice by) and :func:`set_exposure` (the rollout arm that served it).
Labels are kept raw here; the envelope builder sanitizes them off the request path. They travel
with the tool-call recording (:class:`Recording`), so whatever hands the recorded tool calls to
the publisher hands them too.

Client-side captures (``shadowlane.hook.openai_client``, ``shadowlane.hook.litellm_logger``) have
no request to hang a context on: code that wants pins or labels on its calls opens one with
:func:`recording` around them.

Shadow traffic is never mirrored again. A replay is recognised by :data:`SHADOW_HEADER` (every
replay request over HTTP carries it) or, in process, by :func:`in_replay`: the shadow worker runs
each candidate call inside :func:`replaying`, so a Python candidate that calls a captured client
is not republished.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

MAX_PARAPHRASES = 3
MAX_BUCKETS = 8
MAX_RETRIEVED = 32
MAX_PASSAGE_CHARS = 2_000
_NO_PINS: Mapping[str, str] = MappingProxyType({})
SHADOW_HEADER = "x-shadowlane-shadow"
"""The marker header every replay request carries; the hooks never mirror a request that has it."""


@dataclass(slots=True)
class RawToolCall:
    name: str
    arguments: Any
    output: Any
    ok: bool = True


@dataclass(frozen=True, slots=True)
class RawGold:
    """What a correct answer is, as the handler said it (not sanitized yet)."""

    answer: str | None = None
    cited_ids: tuple[str, ...] = ()
    source: str | None = None


@dataclass(frozen=True, slots=True)
class RawExposure:
    """The router's assignment for a request served under a rollout flag
    (see ``shadowlane.contracts.envelope``)."""

    flag: str
    arm: str
    served_by: str
    strategy: str
    epoch: int
    bucket: float | None = None


@dataclass(frozen=True, slots=True)
class RawPassage:
    """One passage prod's retriever returned: its id and text (not sanitized yet)."""

    id: str
    text: str | None = None


@dataclass(slots=True)
class RequestLabels:
    """What the handler knows about the request beyond its bodies (not sanitized yet)."""

    gold: RawGold | None = None
    paraphrases: tuple[str, ...] = ()
    citations: tuple[str, ...] | None = None  # None: read them from the prod response
    buckets: dict[str, str] = field(default_factory=dict)
    exposure: RawExposure | None = None
    served_pins: dict[str, str] = field(default_factory=dict)  # set_served_pins, response headers
    retrieved: tuple[RawPassage, ...] = ()  # set_retrieved: what prod's retriever returned


class MirrorContext:
    """What the handler recorded for one request. ``labels`` is None until a label is set (most
    requests set none, and the context is opened on the request path)."""

    __slots__ = ("labels", "pins", "tool_calls")

    def __init__(
        self,
        tool_calls: list[RawToolCall] | None = None,
        pins: dict[str, str] | None = None,
        labels: RequestLabels | None = None,
    ) -> None:
        self.tool_calls: list[RawToolCall] = [] if tool_calls is None else tool_calls
        self.pins: dict[str, str] = {} if pins is None else pins
        self.labels = labels

    def labelled(self) -> RequestLabels:
        """The labels, created on first use."""
        labels = self.labels
        if labels is None:
            labels = self.labels = RequestLabels()
        return labels


_CURRENT: ContextVar[MirrorContext | None] = ContextVar("shadowlane_mirror", default=None)


def open_context(ctx: MirrorContext | None = None) -> tuple[MirrorContext, object]:
    """Start recording into ``ctx`` (a new context by default) for the current request; returns
    the context and a reset token."""
    if ctx is None:
        ctx = MirrorContext()
    return ctx, _CURRENT.set(ctx)


def close_context(token: object) -> None:
    _CURRENT.reset(token)  # type: ignore[arg-type]


def current_context() -> MirrorContext | None:
    """The recording open for the current request or :func:`recording` block, if any."""
    return _CURRENT.get()


@contextmanager
def recording() -> Iterator[MirrorContext]:
    """Record pins, labels and tool calls for the client-side captures made inside this block."""
    ctx, token = open_context()
    try:
        yield ctx
    finally:
        close_context(token)


_REPLAYING: ContextVar[bool] = ContextVar("shadowlane_replaying", default=False)


@contextmanager
def replaying() -> Iterator[None]:
    """Mark the calls made inside this block (and tasks started in it) as shadow replays."""
    token = _REPLAYING.set(True)
    try:
        yield
    finally:
        _REPLAYING.reset(token)


def in_replay() -> bool:
    """True inside :func:`replaying`: whatever runs here is shadow traffic, never mirrored."""
    return _REPLAYING.get()


def record_tool_call(name: str, arguments: Any, output: Any, *, ok: bool = True) -> None:
    """Record one tool call prod executed (arguments as dict or JSON string, output as any JSON)."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.tool_calls.append(RawToolCall(name, arguments, output, ok))


def set_pins(pins: Mapping[str, str]) -> None:
    """Record the version pins (model_rev, prompt_ver, index_hash, ...) that served this request."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.pins.update(pins)


def set_served_pins(pins: Mapping[str, str]) -> None:
    """Record the pins prod's response actually served with (what the model, prompt store or index
    reported); the comparator checks them against :func:`set_pins`'. A blank value counts as
    absent: a mismatch for that pin. They win over the ones the hook reads from the response."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.labelled().served_pins.update(pins)


def _strings(values: Sequence[str]) -> tuple[str, ...]:
    """Non-empty strings of ``values`` in order, duplicates removed (a bare string is one value)."""
    items = (values,) if isinstance(values, str) else values
    return tuple(dict.fromkeys(v for v in items if isinstance(v, str) and v.strip()))


def set_gold(answer: str | None = None, cited_ids: Sequence[str] = (), source: str | None = None) -> None:
    """Record what a correct answer is (eval traffic): its text, the ids it must cite, the label source."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.labelled().gold = RawGold(answer, _strings(cited_ids), source)


def set_paraphrases(paraphrases: Sequence[str]) -> None:
    """Record up to three other wordings of the last user message (empty strings are skipped)."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.labelled().paraphrases = _strings(paraphrases)[:MAX_PARAPHRASES]


def set_citations(ids: Sequence[str]) -> None:
    """Record the ids prod's answer cited (otherwise the hook reads the response's ``citations``)."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.labelled().citations = _strings(ids)


def raw_passages(items: Iterable[Any]) -> tuple[RawPassage, ...]:
    """Retrieved passages from what a handler or a candidate reports, in rank order: each an id
    (a string or an integer), an ``(id, text)`` pair, or a mapping with ``id`` and ``text``. At
    most :data:`MAX_RETRIEVED` passages, texts cut at :data:`MAX_PASSAGE_CHARS` characters; blank
    ids, repeats and anything else are skipped."""
    seen: dict[str, RawPassage] = {}
    for item in items:
        if len(seen) >= MAX_RETRIEVED:
            break
        ident: Any = item
        text: Any = None
        if isinstance(item, Mapping):
            ident, text = item.get("id"), item.get("text")
        elif isinstance(item, tuple) and len(item) == 2:
            ident, text = item
        if isinstance(ident, int) and not isinstance(ident, bool):
            ident = str(ident)
        if isinstance(ident, str) and ident.strip() and ident not in seen:
            body = text[:MAX_PASSAGE_CHARS] if isinstance(text, str) and text.strip() else None
            seen[ident] = RawPassage(ident, body)
    return tuple(seen.values())


def set_retrieved(passages: Iterable[str | Mapping[str, Any] | tuple[str, str | None]]) -> None:
    """Record what prod's retriever returned for this request, in rank order: each passage an id,
    an ``(id, text)`` pair, or a mapping with ``id`` and ``text`` (:func:`raw_passages`). The
    comparator judges each arm's retrieval against the question (ΔS(question, retrieved)) and
    compares the ids with the candidate's. Texts are sanitized like every other text."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.labelled().retrieved = raw_passages(passages)


def set_buckets(**labels: str) -> None:
    """Record breakdown labels (``set_buckets(tense="past", verb="go")``); at most 8 are kept."""
    ctx = _CURRENT.get()
    if ctx is not None:
        buckets = ctx.labelled().buckets
        for key, value in labels.items():
            if isinstance(value, str) and value.strip() and len(buckets) < MAX_BUCKETS:
                buckets[key] = value


def set_exposure(exposure: RawExposure) -> None:
    """Record which rollout arm served this request (from ``shadowlane.rollout.router.assign``)."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.labelled().exposure = exposure


class RawMirror(NamedTuple):
    """Everything the hook captured for one sampled request, untouched.

    A named tuple: a capture point builds one per request on the request path, where a tuple is
    the cheapest record Python has."""

    req_id: str
    endpoint: str
    request: bytes | Mapping[str, Any]
    response: bytes | Mapping[str, Any] | None
    status: int
    latency_ms: float
    ts_ms: int
    bucket: float | None  # None: not hashed on the request path (sampling ratio 1); the sender derives it
    tenant: str = "default"
    trace_id: str | None = None
    tool_calls: Sequence[RawToolCall] = ()
    pins: Mapping[str, str] = _NO_PINS
    labels: RequestLabels | None = None  # gold, paraphrases, citations set by the handler
    tracestate: str | bytes | None = None  # W3C tracestate as received: Kafka headers only, never the body
