"""``history_tool_calls``: the tool calls the hook pairs from the request's conversation history
come first in ``tool_io`` and are not this turn's agent steps (a candidate's replay sends the same
history and makes only this turn's calls). The envelopes the hook writes with history, served pins
and retrieved passages are vouched for by the native check, as plain ones are."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.prod_side import NATIVE_REQUESTS, ProdSide, as_side, read_request
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult, ShadowToolCall
from shadowlane.hashing import canonical_json
from shadowlane.hook.context import RawMirror, RawPassage, RawToolCall, RequestLabels
from shadowlane.hook.envelope_builder import EnvelopeBuilder, EnvelopeRecord
from shadowlane.sanitize import Sanitizer
from shadowlane.settings import CompareSettings

HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Conjugate 'go'."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"verb": "go"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "went"},
    {"role": "assistant", "content": "It is 'went'."},
    {"role": "user", "content": "And 'see'?"},
]


def _record(
    messages: list[dict[str, Any]],
    labels: RequestLabels | None = None,
    builder: EnvelopeBuilder | None = None,
) -> EnvelopeRecord:
    """The hook's envelope of a request with ``messages`` during which prod called lookup(see)."""
    mirror = RawMirror(
        req_id="hist-1",
        endpoint="/v1/chat/completions",
        request={"model": "tutor", "messages": messages},
        response={"model": "tutor-2", "choices": [{"message": {"role": "assistant", "content": "saw"}}]},
        status=200,
        latency_ms=20.0,
        ts_ms=1_700_000_000_000,
        bucket=0.5,
        tool_calls=(RawToolCall("lookup", {"verb": "see"}, "saw"),),
        labels=labels,
    )
    return (builder or EnvelopeBuilder(Sanitizer(), ratio=1.0, salt_id="s")).record(mirror)


def _replay(env: RequestEnvelope, calls: list[dict[str, Any]]) -> ShadowResult:
    """The candidate's replay: it answered "saw" after calling lookup with each of ``calls``."""
    made = tuple(ShadowToolCall(name="lookup", arguments=a, disposition="stubbed_recorded") for a in calls)
    return ShadowResult(
        req_hash=env.req_hash, req_id=env.req_id, candidate="cand", shadow_id="s", ts_ms=1, status="ok",
        answer="saw", latency_ms=5.0,
        tool_calls=made,
    )  # fmt: skip


def test_history_calls_are_recorded_first_and_counted() -> None:
    record = _record(HISTORY)
    env = record.envelope
    assert [(c.name, c.arguments) for c in env.tool_io] == [
        ("lookup", {"verb": "go"}),
        ("lookup", {"verb": "see"}),
    ]
    assert env.history_tool_calls == 1
    assert b'"history_tool_calls":1' in record.value


def test_without_history_calls_the_count_is_not_written() -> None:
    record = _record([{"role": "user", "content": "And 'see'?"}])
    assert record.envelope.history_tool_calls == 0
    assert b"history_tool_calls" not in record.value


@pytest.mark.parametrize("native", [True, False])
def test_a_replay_of_this_turns_one_call_has_one_prod_step(native: bool) -> None:
    """Prod's steps are this turn's calls only: one, the same as the replay's, so nothing diverges
    (counting the history's lookup(go) would make it prod's step 1 and a tool_args divergence)."""
    if native and NATIVE_REQUESTS is None:
        pytest.skip("shadowlane_native is not built")
    record = _record(HISTORY)
    key = record.req_hash.encode()
    side = as_side(read_request(record.value, key)) if native else ProdSide.decode_python(record.value, key)
    see = ("lookup", canonical_json({"verb": "see"}).decode())
    assert side.tool_steps == (see,)
    assert side.tool_keys == {see}  # tool agreement reads this turn's calls too
    builder = ComparisonBuilder(None, CompareSettings(candidates=("cand",)))
    (same,) = builder.build([_joined(side, _replay(record.envelope, [{"verb": "see"}]))])
    assert (same.prod_steps, same.shadow_steps, same.first_divergent_step) == (1, 1, None)
    assert (same.tool_agreement, same.tool_matched_prod) == (1.0, 1)  # not 1/2: history not redone
    (other,) = builder.build([_joined(side, _replay(record.envelope, [{"verb": "sea"}]))])
    assert (other.first_divergent_step, other.divergence_kind) == (1, "tool_args")


def _joined(side: ProdSide, res: ShadowResult) -> Any:
    from shadowlane.compare.join import Joined

    return Joined(side, res, [], {"cand": res})


def test_the_native_check_vouches_for_history_served_pins_and_retrieval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An envelope with every #21 part takes the hook's native check: the contract's slow strict
    validation does not run for it (it did, for every envelope, once pins were configured)."""
    if NATIVE_REQUESTS is None:
        pytest.skip("shadowlane_native is not built")
    builder = EnvelopeBuilder(
        Sanitizer(path="native"),
        ratio=1.0,
        salt_id="s",
        pins={"model_rev": "tutor-2"},
        served_model_pin="model_rev",
    )
    assert builder._native_check is not None
    validated: list[bytes] = []
    real = RequestEnvelope.model_validate_json

    def counting(data: bytes, **kw: Any) -> RequestEnvelope:
        validated.append(data)
        return real(data, **kw)

    monkeypatch.setattr(RequestEnvelope, "model_validate_json", counting)
    labels = RequestLabels(retrieved=(RawPassage("kb-1", "Irregular verbs"), RawPassage("kb-2")))
    record = _record(HISTORY, labels, builder)
    assert validated == []
    wire = orjson.loads(record.value)
    assert wire["prod"]["served_pins"] == {"model_rev": "tutor-2"}
    assert [p["id"] for p in wire["prod"]["retrieved"]] == ["kb-1", "kb-2"]
    assert wire["history_tool_calls"] == 1
    side = as_side(read_request(record.value, record.req_hash.encode()))
    assert side == ProdSide.decode_python(record.value, record.req_hash.encode())
    assert side.served_pins == {"model_rev": "tutor-2"}
    assert side.question == "And 'see'?"
