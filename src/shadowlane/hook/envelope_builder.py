"""Turns what the hook captured (raw bodies, timings, recorded tools) into a ``RequestEnvelope``.

This runs in the hook's background sender, never on the request path. It parses the request and
response bodies (JSON, or server-sent events for ``stream: true``), sanitizes everything, pairs
tool calls with their outputs, and derives ``req_hash`` from the request id and canonical payload.
Handler labels (gold answer, paraphrases, cited ids, retrieved passages) are sanitized like every
other text; prod's retrieved passages (``set_retrieved``) are written as ``prod.retrieved`` only
when set.
Prod's served pins (the response's ``model`` under ``served_model_pin``, headers the middleware
read, ``set_served_pins``) are written as ``prod.served_pins`` only when there are any.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from shadowlane.compare.pins import served_value
from shadowlane.contracts.chat import TokenUsage, ToolCall
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.errors import InvalidMessage
from shadowlane.hashing import canonical_json, req_hash, unit_hash
from shadowlane.hook.bodies import as_object, is_mapping
from shadowlane.hook.context import MAX_PARAPHRASES, RawMirror, RawPassage, RequestLabels
from shadowlane.sanitize import Sanitizer

_REQUEST_KEYS = ("model", "messages", "tools")
MAX_CITED_IDS = 64


def _cited_ids(value: Any) -> list[str]:
    """Ids from a ``citations`` list: strings, or objects with an ``id``; anything else is skipped."""
    if not isinstance(value, list):
        return []
    out: list[str] = []
    for item in value:
        ident = item.get("id") if is_mapping(item) else item
        if isinstance(ident, int) and not isinstance(ident, bool):
            ident = str(ident)
        if isinstance(ident, str) and ident:
            out.append(ident)
    return out


def _args_dict(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, str | bytes):
        try:
            parsed = orjson.loads(arguments or b"{}")
        except orjson.JSONDecodeError:
            return {"_raw": arguments if isinstance(arguments, str) else arguments.decode(errors="replace")}
        return parsed if isinstance(parsed, dict) else {"_value": parsed}
    return {"_value": arguments}


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return orjson.dumps(output, default=str).decode()


def tool_io_from_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pairs assistant ``tool_calls`` with the ``tool`` messages that answered them."""
    pending: dict[str, tuple[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for msg in messages:
        for tc in msg.get("tool_calls") or ():
            fn = tc.get("function") or {}
            pending[str(tc.get("id"))] = (str(fn.get("name", "")), fn.get("arguments", "{}"))
        if msg.get("role") == "tool" and msg.get("tool_call_id") in pending:
            name, args = pending.pop(msg["tool_call_id"])
            out.append({"name": name, "arguments": args, "output": msg.get("content") or ""})
    return out


def _check_items(messages: Any) -> None:
    """Raise ``InvalidMessage`` unless messages and their tool calls are JSON objects."""
    if not isinstance(messages, list) or not all(is_mapping(m) for m in messages):
        raise InvalidMessage("invalid_request", "messages must be a list of objects")
    for msg in messages:
        calls = msg.get("tool_calls")
        if calls is not None and (
            not isinstance(calls, list)
            or not all(is_mapping(c) and is_mapping(c.get("function", {})) for c in calls)
        ):
            raise InvalidMessage("invalid_request", "tool_calls must be a list of objects")


def _first(
    values: Sequence[str], limit: int, mask: Callable[[str | None], tuple[str | None, int]]
) -> tuple[list[str], int]:
    """Up to ``limit`` of ``values`` that ``mask`` keeps (not None), and how many it touched."""
    out: list[str] = []
    touched = 0
    for value in values:
        if len(out) >= limit:
            break
        text, n = mask(value)
        if text is not None:
            out.append(text)
            touched += n
    return out, touched


@dataclass(frozen=True, slots=True)
class EnvelopeRecord:
    """One built envelope: the exact bytes that go on the topic, checked by the contract."""

    value: bytes
    req_hash: str
    sanitized_fields: int

    @property
    def envelope(self) -> RequestEnvelope:
        """The contract object of :attr:`value` (parsed on demand: the sender needs only bytes)."""
        return RequestEnvelope.model_validate_json(self.value, strict=True)


def _native_check() -> Callable[[bytes, bytes | None], object] | None:
    try:
        from shadowlane_native import parse_request
    except ImportError:
        return None
    return parse_request


class EnvelopeBuilder:
    """Builds sanitized envelopes; one instance per hook, shared config, no I/O."""

    def __init__(
        self,
        sanitizer: Sanitizer,
        *,
        ratio: float,
        salt_id: str,
        pins: Mapping[str, str] | None = None,
        served_model_pin: str | None = None,
    ) -> None:
        """With the native sanitizer comes the native check of the bytes (see :meth:`record`).
        ``served_model_pin``: the served pin the response's ``model`` is recorded under."""
        self._sanitizer = sanitizer
        self._model_pin = served_model_pin
        self._ratio = ratio
        self._salt_id = salt_id
        self._pins = dict(pins or {})
        self._native_check = _native_check() if sanitizer.native else None

    def _clean_calls(self, calls: Any) -> tuple[list[Any], int]:
        """Sanitize tool calls whose ``function.arguments`` is a JSON string: parse, clean, re-encode,
        so secret keys inside the arguments are dropped, not just masked as text."""
        touched = 0
        out = []
        for call in calls or ():
            fn = dict(call.get("function") or {})
            args = fn.get("arguments")
            if isinstance(args, str):
                parsed = _args_dict(args)
                if "_raw" not in parsed:
                    cleaned, n = self._sanitizer.clean(parsed)
                    fn["arguments"] = orjson.dumps(cleaned).decode()
                    touched += n
            out.append({**call, "function": fn})
        return out, touched

    def build(self, raw: RawMirror) -> RequestEnvelope:
        """The envelope for ``raw``, validated by the contract (raises ``InvalidMessage``)."""
        return self.record(raw).envelope

    def record(self, raw: RawMirror) -> EnvelopeRecord:
        """The wire bytes of the envelope for ``raw``: the one wire object this builder assembles,
        serialized as it is (no model, no dump), then checked as consumers read them.

        The check: the native requests reader when it runs (the comparator's, held to
        ``check_request`` and to the contract's strict JSON mode by tests: the whole contract, the
        recomputed ``req_hash``, the key), which vouches for a record in a few microseconds; any
        record it does not vouch for, or without it, the contract itself in strict JSON mode."""
        wire, touched = self._assemble(raw)
        try:
            value = orjson.dumps(wire)
        except TypeError as exc:  # a value only Python can hold (a handler-supplied object)
            raise InvalidMessage("invalid_request", f"not JSON-serializable: {exc}") from None
        req_hash_: str = wire["req_hash"]
        check = self._native_check
        if check is None or check(value, req_hash_.encode()) is None:
            try:  # the bytes that leave, read as every consumer reads them
                RequestEnvelope.model_validate_json(value, strict=True)
            except ValidationError as exc:
                raise InvalidMessage("invalid_request", str(exc.errors()[:3])) from None
        return EnvelopeRecord(value, req_hash_, touched)

    def _assemble(self, raw: RawMirror) -> tuple[dict[str, Any], int]:
        """The wire object of the envelope (plain JSON types) and how many values were sanitized."""
        body = as_object(raw.request)
        if not is_mapping(body) or not isinstance(body.get("messages"), list):
            raise InvalidMessage("invalid_request", "request body is not a chat-completions object")
        _check_items(body["messages"])
        # the sanitizer copies what it walks; a Mapping that is no dict is made one to be walked
        clean_body, touched = self._sanitizer.clean(body if type(body) is dict else dict(body))
        for msg in clean_body["messages"]:
            if msg.get("tool_calls"):
                msg["tool_calls"], n = self._clean_calls(msg["tool_calls"])
                touched += n
            if msg.get("role") == "tool" and isinstance(msg.get("content"), str):
                msg["content"], n = self._sanitizer.clean_text(msg["content"])
                touched += n
        request = {k: clean_body[k] for k in _REQUEST_KEYS if k in clean_body}
        request["params"] = {k: v for k, v in clean_body.items() if k not in _REQUEST_KEYS}

        tools_raw: list[dict[str, Any]] = tool_io_from_messages(clean_body["messages"])
        history = len(tools_raw)  # the conversation's earlier calls: not this turn's agent steps
        for call in raw.tool_calls:
            tools_raw.append(
                {"name": call.name, "arguments": call.arguments, "output": call.output, "ok": call.ok}
            )
        tool_io = []
        for item in tools_raw:
            args, n_args = self._sanitizer.clean(_args_dict(item["arguments"]))
            raw_output = item["output"]
            if isinstance(raw_output, str):
                output, n_out = self._sanitizer.clean_text(raw_output)
            else:
                cleaned_output, n_out = self._sanitizer.clean(raw_output)
                output = _output_text(cleaned_output)
            touched += n_args + n_out
            tool_io.append(
                {"name": item["name"], "arguments": args, "output": output, "ok": item.get("ok", True)}
            )

        labels = raw.labels or RequestLabels()
        prod, n = self._prod_outcome(raw, labels.citations)
        touched += n
        gold, n = self._gold(labels)
        touched += n
        paraphrases, n = self._texts(labels.paraphrases, MAX_PARAPHRASES)
        touched += n
        buckets, n = self._buckets(labels.buckets)
        touched += n
        retrieved, n = self._retrieved(labels.retrieved)
        touched += n
        if retrieved:  # written only when set, as served pins
            prod["retrieved"] = retrieved
        served, n = self._served_pins(
            raw.status, prod["model"], labels.served_pins, {**self._pins, **raw.pins}
        )
        touched += n
        if served:  # written only when set: a record without them reads as before they existed
            prod["served_pins"] = served
        try:
            payload = canonical_json(request)
        except TypeError as exc:
            raise InvalidMessage("invalid_request", f"not JSON-serializable: {exc}") from None
        wire = {
            "schema_version": RequestEnvelope.SCHEMA_VERSION,
            "req_id": raw.req_id,
            "req_hash": req_hash(raw.req_id, payload),
            "ts_ms": raw.ts_ms,
            "endpoint": raw.endpoint,
            "tenant": raw.tenant,
            "request": request,
            "prod": prod,
            "tool_io": tool_io,
            **({"history_tool_calls": history} if history else {}),  # written only when > 0
            "pins": {**self._pins, **raw.pins},
            "trace_id": raw.trace_id,
            "sampling": {
                "ratio": self._ratio,
                "bucket": unit_hash(self._salt_id, raw.req_id) if raw.bucket is None else raw.bucket,
                "salt_id": self._salt_id,
                "sampled": True,
            },
            "sanitized_fields": touched,
            "gold": gold,
            "paraphrases": paraphrases,
            "buckets": buckets,
            "exposure": asdict(labels.exposure) if labels.exposure else None,
        }
        return wire, touched

    def _served_pins(
        self, status: int, model: str | None, reported: Mapping[str, str], expected: Mapping[str, str]
    ) -> tuple[dict[str, str], int]:
        """Prod's served pins: the response's model under the configured name, then the headers
        the middleware read and what the handler reported; none for an error answer (nothing
        was served); and how many values were masked or dropped. A value equal to the expected
        pin or to the response's model leaves as it is (the envelope carries both already); any
        other is masked as an id (:meth:`Sanitizer.mask_id`: a key or an e-mail does not leave,
        a version string is never hashed), and a secret-bearing pin name is dropped."""
        if status >= 400:
            return {}, 0
        served = {self._model_pin: model or ""} if self._model_pin else {}
        served.update(reported)
        out: dict[str, str] = {}
        touched = 0
        for key, raw_value in served.items():
            if not key:
                continue
            if self._sanitizer.secret_key(str(key)):
                touched += 1
                continue
            value = served_value(raw_value)
            if value and value != expected.get(key) and value != model:
                value, n = self._sanitizer.mask_id(value)
                touched += n
            out[str(key)] = value
        return out, touched

    def _retrieved(self, passages: Sequence[RawPassage]) -> tuple[list[dict[str, Any]], int]:
        """Prod's retrieved passages, ids and texts masked like every other text (a snippet may
        quote a customer record); a passage whose id masks to nothing is dropped."""
        out: list[dict[str, Any]] = []
        touched = 0
        for passage in passages:
            ident, n_id = self._id(passage.id)
            text, n_text = self._text(passage.text)
            if ident is not None:
                out.append({"id": ident, "text": text})
                touched += n_id + n_text
        return out, touched

    def _text(self, value: str | None) -> tuple[str | None, int]:
        """``value`` masked, and how many values the masking touched; None when missing or blank."""
        if not isinstance(value, str) or not value.strip():
            return None, 0
        return self._sanitizer.mask_text(value)

    def _id(self, value: str | None) -> tuple[str | None, int]:
        """An id masked as an id (:meth:`Sanitizer.mask_id`); None when missing or blank."""
        if not isinstance(value, str) or not value.strip():
            return None, 0
        return self._sanitizer.mask_id(value)

    def _ids(self, values: Sequence[str], limit: int = MAX_CITED_IDS) -> tuple[list[str], int]:
        """Up to ``limit`` non-blank ids of ``values``, masked as ids (see :meth:`_id`): the
        comparator masks the candidate's to the same text, strict mode included."""
        return _first(values, limit, self._id)

    def _texts(self, values: Sequence[str], limit: int = MAX_CITED_IDS) -> tuple[list[str], int]:
        """Up to ``limit`` non-blank strings of ``values``, masked (see :meth:`_text`)."""
        return _first(values, limit, self._text)

    def _buckets(self, labels: dict[str, str]) -> tuple[dict[str, str], int]:
        """Breakdown labels, values masked like any text (a label may quote the user)."""
        out: dict[str, str] = {}
        touched = 0
        for key, value in labels.items():
            text, n = self._text(value)
            if text is not None:
                out[key] = text
                touched += n
        return out, touched

    def _gold(self, labels: RequestLabels) -> tuple[dict[str, Any] | None, int]:
        gold = labels.gold
        if gold is None:
            return None, 0
        answer, n_answer = self._text(gold.answer)
        source, n_source = self._text(gold.source)
        cited, n_cited = self._ids(gold.cited_ids)
        return {"answer": answer, "cited_ids": cited, "source": source}, n_answer + n_source + n_cited

    def _prod_outcome(
        self, raw: RawMirror, citations: Sequence[str] | None = None
    ) -> tuple[dict[str, Any], int]:
        """What prod answered, sanitized like the request (answer, tool calls, error text, cited
        ids: ``citations`` when the handler set them, else the response's top-level ``citations``).

        The answer's tool calls and token usage are kept only when they fit the contract (else
        none / null): a provider's odd usage block must not cost the whole envelope."""
        resp = as_object(raw.response)
        answer: str | None = None
        calls: list[Any] = []
        usage: dict[str, int] | None = None
        model: str | None = None
        error: str | None = None
        touched = 0
        if is_mapping(resp):
            choices = resp.get("choices") or []
            if not isinstance(choices, list) or not all(is_mapping(c) for c in choices):
                raise InvalidMessage("invalid_response", "choices must be a list of objects")
            message = (choices[0].get("message") or {}) if choices else {}
            if not is_mapping(message):
                raise InvalidMessage("invalid_response", "choices[0].message must be an object")
            content = message.get("content")
            if isinstance(content, str):
                answer, touched = self._sanitizer.mask_text(content)
            raw_calls = message.get("tool_calls") or []
            if isinstance(raw_calls, list) and all(is_mapping(c) for c in raw_calls):
                cleaned, n = self._clean_calls(raw_calls)
                calls, m = self._sanitizer.clean(cleaned)
                touched += n + m
                if not all(_fits(ToolCall, tc) for tc in calls):
                    calls = []
            usage = _usage(resp.get("usage"))
            model = resp.get("model") if isinstance(resp.get("model"), str) else None
            err = resp.get("error")
            if err:
                text = str(err.get("message") if is_mapping(err) else err)[:500]
                error, n = self._sanitizer.mask_text(text)
                touched += n
        elif raw.status >= 400:
            error = f"HTTP {raw.status}"
        if citations is None:
            citations = _cited_ids(resp.get("citations")) if is_mapping(resp) else []
        cited, n = self._ids(list(dict.fromkeys(citations)))
        touched += n
        outcome = {
            "answer": answer,
            "status": raw.status,
            "latency_ms": max(raw.latency_ms, 0.0),
            "model": model,
            "tool_calls": calls,
            "usage": usage,
            "error": error,
            "cited_ids": cited,
        }
        return outcome, touched


def _fits(contract: type[BaseModel], value: Any) -> bool:
    """True when ``value`` is valid wire JSON for ``contract`` (strict, as a consumer reads it)."""
    try:
        contract.model_validate_json(orjson.dumps(value), strict=True)
    except (ValidationError, TypeError):
        return False
    return True


_USAGE_DEFAULTS: dict[str, int] = {name: f.default for name, f in TokenUsage.model_fields.items()}


def _usage(value: Any) -> dict[str, int] | None:
    """The token counts of a response's ``usage`` (its other keys, such as the providers' token
    details, are not part of the contract), or None when there are none or they are no counts.
    Counts that are plain ints are taken as they are, with the contract's defaults for the
    missing ones; anything else is left to the contract to accept or refuse."""
    if not is_mapping(value) or not value:
        return None
    counts = {k: value[k] for k in _USAGE_DEFAULTS if k in value}
    if all(type(n) is int for n in counts.values()):
        return {**_USAGE_DEFAULTS, **counts}
    try:
        return TokenUsage.model_validate(counts).model_dump()
    except ValidationError:
        return None
