"""Replays one envelope against one candidate: the tool loop, retries with back-off, timing.

The candidate gets the sanitized request verbatim (messages, tools, params) with ``stream``
forced off. Each tool call it makes is answered by the :class:`ReadOnlyToolbox` and the loop
continues, up to ``max_tool_rounds``. Retriable failures (429, 5xx, timeouts) back off
exponentially with jitter, honouring ``Retry-After``; after the last attempt, or on a
non-retriable failure, the result is an error ``ShadowResult``: a candidate never crashes a worker.

Every call to the candidate, first attempt, retry or tool round alike, is admitted by ``admit``
(the worker's rate cap) right before it is made: the cap is a promise about calls, not replays.

The result names the model of the candidate's last reply (else the request's), the ids its last
reply cites (a top-level ``citations`` list), the passages it retrieved (a top-level
``retrieved`` list), and the configured pins; a baseline replayer
(the prod model replayed as a noise floor) reports the envelope's prod pins under those. It also
records the pins the last reply says it served with (:func:`served_pins`), which the comparator
checks against those (:mod:`shadowlane.compare.pins`).

A traced request (a valid W3C ``traceparent`` in its record's headers, else on the envelope) is
replayed inside a ``shadowlane.replay`` span; every candidate call carries the replay's
``traceparent``, and so does the result (:mod:`shadowlane.tracing`).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from shadowlane.compare.pins import served_value
from shadowlane.contracts.chat import TokenUsage
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult, ShadowToolCall
from shadowlane.settings import ShadowSettings
from shadowlane.shadow.candidates import Candidate, CandidateError, CandidateReply
from shadowlane.shadow.tool_schema import ValidatorCache
from shadowlane.shadow.tools import ReadOnlyToolbox, offered_schemas
from shadowlane.tracing import REPLAY_SPAN, TraceContext, Tracing


def replay_body(envelope: RequestEnvelope) -> dict[str, Any]:
    req = envelope.request
    body: dict[str, Any] = dict(req.params)
    body["stream"] = False
    body.pop("stream_options", None)
    if req.model is not None:
        body["model"] = req.model
    body["messages"] = [m.model_dump(mode="json", exclude_none=True) for m in req.messages]
    if req.tools:
        body["tools"] = [t.model_dump(mode="json", exclude_none=True) for t in req.tools]
    return body


def _add_usage(total: dict[str, int], usage: Any) -> None:
    if not usage:
        return
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(key)
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value


def result_pins(
    envelope: RequestEnvelope, configured: Mapping[str, str], *, baseline: bool
) -> dict[str, str]:
    """The pins a result reports: the configured ones, over the prod pins for the baseline."""
    return {**envelope.pins, **configured} if baseline else dict(configured)


def served_pins(reply: CandidateReply | None, model_pin: str | None) -> dict[str, str]:
    """The pins the last reply served with: its model under ``model_pin`` (absent: recorded
    empty), then what the reply reported (configured headers, a ``served_pins`` object); none
    without a reply."""
    if reply is None:
        return {}
    pins = {model_pin: served_value(reply.model)} if model_pin else {}
    return {**pins, **reply.served_pins}


class Replayer:
    """Holds one candidate and the worker's replay policy; ``replay()`` never raises CandidateError.

    ``baseline=True`` marks the noise-floor candidate: its results carry the envelope's prod pins
    (explicit ``settings.pins`` win). Tool-schema validators are cached across replays.
    """

    def __init__(
        self,
        candidate: Candidate,
        settings: ShadowSettings,
        *,
        sleep: Any = asyncio.sleep,
        baseline: bool = False,
        validators: ValidatorCache | None = None,
        admit: Callable[[], Awaitable[None]] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.candidate = candidate
        self.tracing = tracing if tracing is not None else Tracing()
        self._admit = admit
        self.settings = settings
        self.baseline = baseline
        self.validators = validators if validators is not None else ValidatorCache()
        self._sleep = sleep

    async def _call(self, body: dict[str, Any]) -> tuple[CandidateReply, int]:
        s = self.settings
        attempt = 0
        while True:
            attempt += 1
            if self._admit is not None:
                await self._admit()
            try:
                async with asyncio.timeout(s.timeout_s):
                    reply = await self.candidate.chat(body)
                return reply, attempt
            except TimeoutError:
                err = CandidateError("timeout", f"no answer within {s.timeout_s}s")
            except CandidateError as exc:
                err = exc
            err.attempts = attempt  # type: ignore[attr-defined]
            if not err.retriable or attempt >= s.max_attempts:
                raise err
            delay = min(s.backoff_max_s, s.backoff_base_s * 2 ** (attempt - 1)) * (0.5 + random.random())
            if err.retry_after_s is not None:
                delay = max(delay, min(err.retry_after_s, s.backoff_max_s))
            await self._sleep(delay)

    async def replay(self, envelope: RequestEnvelope, trace: TraceContext | None = None) -> ShadowResult:
        """The candidate's replay of ``envelope``. ``trace`` is the context the request arrived
        with (its record's headers; by default the envelope's ``trace_id``)."""
        incoming = trace if trace is not None else TraceContext.of(envelope.trace_id)
        attributes = {"shadowlane.candidate": self.candidate.name, "shadowlane.req_hash": envelope.req_hash}
        with self.tracing.hop(REPLAY_SPAN, incoming, kind="client", attributes=attributes) as hop:
            result = await self._replay(envelope, hop.traceparent)
            hop.set("shadowlane.status", result.status)
            hop.set("shadowlane.error_class", result.error_class)
        return result

    async def _replay(self, envelope: RequestEnvelope, traceparent: str | None) -> ShadowResult:
        s = self.settings
        toolbox = ReadOnlyToolbox(
            envelope.tool_io,
            readonly=s.readonly_tools,
            stubs=s.tool_stubs,
            offered=offered_schemas(envelope.request.tools),
            validators=self.validators,
        )
        body = replay_body(envelope)
        request_model = body.get("model")
        last: CandidateReply | None = None
        messages: list[dict[str, Any]] = body["messages"]
        usage: dict[str, int] = {}
        attempts = 0
        tool_log: list[ShadowToolCall] = []
        started = time.perf_counter()
        shadow_id = str(uuid.uuid4())

        def result(status: Literal["ok", "error"], **fields: Any) -> ShadowResult:
            return ShadowResult(
                req_hash=envelope.req_hash,
                req_id=envelope.req_id,
                candidate=self.candidate.name,
                pins=result_pins(envelope, s.pins, baseline=self.baseline),
                shadow_id=shadow_id,
                ts_ms=time.time_ns() // 1_000_000,
                status=status,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                attempts=max(attempts, 1),
                tool_calls=tuple(tool_log),
                usage=TokenUsage(**usage) if usage else None,
                model=(last.model if last is not None and last.model else None) or request_model,
                cited_ids=last.cited_ids if last is not None else (),
                traceparent=traceparent,
                served_pins=served_pins(last, s.served_model_pin),
                retrieved=last.retrieved if last is not None else (),
                **fields,
            )

        try:
            for _round in range(s.max_tool_rounds + 1):
                reply, used = await self._call(body)
                last = reply
                attempts += used
                _add_usage(usage, reply.usage)
                if not reply.tool_calls or _round == s.max_tool_rounds:
                    return result("ok", answer=reply.content)
                messages.append(
                    {"role": "assistant", "content": reply.content, "tool_calls": list(reply.tool_calls)}
                )
                for call in reply.tool_calls:
                    fn = call.get("function") or {}
                    resolved = toolbox.resolve(str(fn.get("name", "")), fn.get("arguments", "{}"))
                    tool_log.append(resolved)
                    messages.append(
                        {"role": "tool", "tool_call_id": call.get("id", ""), "content": resolved.output}
                    )
        except (AttributeError, TypeError, KeyError) as exc:  # a reply shaped wrongly inside the tool loop
            return result("error", error_class="invalid_response", error=f"{type(exc).__name__}: {exc}"[:500])
        except CandidateError as exc:
            attempts += getattr(exc, "attempts", 1)
            return result("error", error_class=exc.error_class, error=str(exc)[:500])
        raise AssertionError("unreachable")  # pragma: no cover
