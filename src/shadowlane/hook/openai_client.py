"""Client-side capture for the official ``openai`` Python SDK: sync and async clients, streams too.

``capture_openai(client, publisher)`` wraps ``client.chat.completions.create`` on that client
instance and returns the same client (the copies it makes with ``with_options`` / ``copy`` are
captured too). Each call is decided before anything is copied (a replay is
skipped, an unsampled call counted), and a sampled call is handed to ``ShadowPublisher.publish``
after it returns: the request body exactly as the SDK sends it (the keyword arguments, minus
transport options, with ``extra_body`` merged in) and the ``chat.completion`` the model answered.
A stream is returned wrapped: the chunks pass through untouched and are published, as the
server-sent events the middleware would have copied, once the stream is exhausted or closed
after its finish reason (closed earlier, it is counted as incomplete). An error answer is mirrored
with its status; a call that fails without one is counted. The capture never raises into the
caller and never waits for the broker.

Why wrap ``create`` rather than hook the SDK's HTTP client: ``create``'s keyword arguments *are*
the chat-completions request and its result the response or chunk stream, a public contract that
has held since SDK 1.0, while the HTTP layer has not (3.x moved from httpx to httpx2), and a
transport sees a stream only as bytes it cannot tell apart from the SDK's own reads. Nothing here
imports ``openai`` until a client is captured. ``.parse()``, ``.stream()`` helpers that do not go
through ``create`` and ``with_raw_response`` are not captured.

What the caller records through :func:`shadowlane.hook.context.recording` around its calls
(pins, labels, tool calls) travels with each capture made inside that block.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from shadowlane.hook.capture import DEFAULT_HEADERS, ClientCall, HeaderNames, begin_client_call, to_json
from shadowlane.hook.publisher import ShadowPublisher

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
_TRANSPORT_ARGS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
_ORIGINAL = "__shadowlane_original__"
C = TypeVar("C")


def _sentinel_types() -> tuple[type, ...]:
    """The SDK's "argument not given" markers (``NotGiven``, and ``Omit`` where it exists)."""
    import openai

    found = (getattr(openai, "NotGiven", None), getattr(openai, "Omit", None))
    return tuple(t for t in found if isinstance(t, type))


