"""shadowlane/hook/publisher.py: built from the settings, it never starts a broker and refuses to
start without a bootstrap address (counted, logged, the request path untouched); captures made on
other threads are counted by the publisher's loop alone."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import orjson
import pytest

import shadowlane.native_path as native_path
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.settings import HookSettings, KafkaSettings, Settings
from tests.support.fake_kafka import FakeProducerFactory

REQUEST = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


def _unconfigured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "SHADOWLANE_BOOTSTRAP_SERVERS",
        "SHADOWLANE_KAFKA__BOOTSTRAP_SERVERS",
    ):
        monkeypatch.delenv(name, raising=False)
    return Settings(state_dir=tmp_path)


async def test_without_a_bootstrap_address_start_refuses_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pub = ShadowPublisher.from_settings(_unconfigured(tmp_path, monkeypatch))
    with caplog.at_level(logging.ERROR, logger="shadowlane.hook.publisher"):
        await pub.start()
    assert pub.stats.config_errors == 1
    assert "KAFKA_BOOTSTRAP_SERVERS" in caplog.text
    assert "never starts a broker" in caplog.text
    # the request path is untouched: the capture is counted, nothing raises, nothing is queued
    queued = pub.publish(
        req_id="r1",
        endpoint="/v1/chat/completions",
        request=REQUEST,
        response=None,
        status=200,
        latency_ms=1.0,
    )
    assert queued is False
    assert (pub.stats.seen, pub.stats.dropped_not_running, pub.queued) == (1, 1, 0)
    await pub.stop()
    assert not (tmp_path / "kafka").exists()  # no broker was installed or started


async def test_from_settings_wires_the_hook_settings_topic_and_producer() -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"), hook=HookSettings(queue_size=7))
    pub = ShadowPublisher.from_settings(settings, pins={"model_rev": "r1"}, linger_ms=20)
    producer = pub._factory()
    try:
        assert type(producer).__name__ == "AIOKafkaProducer"
        assert producer._message_accumulator._linger_time == 0.02  # the caller's option wins over 5 ms
        assert producer._sender._acks == -1  # acks="all"
        assert producer.client._bootstrap_servers == "127.0.0.1:1"
    finally:
        await producer.stop()
    assert pub._topic == settings.topics.requests_topic
    assert pub._settings.queue_size == 7


async def test_captures_from_other_threads_are_counted_on_the_loop() -> None:
    pub = ShadowPublisher(HookSettings(linger_ms=0), topic="t", producer_factory=FakeProducerFactory())
    await pub.start()
    try:
        results: list[bool] = []

        def worker() -> None:  # a sync SDK client's thread
            results.append(
                pub.publish(
                    req_id="r1", endpoint="/e", request=REQUEST, response=None, status=200, latency_ms=1.0
                )
            )
            pub.count_sampled_out()
            pub.count_unmirrored("dropped_incomplete")

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(5)  # on the loop's thread: the loop cannot run what the worker handed over
        assert results == [True]
        assert pub.stats.seen == 0  # handed over, not yet counted: only the loop writes counters
        for _ in range(3):
            await asyncio.sleep(0)
        assert (pub.stats.seen, pub.stats.sampled_out, pub.stats.dropped_incomplete) == (3, 1, 1)
        assert pub.stats.enqueued + pub.stats.published >= 1
    finally:
        await pub.stop()


async def test_a_forced_native_sanitizer_without_the_extension_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(native_path, "native_available", lambda: False)
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"), hook=HookSettings(native_path="native")
    )
    pub = ShadowPublisher.from_settings(settings, producer_factory=FakeProducerFactory())
    with caplog.at_level(logging.ERROR, logger="shadowlane.hook.publisher"):
        await pub.start()
    assert pub.stats.config_errors == 1
    assert "hook.native_path is 'native'" in caplog.text
    assert pub.publish(req_id="r1", endpoint="/v1/chat/completions", request=REQUEST, response=None,
                       status=200, latency_ms=1.0) is False  # fmt: skip
    await pub.stop()


@pytest.mark.skipif(
    not native_path.native_available(), reason="the native engine is not built: `make native`"
)
async def test_the_hook_sanitizes_natively_when_the_extension_is_installed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    pub = ShadowPublisher.from_settings(settings, producer_factory=FakeProducerFactory())
    with caplog.at_level(logging.INFO, logger="shadowlane.hook.publisher"):
        await pub.start()
    try:
        assert "sanitizer engine native" in caplog.text
    finally:
        await pub.stop()
