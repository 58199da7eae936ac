"""The demo's model server behind a load balancer that names the revisions it served: every
answer carries the model revision in ``model`` and the index revision in a response header, and a
chosen share of requests is answered by a stale replica (another model and index revision), or by
one that drops the header. For pin-verification tests (``shadowlane.compare.pins``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from shadowlane.demo.asgi_util import Receive, Scope, Send, read_body
from shadowlane.demo.model_server import ModelBehaviour, model_app

INDEX_HEADER = "x-index-hash"
Pick = Callable[[dict[str, Any]], bool]


def never(body: dict[str, Any]) -> bool:
    return False


def user_number(body: dict[str, Any]) -> int:
    """The number ending the last user message (``"hello 17"`` → 17), else -1."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            tail = str(message.get("content") or "").rsplit(" ", 1)[-1]
            return int(tail) if tail.isdigit() else -1
    return -1


@dataclass
class PinnedModel:
    """An ASGI app: the demo model, its answers stamped with the revisions that served them."""

    model: str = "grammar-b@v0.3.0"
    index: str = "conj-table-v1"
    stale: Pick = never  # answered by the stale replica
    stale_model: str = "grammar-b@v0.2.9"
    stale_index: str = "conj-table-v0"
    headerless: Pick = never  # answered by a replica that drops the index header
    behaviour: ModelBehaviour = field(default_factory=lambda: ModelBehaviour("grammar-b", latency_ms=0))
    stale_answers: int = 0

    def __post_init__(self) -> None:
        self._inner = model_app(self.behaviour)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        raw = await read_body(receive)
        body = orjson.loads(raw) if raw else {}
        stale, headerless = self.stale(body), self.headerless(body)
        self.stale_answers += stale
        sent: list[Any] = []

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        async def keep(message: Any) -> None:
            sent.append(message)

        await self._inner(scope, replay, keep)
        start, payload = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
        if start["status"] == 200:
            data = orjson.loads(payload)
            data["model"] = self.stale_model if stale else self.model
            payload = orjson.dumps(data)
        headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(payload)).encode()))
        if not headerless:
            headers.append((INDEX_HEADER.encode(), (self.stale_index if stale else self.index).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": payload})
