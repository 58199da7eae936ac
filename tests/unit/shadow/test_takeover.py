"""The shadow worker's takeover of new partitions and its readiness (shadowlane/shadow/worker.py,
shadowlane/kafka/consumer_support.py): readiness counts what the member owns when a takeover
completes, and a worker stopping while it learns is never made ready again.

The consumer is a stand-in holding an assignment (what the rebalance callbacks read); what the
worker learns from Kafka about new partitions is replaced by a wait this test releases."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from shadowlane.health import Health
from shadowlane.settings import Settings, ShadowSettings, TopicSettings
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.worker import ShadowWorker

TOPIC = "t.requests"


class Assignment:
    """The part of a consumer the rebalance callbacks use, over an assignment the test sets."""

    def __init__(self, *partitions: int) -> None:
        self.owned = {TopicPartition(TOPIC, p) for p in partitions}
        self.paused: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)


def answer(body: dict[str, Any]) -> str:
    return "ok"


def worker_with(consumer: Assignment) -> ShadowWorker:
    settings = Settings(topics=TopicSettings(prefix="t."), shadow=ShadowSettings(candidate="cand"))
    worker = ShadowWorker(settings, CallableCandidate("cand", answer), {}, health=Health())
    worker._consumer = consumer
    worker.health.broker_reached()
    return worker


def gated_learning(worker: ShadowWorker) -> list[asyncio.Event]:
    """Each takeover's learning waits for its own gate (in the order they start)."""
    gates: list[asyncio.Event] = []

    async def learn(partitions: list[TopicPartition]) -> None:
        gate = asyncio.Event()
        gates.append(gate)
        await gate.wait()

    worker._learn = learn  # type: ignore[method-assign]
    return gates


async def settle(condition: Callable[[], bool] = lambda: False) -> None:
    for _ in range(20):
        if condition():
            return
        await asyncio.sleep(0)


def tps(*partitions: int) -> list[TopicPartition]:
    return [TopicPartition(TOPIC, p) for p in partitions]


async def test_readiness_counts_the_partitions_owned_when_a_takeover_completes() -> None:
    consumer = Assignment(0, 1)
    worker = worker_with(consumer)
    gates = gated_learning(worker)
    worker.on_assigned(tps(0, 1))
    await settle()
    assert not worker.health.readiness()[0]  # still learning what the previous owner did
    # a rebalance while it learns: everything revoked, partition 0 given back (a second takeover)
    await worker.on_revoked(tps(0, 1))
    consumer.owned = set(tps(0))
    worker.on_assigned(tps(0))
    await settle()
    assert len(gates) == 2
    gates[1].set()  # the new takeover completes first ...
    await settle(lambda: worker.health.readiness()[0])
    assert worker.health.readiness()[1]["partitions"] == 1
    gates[0].set()  # ... then the first one, which outlived the revocation
    await settle(lambda: not worker._learners)
    assert not worker._learners
    ready, body = worker.health.readiness()
    assert ready
    assert body["partitions"] == 1  # what it owns now, not the 2 it was assigned back then


async def test_a_worker_stopping_while_it_learns_is_never_made_ready() -> None:
    worker = worker_with(Assignment(0, 1))
    gated_learning(worker)
    worker.on_assigned(tps(0, 1))
    await settle()
    worker.stop()
    worker._stop_learning()  # what run() does first when it stops
    await settle(lambda: not worker._learners)
    assert not worker._learners
    assert not worker.assigned.is_set()  # the cancelled takeover did not complete
    ready, body = worker.health.readiness()
    assert not ready
    assert body["phase"] == "stopping"
    assert body["reason"].startswith("stopping")
