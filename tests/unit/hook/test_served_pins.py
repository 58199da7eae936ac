"""Prod's served pins: what prod's response says it served with, recorded by the hook next to the
pins it claims (``set_pins``), so the comparator can check one against the other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import orjson
import pytest
from pydantic import ValidationError

from shadowlane.compare.pins import pin_check
from shadowlane.contracts.codec import decode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.demo.serve import RunningServer
from shadowlane.hook.context import RawMirror, RequestLabels, recording, set_pins, set_served_pins
from shadowlane.hook.envelope_builder import EnvelopeBuilder
from shadowlane.hook.openai_client import capture_openai
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.sanitize import Sanitizer
from shadowlane.settings import HookSettings, ShadowSettings
from tests.support.asgi_fakes import Client, Handler, http_scope, mw
from tests.support.fake_kafka import FakeProducerFactory
from tests.support.hook_capture import SpyPublisher, async_client, model_server
from tests.support.waiting import wait_until

CLAIMED = {"model_rev": "m1", "prod_rev": "1", "index_hash": "i1"}
PIN_SETTINGS = {
    "served_model_pin": "model_rev",
    "served_pin_headers": {"X-Prod": "prod_rev", "x-index-hash": "index_hash"},
}


async def _mirrored(handler: Handler, **settings: object) -> RequestEnvelope:
    """The envelope the middleware publishes for one request to ``handler``."""
    factory = FakeProducerFactory()
    pub = ShadowPublisher(
        HookSettings(linger_ms=0, **settings),  # type: ignore[arg-type]
        topic="shadowlane.requests",
        producer_factory=factory,
    )
    await pub.start()
    try:
        client = Client()
        await mw(handler, pub)(
            http_scope(headers=[(b"x-request-id", b"pins-1")]), client.receive, client.send
        )
        assert await wait_until(lambda: pub.stats.published == 1)
    finally:
        await pub.stop(drain_timeout_s=2.0)
    return decode(factory.sink[0].value, RequestEnvelope)


async def test_configured_headers_and_the_response_model_are_recorded_an_absent_one_empty() -> None:
    env = await _mirrored(Handler(pins=CLAIMED), **PIN_SETTINGS)
    # the handler's response names no model and sends x-prod: 1 but no x-index-hash
    assert env.prod.served_pins == {"model_rev": "", "prod_rev": "1", "index_hash": ""}
    assert env.pins == CLAIMED
    assert pin_check(env.pins, env.prod.served_pins) == (True, ("index_hash", "model_rev"))


async def test_what_the_handler_reports_wins() -> None:
    def report() -> None:
        set_served_pins({"model_rev": "m1", "index_hash": "i1"})

    env = await _mirrored(Handler(pins=CLAIMED, label=report), **PIN_SETTINGS)
    assert env.prod.served_pins == {"model_rev": "m1", "prod_rev": "1", "index_hash": "i1"}
    assert pin_check(env.pins, env.prod.served_pins) == (False, ())


async def test_without_configuration_no_served_pins_are_written() -> None:
    factory_env = await _mirrored(Handler(pins=CLAIMED))
    assert factory_env.prod.served_pins == {}


def _builder() -> EnvelopeBuilder:
    return EnvelopeBuilder(
        Sanitizer(), ratio=1.0, salt_id="s", pins={"model_rev": "m1"}, served_model_pin="model_rev"
    )


def _raw(response: Mapping[str, object], status: int = 200, labels: RequestLabels | None = None) -> RawMirror:
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return RawMirror("r-1", "/v1/chat/completions", request, response, status, 3.0, 1, 0.5, labels=labels)


def test_the_builder_records_the_response_model_and_skips_error_answers() -> None:
    answer = {"model": "m1-rev2", "choices": [{"message": {"role": "assistant", "content": "ok"}}]}
    record = _builder().record(_raw(answer))
    assert record.envelope.prod.served_pins == {"model_rev": "m1-rev2"}
    assert pin_check(record.envelope.pins, record.envelope.prod.served_pins) == (True, ("model_rev",))
    failed = _builder().record(_raw({"error": {"message": "down"}}, status=503))
    assert b"served_pins" not in failed.value  # nothing served: nothing written
    labelled = _builder().record(_raw(answer, labels=RequestLabels(served_pins={"model_rev": "m1"})))
    assert labelled.envelope.prod.served_pins == {"model_rev": "m1"}
    assert orjson.loads(labelled.value)["prod"]["served_pins"] == {"model_rev": "m1"}


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with model_server() as running:
        yield running


def test_served_pin_values_are_masked_and_secret_headers_refused() -> None:
    """A served value that carries a key or an e-mail does not leave prod as it is (a version id
    does); an auth or cookie header cannot be configured as a served pin at all."""
    answer = {"model": "m1-rev2", "choices": [{"message": {"role": "assistant", "content": "ok"}}]}
    leaky = RequestLabels(
        served_pins={"index_hash": "sk-abcdefghijklmnopqrstuvwx1234", "owner": "jane.doe@example.com"}
    )
    record = _builder().record(_raw(answer, labels=leaky))
    assert b"sk-abcdefghijklmnopqrstuvwx1234" not in record.value
    assert b"jane.doe@example.com" not in record.value
    assert record.envelope.prod.served_pins["model_rev"] == "m1-rev2"
    assert record.envelope.sanitized_fields >= 2
    for header in ("Authorization", "Set-Cookie", "x-api-key", "X-Auth-Token"):
        with pytest.raises(ValidationError, match="secret-bearing"):
            HookSettings(served_pin_headers={header: "pin"})
        with pytest.raises(ValidationError, match="secret-bearing"):
            ShadowSettings(served_pin_headers={header: "pin"})


@pytest.mark.parametrize("strict", [False, True])
def test_version_strings_stay_readable_and_ids_are_never_hashed(strict: bool) -> None:
    """A served value equal to the claimed pin (or the response's model) leaves as it is, even
    where a masking rule would match it (an ip-like or e-mail-like version); another value is
    masked as an id, never hashed, in strict mode too; a secret-bearing pin name is dropped.
    Cited and retrieved ids are masked as ids too, so the comparator masks the candidate's alike."""
    sanitizer = Sanitizer(strict=HookSettings().strict_allow if strict else None, salt="k")
    claimed = {"prompt": "prompt-v2.1.0.3", "index": "retriever@v2.stable"}
    builder = EnvelopeBuilder(sanitizer, ratio=1.0, salt_id="s", pins=claimed, served_model_pin="model_rev")
    answer = {"model": "m1-rev2", "choices": [{"message": {"role": "assistant", "content": "ok"}}]}
    reported = {**claimed, "other": "retriever@v3.beta", "api_token": "abc123def456"}
    labels = RequestLabels(served_pins=reported, citations=("kb/jane.doe@example.com#3",))
    env = builder.record(_raw(answer, labels=labels)).envelope
    assert env.prod.served_pins == {
        "model_rev": "m1-rev2",
        "prompt": "prompt-v2.1.0.3",
        "index": "retriever@v2.stable",
        "other": Sanitizer().mask_id("retriever@v3.beta")[0],
    }
    assert env.prod.served_pins["other"] != "retriever@v3.beta"  # differing, and e-mail-like: masked
    assert pin_check(env.pins, env.prod.served_pins) == (False, ())
    assert env.prod.cited_ids == ("kb/<email>#3",)  # the rules' mask, not a salted hash


async def test_a_client_side_capture_records_the_response_model_and_reported_pins(
    server: RunningServer,
) -> None:
    publisher = SpyPublisher(HookSettings(linger_ms=0, served_model_pin="model_rev"))
    await publisher.start()
    try:
        client = capture_openai(async_client(server), publisher)
        with recording():
            set_pins({"model_rev": "grammar-a", "index_hash": "i1"})
            set_served_pins({"index_hash": "i0"})  # what the retriever said it used
            await client.chat.completions.create(model="tutor", messages=[{"role": "user", "content": "hi"}])
        assert await wait_until(lambda: publisher.stats.published == 1)
    finally:
        await publisher.stop(drain_timeout_s=2.0)
    env = decode(publisher.factory.sink[0].value, RequestEnvelope)
    assert env.prod.served_pins == {"model_rev": "grammar-a", "index_hash": "i0"}  # the demo model's name
    assert pin_check(env.pins, env.prod.served_pins) == (True, ("index_hash",))