class _Capturer:
    """Per-client configuration and the request-body rule."""

    def __init__(
        self, publisher: ShadowPublisher, client: Any, *, endpoint: str, tenant: str, names: HeaderNames
    ) -> None:
        self.publisher, self.endpoint, self.tenant, self.names = publisher, endpoint, tenant, names
        self.sentinels = _sentinel_types()
        try:  # the client's own headers: a client made for replays carries the shadow marker
            self.client_headers: Mapping[str, Any] = dict(client.default_headers)
        except Exception:
            self.client_headers = {}

    def body(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The JSON body the SDK sends for these ``create`` arguments (one-shot iterators, e.g. a
        generator of messages, are read once here and passed on as lists)."""
        for key, value in kwargs.items():
            if isinstance(value, Iterator):
                kwargs[key] = list(value)
        body = {
            k: v for k, v in kwargs.items() if k not in _TRANSPORT_ARGS and not isinstance(v, self.sentinels)
        }
        extra = kwargs.get("extra_body")
        if isinstance(extra, Mapping):
            body.update(extra)
        return body

    def begin(self, kwargs: dict[str, Any]) -> ClientCall | None:
        return begin_client_call(
            self.publisher,
            (kwargs.get("extra_headers"), self.client_headers),
            request=lambda: self.body(kwargs),
            endpoint=self.endpoint,
            tenant=self.tenant,
            names=self.names,
        )


class _StreamTap:
    """What a wrapped stream has delivered so far; publishes once, when the stream ends."""

    __slots__ = ("call", "chunks", "finished")

    def __init__(self, call: ClientCall) -> None:
        self.call = call
        self.chunks: list[Any] = []
        self.finished = False  # exhausted, or a choice reported its finish reason

    def add(self, chunk: Any) -> None:
        self.chunks.append(chunk)
        if not self.finished:
            self.finished = any(
                getattr(c, "finish_reason", None) for c in getattr(chunk, "choices", ()) or ()
            )

    def end(self) -> None:
        self.finished = True
        self.close()

    def close(self) -> None:
        if self.call.done:
            return
        if not self.finished:
            self.call.drop("dropped_incomplete")
            return
        try:
            events = [b"data: " + to_json(chunk) + b"\n\n" for chunk in self.chunks]
        except Exception:
            self.call.drop("dropped_invalid")
            log.exception("shadow capture could not read a streamed chunk; call not mirrored")
            return
        self.chunks = []
        self.call.publish(b"".join(events) + b"data: [DONE]\n\n")

    def broke(self) -> None:
        self.call.drop("dropped_incomplete")


class _Tapped:
    """A stream passed through a :class:`_StreamTap`; everything but iteration goes to the stream."""

    __slots__ = ("_stream", "_tap")

    def __init__(self, stream: Any, tap: _StreamTap) -> None:
        self._stream, self._tap = stream, tap

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_stream"), name)

    def __del__(self) -> None:  # abandoned without being closed: counted, never published
        with contextlib.suppress(Exception):
            object.__getattribute__(self, "_tap").close()


class CapturedStream(_Tapped):
    """A sync ``Stream`` of chunks, captured as it is iterated."""

    __slots__ = ()

    def __iter__(self) -> CapturedStream:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._stream)
        except StopIteration:
            self._tap.end()
            raise
        except BaseException:
            self._tap.broke()
            raise
        self._tap.add(chunk)
        return chunk

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._tap.close()

    def __enter__(self) -> CapturedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class CapturedAsyncStream(_Tapped):
    """An ``AsyncStream`` of chunks, captured as it is iterated."""

    __slots__ = ()

    def __aiter__(self) -> CapturedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            self._tap.end()
            raise
        except BaseException:
            self._tap.broke()
            raise
        self._tap.add(chunk)
        return chunk

    async def close(self) -> None:
        try:
            await self._stream.close()
        finally:
            self._tap.close()

    async def __aenter__(self) -> CapturedAsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _finish(call: ClientCall, result: Any, kwargs: dict[str, Any], *, is_async: bool) -> Any:
    """Publish a finished call, or wrap its stream; returns what the caller gets."""
    if kwargs.get("stream"):
        tap = _StreamTap(call)
        return CapturedAsyncStream(result, tap) if is_async else CapturedStream(result, tap)
    try:
        response = to_json(result)
    except Exception:
        call.drop("dropped_invalid")
        log.exception("shadow capture could not read the response; call not mirrored")
        return result
    call.publish(response)
    return result


def _wrap(original: Callable[..., Any], capturer: _Capturer) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(inspect.unwrap(original)):

        @functools.wraps(original)
        async def create_async(*args: Any, **kwargs: Any) -> Any:
            call = capturer.begin(kwargs)
            if call is None:
                return await original(*args, **kwargs)
            try:
                result = await original(*args, **kwargs)
            except BaseException as exc:
                call.failed(exc)
                raise
            return _finish(call, result, kwargs, is_async=True)

        return create_async

    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        call = capturer.begin(kwargs)
        if call is None:
            return original(*args, **kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        return _finish(call, result, kwargs, is_async=False)

    return create


def _replace(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Set ``owner.name`` to ``make(original)``, where original is the SDK's own method (a second
    capture replaces the first one instead of stacking on it)."""
    current = getattr(owner, name)
    original = getattr(current, _ORIGINAL, current)
    wrapped = make(original)
    setattr(wrapped, _ORIGINAL, original)
    setattr(owner, name, wrapped)


def capture_openai(
    client: C,
    publisher: ShadowPublisher,
    *,
    endpoint: str = ENDPOINT,
    tenant: str = "default",
    headers: HeaderNames = DEFAULT_HEADERS,
) -> C:
    """Mirror ``client.chat.completions.create`` (``openai.OpenAI`` or ``openai.AsyncOpenAI``).

    Returns the same client; the copies it makes (``with_options``, ``copy``) are captured too.
    The request id, tenant and trace id are read from the call's ``extra_headers`` (names in
    ``headers``; ``tenant`` when absent, a random request id when absent). Capturing a client
    twice replaces the first capture.
    """
    capturer = _Capturer(publisher, client, endpoint=endpoint, tenant=tenant, names=headers)
    _replace(client.chat.completions, "create", lambda original: _wrap(original, capturer))  # type: ignore[attr-defined]

    def copies(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def copy(*args: Any, **kwargs: Any) -> Any:
            return capture_openai(
                original(*args, **kwargs), publisher, endpoint=endpoint, tenant=tenant, headers=headers
            )

        return copy

    for name in ("copy", "with_options"):
        if callable(getattr(client, name, None)):
            _replace(client, name, copies)
    return client
