"""What a replay records as the pins its candidate served with: the reply's model under the
configured name, configured response headers (real HTTP server), a Python candidate's own report."""

from __future__ import annotations

from typing import Any

from shadowlane.compare.pins import pin_check
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.demo.serve import serve
from shadowlane.settings import ShadowSettings
from shadowlane.shadow.candidates import CallableCandidate, OpenAICandidate, parse_reply
from shadowlane.shadow.replay import Replayer
from tests.support.factories import make_envelope
from tests.support.pinned_model import INDEX_HEADER, PinnedModel, user_number

EXPECTED = {"model_rev": "grammar-b@v0.3.0", "index_hash": "conj-table-v1"}


def _settings(**fields: Any) -> ShadowSettings:
    return ShadowSettings(max_attempts=1, backoff_base_s=0.0, pins=EXPECTED, **fields)


def reporting(body: dict[str, Any]) -> dict[str, Any]:
    """A Python candidate that says what it served with."""
    return {
        "model": "grammar-b@v0.3.0",
        "choices": [{"message": {"role": "assistant", "content": "ok"}}],
        "served_pins": {"index_hash": "conj-table-v0", "prompt_ver": " p2 ", "blank": "", "n": 3},
    }


async def test_a_python_candidate_reports_its_pins_and_the_model_is_recorded_under_its_name() -> None:
    replayer = Replayer(CallableCandidate("cand", reporting), _settings(served_model_pin="model_rev"))
    res = await replayer.replay(make_envelope("r1", tools=()))
    assert res.served_pins == {
        "model_rev": "grammar-b@v0.3.0",
        "index_hash": "conj-table-v0",
        "prompt_ver": "p2",
        "blank": "",  # said nothing: absent
        "n": "",  # not a string: absent
    }
    assert res.pins == EXPECTED  # the expected ones stay apart
    assert pin_check(res.pins, res.served_pins) == (True, ("index_hash",))
    assert decode(encode(res), ShadowResult) == res


async def test_without_configuration_nothing_is_recorded() -> None:
    replayer = Replayer(CallableCandidate("cand", lambda body: "plain text"), _settings())
    res = await replayer.replay(make_envelope("r2", tools=()))
    assert res.served_pins == {}
    assert b"served_pins" not in encode(res)  # written only when set: native readers keep the record


async def test_a_configured_model_pin_a_reply_does_not_name_is_absent() -> None:
    replayer = Replayer(
        CallableCandidate("cand", lambda body: "plain text"), _settings(served_model_pin="model_rev")
    )
    res = await replayer.replay(make_envelope("r3", tools=()))
    assert res.served_pins == {"model_rev": ""}
    assert pin_check(res.pins, res.served_pins) == (True, ("model_rev",))


async def test_a_failed_replay_served_nothing() -> None:
    def broken(body: dict[str, Any]) -> str:
        raise RuntimeError("down")

    res = await Replayer(CallableCandidate("cand", broken), _settings(served_model_pin="model_rev")).replay(
        make_envelope("r4", tools=())
    )
    assert (res.status, res.served_pins) == ("error", {})


async def test_an_http_candidate_behind_a_stale_replica_is_caught() -> None:
    app = PinnedModel(
        stale=lambda body: user_number(body) == 2, headerless=lambda body: user_number(body) == 3
    )
    server = await serve(app)
    candidate = OpenAICandidate("cand", server.url, pin_headers={INDEX_HEADER: "index_hash"})
    replayer = Replayer(candidate, _settings(served_model_pin="model_rev"))
    try:
        results = [
            await replayer.replay(make_envelope(f"h{i}", tools=(), user_text=f"hello {i}")) for i in (1, 2, 3)
        ]
    finally:
        await candidate.aclose()
        await server.stop()
    fresh, stale, headerless = (r.served_pins for r in results)
    assert fresh == EXPECTED
    assert stale == {"model_rev": "grammar-b@v0.2.9", "index_hash": "conj-table-v0"}
    assert headerless == {"model_rev": "grammar-b@v0.3.0", "index_hash": ""}
    checks = [pin_check(r.pins, r.served_pins) for r in results]
    assert checks == [(False, ()), (True, ("index_hash", "model_rev")), (True, ("index_hash",))]


def test_a_served_pins_that_is_no_object_reports_nothing() -> None:
    reply = parse_reply({"choices": [{"message": {"content": "x"}}], "served_pins": ["not", "an", "object"]})
    assert reply.served_pins == {}
