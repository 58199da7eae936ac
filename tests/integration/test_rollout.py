"""The staged rollout on the real broker: it advances on PASS and rolls back on a hard stop.

A feeder plays the comparator: every 0.3 s it ships a crafted window summary of the candidate to
the summary topic (green, or over the ΔS hard-stop once the rollout reaches its second canary
stage). The rollout command runs as operators run it: signed route configs on the control topic,
gate decisions and steps on the audit topic.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from shadowlane.cli.rollout_cmd import execute
from shadowlane.contracts.audit import AuditEvent
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.rollout.control_plane import ControlWatcher
from shadowlane.settings import ControlSettings, Settings
from tests.support.kafka_io import read_topic
from tests.support.summaries import crafted_summary

pytestmark = pytest.mark.integration
MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "flags" / "feature_flags.yml"
KEY = SecretStr("integration-rollout-key-0123456789abcdef")
FLAG, CANDIDATE = "grammar_b", "grammar-b"


def _signed(settings: Settings) -> Settings:
    return settings.model_copy(update={"control": ControlSettings(signing_keys={"it": KEY})})


async def _feed(settings: Settings, kwargs: dict[str, Any], bad_from_weight: float | None) -> None:
    """Ship a summary of the last 0.3 s every 0.3 s; bad ones once the route in force reaches
    ``bad_from_weight``."""
    watcher = ControlWatcher(settings, kwargs, observer="feeder")
    producer = AIOKafkaProducer(**kwargs, acks="all")
    await watcher.start()
    await producer.start()
    try:
        seed = 0
        while True:
            end = time.time_ns() // 1_000_000
            config = watcher.route_config(FLAG)
            weight = config.rules[0].candidate_weight if config and config.rules else 0.0
            bad = bad_from_weight is not None and weight >= bad_from_weight
            summary = crafted_summary(
                CANDIDATE, end - 300, end, 800, drift=(0.3, 0.5) if bad else (0.0, 0.04), seed=seed
            )
            await producer.send_and_wait(
                settings.topics.summary_topic, encode(summary), key=CANDIDATE.encode()
            )
            seed += 1
            await asyncio.sleep(0.3)
    finally:
        await producer.stop()
        await watcher.stop()


async def _rollout(settings: Settings, kwargs: dict[str, Any], bad_from_weight: float | None) -> int:
    args = argparse.Namespace(
        manifest=MANIFEST, flag=FLAG, window_s=1.0, max_looks=6, planned_samples=200, epoch=1,
        salt=None, who="it-operator", json=True, look_rule="confidence_sequence",
    )  # fmt: skip
    feeder = asyncio.create_task(_feed(settings, kwargs, bad_from_weight))
    try:
        return await execute(args, settings)
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)


async def _final_route(settings: Settings, kwargs: dict[str, Any]) -> RouteConfig | None:
    watcher = ControlWatcher(settings, kwargs, observer="check")
    await watcher.start()
    try:
        await watcher.wait_ready(10.0)
        return watcher.route_config(FLAG)
    finally:
        await watcher.stop()


async def _audit(settings: Settings, kwargs: dict[str, Any]) -> list[AuditEvent]:
    records = await read_topic(kwargs, settings.topics.audit_topic, want=1, timeout_s=15.0, settle_s=1.5)
    return [decode(r.value, AuditEvent) for r in records]


@pytest.mark.timeout(90)
async def test_green_rollout_walks_every_stage_to_full_traffic(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    settings = _signed(it_settings)
    assert await _rollout(settings, kafka_kwargs, None) == 0
    final = await _final_route(settings, kafka_kwargs)
    assert final is not None
    assert (final.rules[0].strategy, final.rules[0].candidate_weight) == ("canary", 1.0)
    events = await _audit(settings, kafka_kwargs)
    steps = [
        e.details["weight"] for e in events if e.what == "rollout_step" and e.details["action"] != "hold"
    ]
    assert steps == [0.0, 0.05, 0.25, 0.5, 1.0, 1.0]  # start, four graduations, complete
    decisions = [e for e in events if e.what == "gate_decision"]
    assert decisions
    assert all(e.who == "it-operator" for e in decisions)
    assert {e.details["verdict"] for e in decisions} <= {"PASS", "INCONCLUSIVE"}
    undecided = [e for e in decisions if e.details["verdict"] == "INCONCLUSIVE"]
    assert all("reason" in e.details["forward"] for e in undecided)  # each carries its way forward
    published = [e for e in events if e.what == "config_change" and e.details.get("observer") is None]
    assert published  # the signed route configs, audited by their publisher


@pytest.mark.timeout(90)
async def test_a_hard_stop_rolls_back_to_the_baseline_at_once(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    settings = _signed(it_settings)
    assert await _rollout(settings, kafka_kwargs, bad_from_weight=0.25) == 1
    final = await _final_route(settings, kafka_kwargs)
    assert final is not None
    assert final.rules[0].strategy == "off"  # the baseline serves everything again
    events = await _audit(settings, kafka_kwargs)
    rollback = [e for e in events if e.what == "rollback"]
    assert len(rollback) == 1
    assert rollback[0].details["weight"] == 0.25
    assert "hard abort" in rollback[0].why
    hard = [e for e in events if e.what == "gate_decision" and e.details["hard_stop"]]
    assert hard
