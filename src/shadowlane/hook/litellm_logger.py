"""A LiteLLM callback that mirrors what a LiteLLM SDK call, router or proxy serves.

``litellm.callbacks = [ShadowLiteLLMLogger(publisher)]``: LiteLLM calls ``log_success_event``
(sync calls, on its logging thread) or ``async_log_success_event`` (async calls, on the caller's
event loop) once per successful chat completion, streams included (with the re-assembled
response). The callback takes the same decisions as the other capture points
(:mod:`shadowlane.hook.capture`): a replay is skipped, the sampling decision comes before anything
is copied, and the capture is an O(1) ``publish`` that never raises into LiteLLM.

The request is what the proxy's client sent when LiteLLM runs as a proxy (its
``proxy_server_request`` body, as the ASGI middleware would have captured it), else the model,
messages and the call's OpenAI parameters. Headers (request id, tenant, trace id, the shadow
marker) are read from the proxy request and from the call's ``extra_headers``; without a request
id header the ``litellm_call_id`` is used. Failed calls are not mirrored (LiteLLM reports them
through other hooks). This module imports ``litellm``: only import it where LiteLLM is installed.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from shadowlane.hook.capture import DEFAULT_HEADERS, HeaderNames, HeaderSources, begin_client_call, to_json
from shadowlane.hook.publisher import ShadowPublisher

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
_NOT_SENT = frozenset({"extra_body", "extra_headers", "stream_options"})


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _proxy_request(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_mapping(kwargs.get("litellm_params")).get("proxy_server_request"))


def header_sources(kwargs: Mapping[str, Any]) -> HeaderSources:
    """Where LiteLLM keeps the headers of a call: the proxy's incoming request, the SDK call's
    ``extra_headers`` and the headers it sent."""
    params = _mapping(kwargs.get("litellm_params"))
    additional = _mapping(kwargs.get("additional_args"))
    return (
        _proxy_request(kwargs).get("headers"),
        _mapping(params.get("metadata")).get("headers"),
        _mapping(additional.get("complete_input_dict")).get("extra_headers"),
        additional.get("headers"),
    )


def request_body(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The chat-completions request of a LiteLLM call (see the module docstring)."""
    proxied = _proxy_request(kwargs).get("body")
    if isinstance(proxied, Mapping) and isinstance(proxied.get("messages"), list):
        return dict(proxied)
    optional = _mapping(kwargs.get("optional_params"))
    body: dict[str, Any] = {"model": kwargs.get("model"), "messages": kwargs.get("messages")}
    body.update((k, v) for k, v in optional.items() if k not in _NOT_SENT)
    body.update(_mapping(optional.get("extra_body")))
    return body


def _latency_ms(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime.datetime) and isinstance(end, datetime.datetime):
        return max((end - start).total_seconds() * 1000.0, 0.0)
    return None


class ShadowLiteLLMLogger(CustomLogger):
    """Mirrors every successful chat completion LiteLLM serves to ``publisher``.

    ``autostart=True`` starts the publisher on the first async event, on LiteLLM's event loop
    (for a LiteLLM proxy, where the callback is built before any loop runs).
    """

    def __init__(
        self,
        publisher: ShadowPublisher,
        *,
        endpoint: str = ENDPOINT,
        tenant: str = "default",
        headers: HeaderNames = DEFAULT_HEADERS,
        autostart: bool = False,
    ) -> None:
        super().__init__()
        self.publisher = publisher
        self.endpoint, self.tenant, self.names, self.autostart = endpoint, tenant, headers, autostart

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.capture(kwargs, response_obj, start_time, end_time)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        if self.autostart:
            await self.publisher.start()  # idempotent
        self.capture(kwargs, response_obj, start_time, end_time)

    def capture(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        """Hand one finished LiteLLM call to the publisher, or count why not; never raises."""
        if not isinstance(kwargs, Mapping):
            return
        call_id = kwargs.get("litellm_call_id")
        call = begin_client_call(
            self.publisher,
            header_sources(kwargs),
            request=lambda: request_body(kwargs),
            endpoint=self.endpoint,
            tenant=self.tenant,
            names=self.names,
            req_id=call_id if isinstance(call_id, str) else None,
        )
        if call is None:
            return
        try:
            response = to_json(kwargs.get("complete_streaming_response") or response_obj)
        except Exception:
            call.drop("dropped_invalid")
            log.exception("shadow capture could not read the LiteLLM response; call not mirrored")
            return
        call.publish(response, latency_ms=_latency_ms(start_time, end_time))
