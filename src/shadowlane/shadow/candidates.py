"""Candidate adapters: what a shadow worker replays envelopes against.

- :class:`OpenAICandidate`: any OpenAI-compatible ``/v1/chat/completions`` server (vLLM, Ollama,
  LiteLLM, OpenAI). Every request carries the shadow marker header so the candidate side can
  segregate caches, logs and billing, and a traced replay's W3C ``traceparent`` / ``tracestate``
  (:func:`shadowlane.tracing.http_headers`).
- :class:`CallableCandidate`: a Python function (sync or async) taking the chat body. A sync
  function runs in a thread pool of ``threads`` workers (the worker passes its concurrency), so a
  blocking candidate never stalls the event loop; an async one runs on the loop. Either can read
  the replay's trace context with :func:`shadowlane.tracing.current`.

Both run the call inside :func:`shadowlane.hook.context.replaying`, so a hook in the same process
(a captured SDK client the function calls, a mirrored app served in process) does not mirror the
replay again; over HTTP the marker header says the same to the candidate's own hook.

A reply carries the answer, its tool calls, token usage, the model the server says answered and,
when the response has a top-level ``citations`` list (ids, or objects with an ``id``), the cited ids.
It also carries the pins it says it served with (:mod:`shadowlane.compare.pins`): the configured
response headers of an HTTP candidate (``pin_headers``; a missing one recorded empty), and a
top-level ``served_pins`` object of the response, which is how a Python function reports them.
A RAG candidate reports what it retrieved in a top-level ``retrieved`` list (ids, or objects with
an ``id`` and a ``text``), which the comparator judges for retrieval drift.

Failures are classified into :class:`CandidateError` with an ``error_class`` the worker records:
``rate_limited`` / ``server_error`` / ``timeout`` are retriable with back-off, the rest are not.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson
from pydantic import SecretStr

from shadowlane.compare.pins import served_value
from shadowlane.contracts.envelope import RetrievedPassage
from shadowlane.hook.context import SHADOW_HEADER as SHADOW_HEADER  # re-exported: the worker's side
from shadowlane.hook.context import raw_passages, replaying
from shadowlane.tracing import http_headers

RETRIABLE = frozenset({"rate_limited", "server_error", "timeout"})


class CandidateError(Exception):
    def __init__(self, error_class: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.retry_after_s = retry_after_s

    @property
    def retriable(self) -> bool:
        return self.error_class in RETRIABLE


@dataclass(frozen=True, slots=True)
class CandidateReply:
    """The assistant message of one chat turn, plus token usage when the server reports it."""

    content: str | None
    tool_calls: tuple[dict[str, Any], ...]
    usage: Mapping[str, int] | None
    model: str | None = None
    cited_ids: tuple[str, ...] = ()
    served_pins: Mapping[str, str] = field(default_factory=dict)  # the reply's pins (headers, body)
    retrieved: tuple[RetrievedPassage, ...] = ()  # what the reply says it retrieved


class Candidate(Protocol):
    name: str

    async def chat(self, body: dict[str, Any]) -> CandidateReply: ...

    async def aclose(self) -> None: ...


def parse_reply(data: Any) -> CandidateReply:
    """Read an OpenAI chat-completions response object; raise ``invalid_response`` otherwise."""
    try:
        message = data["choices"][0]["message"]
        content = message.get("content")
        calls = tuple(message.get("tool_calls") or ())
        usage = data.get("usage")
        model = data.get("model")
        citations = data.get("citations")
        reported = data.get("served_pins")
        retrieved = data.get("retrieved")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise CandidateError("invalid_response", "not a chat-completions response") from None
    if content is not None and not isinstance(content, str):
        raise CandidateError("invalid_response", "message.content is not a string")
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            raise CandidateError("invalid_response", "tool_calls must be objects with a function object")
    return CandidateReply(
        content,
        calls,
        usage if isinstance(usage, dict) else None,
        model if isinstance(model, str) else None,
        citation_ids(citations),
        reported_pins(reported),
        retrieved_passages(retrieved),
    )


def retrieved_passages(value: Any) -> tuple[RetrievedPassage, ...]:
    """The passages of a response's top-level ``retrieved`` list (ids, or objects with an ``id``
    and a ``text``: :func:`~shadowlane.hook.context.raw_passages`); anything else gives none."""
    if not isinstance(value, list):
        return ()
    return tuple(RetrievedPassage(id=p.id, text=p.text) for p in raw_passages(value))


def reported_pins(value: Any) -> dict[str, str]:
    """The pins a reply reports itself (a top-level ``served_pins`` object: a Python candidate's
    way to say what it served with); values recorded as :func:`~shadowlane.compare.pins.served_value`,
    anything that is no object gives none."""
    if not isinstance(value, dict):
        return {}
    return {str(key): served_value(v) for key, v in value.items() if isinstance(key, str) and key}


def header_pins(headers: Mapping[str, str], pin_headers: Mapping[str, str]) -> dict[str, str]:
    """``pin name -> value`` of the configured response headers (``header -> pin name``); a header
    the response lacks is recorded as absent (the empty string), so the check counts it."""
    return {pin: served_value(headers.get(header)) for header, pin in pin_headers.items()}


def citation_ids(citations: Any) -> tuple[str, ...]:
    """Ids from a response's ``citations`` list: strings, or objects with a string/int ``id``.

    Anything else (not a list, entries of other shapes) is ignored; repeats are kept once, in order.
    """
    if not isinstance(citations, list):
        return ()
    ids: dict[str, None] = {}
    for item in citations:
        value = item.get("id") if isinstance(item, dict) else item
        if isinstance(value, bool):
            continue
        if isinstance(value, str | int) and str(value):
            ids.setdefault(str(value), None)
    return tuple(ids)


class OpenAICandidate:
    """Calls an OpenAI-compatible server. One pooled HTTP client per worker."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        model: str | None = None,
        api_key: SecretStr | None = None,
        timeout_s: float = 30.0,
        max_connections: int = 64,
        pin_headers: Mapping[str, str] | None = None,
    ) -> None:
        """``pin_headers``: response header -> pin name, recorded in each reply's served pins."""
        self.name = name
        self._model = model
        self._pin_headers = {h.lower(): pin for h, pin in (pin_headers or {}).items()}
        headers = {SHADOW_HEADER: "1", "content-type": "application/json"}
        if api_key is not None:
            headers["authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def chat(self, body: dict[str, Any]) -> CandidateReply:
        if self._model:
            body = {**body, "model": self._model}
        try:
            with replaying():
                resp = await self._client.post(
                    "/v1/chat/completions", content=orjson.dumps(body), headers=http_headers() or None
                )
        except httpx.TimeoutException as exc:
            raise CandidateError("timeout", f"candidate timed out: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise CandidateError("server_error", f"candidate unreachable: {exc!r}") from None
        if resp.status_code == 429:
            raise CandidateError("rate_limited", "HTTP 429", _retry_after(resp.headers.get("retry-after")))
        if resp.status_code >= 500:
            raise CandidateError(
                "server_error", f"HTTP {resp.status_code}", _retry_after(resp.headers.get("retry-after"))
            )
        if resp.status_code >= 400:
            raise CandidateError("client_error", f"HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            data = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise CandidateError("invalid_response", "response is not JSON") from None
        reply = parse_reply(data)
        if self._pin_headers:  # configured headers win over pins the body reports
            pins = {**reply.served_pins, **header_pins(resp.headers, self._pin_headers)}
            reply = dataclasses.replace(reply, served_pins=pins)
        return reply

    async def aclose(self) -> None:
        await self._client.aclose()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


ChatFn = Callable[[dict[str, Any]], Any | Awaitable[Any]]


class CallableCandidate:
    """Wraps a Python function returning a chat-completions dict, a plain string, or an awaitable."""

    def __init__(self, name: str, fn: ChatFn, *, threads: int = 8) -> None:
        self.name = name
        self._fn = fn
        self._threads = max(threads, 1)
        self._pool: ThreadPoolExecutor | None = None
        self._on_loop = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 (an object whose __call__ is async)
        )

    def _run_sync(self, body: dict[str, Any]) -> Awaitable[Any]:
        """``fn(body)`` in the pool, with this context (the replay marker) carried into the thread."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=f"candidate-{self.name}")
        context = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(self._pool, context.run, self._fn, body)

    async def chat(self, body: dict[str, Any]) -> CandidateReply:
        try:
            with replaying():
                result = self._fn(body) if self._on_loop else await self._run_sync(body)
                if inspect.isawaitable(result):
                    result = await result
        except CandidateError:
            raise
        except TimeoutError as exc:
            raise CandidateError("timeout", f"candidate timed out: {exc}") from None
        except Exception as exc:
            raise CandidateError("exception", f"{type(exc).__name__}: {exc}") from None
        if isinstance(result, str):
            return CandidateReply(result, (), None)
        return parse_reply(result)

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
