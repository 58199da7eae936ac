"""BuildStage: polls leave in order, slow ΔS leaves polling free, backpressure is bounded and
counted, and a given-up backlog is handed back to the join."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.build_stage import FIRST_LIMIT, MAX_QUEUED_POLLS, MIN_LIMIT, Bound, BuildStage, Polled
from shadowlane.compare.embed_openai import EmbeddingServiceUnavailable
from shadowlane.compare.join import Joined, Output
from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.comparison import Comparison
from shadowlane.settings import CompareSettings
from tests.support.bag_of_words import BagOfWords, SlowBagOfWords
from tests.support.factories import envelope, result


class GatedEmbedder(BagOfWords):
    """A real bag-of-words embedder that embeds only once the test opens its gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.fail = False

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.gate.wait(10)
        if self.fail:
            raise RuntimeError("embedder down")
        return super().embed(texts)


def _differing(n: int) -> Joined:
    """A joined pair whose answers differ: it needs the embedder."""
    env = envelope(n)
    return Joined(ProdSide.of(env), result(env, answer=f"a different answer {n}"), [])


def _same(n: int) -> Joined:
    """A joined pair with equal answers: ΔS 0 without the embedder."""
    env = envelope(n)
    return Joined(ProdSide.of(env), result(env), [])


class Shipped:
    def __init__(self) -> None:
        self.polls: list[tuple[int, list[str]]] = []
        self.given_up: list[tuple[str, str]] = []

    async def ship(self, polled: Polled, comparisons: list[Comparison]) -> None:
        self.polls.append((polled.watermark, [c.req_hash for c in comparisons]))

    def give_up(self, pairs: list[tuple[str, str]]) -> None:
        self.given_up.extend(pairs)


def _stage(limit: int = 4) -> tuple[BuildStage, GatedEmbedder, Shipped]:
    """A stage whose bound is ``limit`` pairs (builds of under 8 pairs are never timed)."""
    embedder, shipped = GatedEmbedder(), Shipped()
    stage = BuildStage(ComparisonBuilder(embedder), shipped.ship, shipped.give_up, Bound(5.0, limit))
    return stage, embedder, shipped


async def _until(predicate: object, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_poll_without_delta_s_and_nothing_queued_is_shipped_before_submit_returns() -> None:
    stage, embedder, shipped = _stage()
    await stage.submit([_same(1)], watermark=10)
    assert shipped.polls == [(10, [envelope(1).req_hash])]
    assert embedder.batches == []
    assert stage.backlog == 0


async def test_slow_delta_s_leaves_submit_free_and_polls_leave_in_order() -> None:
    stage, embedder, shipped = _stage(limit=100)
    await stage.submit([_differing(1)], watermark=10)  # queued: the embedder is gated
    await stage.submit([_same(2)], watermark=20)  # nothing to embed, but behind poll 1
    await stage.submit([], watermark=30)  # an idle poll: only its watermark
    await stage.submit([], watermark=40)  # coalesced into the one before
    assert shipped.polls == []
    assert stage.backlog == 1
    assert stage.gauges() == {
        "delta_s_backlog": 1,
        "delta_s_backlog_limit": FIRST_LIMIT,  # nothing measured yet
        "delta_s_pairs_per_s": 0.0,
        "build_queue": 3,
    }
    embedder.gate.set()
    assert await stage.drain(5.0)
    assert shipped.polls == [
        (10, [envelope(1).req_hash]),
        (20, [envelope(2).req_hash]),
        (40, []),
    ]
    assert stage.backlog == 0


async def test_backpressure_holds_past_the_limit_until_half_is_done_and_is_counted() -> None:
    stage, embedder, shipped = _stage(limit=4)
    assert stage.room() == 4
    await stage.submit([_differing(1), _differing(2)], watermark=1)
    assert stage.room() == 2  # what is left of the limit: the next poll takes no more
    await stage.submit([_differing(3), _differing(4)], watermark=2)
    assert stage.room() == 0
    assert stage.paused
    await stage.submit([_differing(5)], watermark=3)  # what a poll fetched before the pause
    assert stage.room() == 0
    assert stage.counters()["intake_pauses"] == 1
    embedder.gate.set()
    await _until(lambda: stage.backlog <= 2)
    assert stage.room() >= 1
    assert not stage.paused
    counted = stage.counters()
    assert counted["intake_pauses"] == 1
    assert counted["intake_paused_seconds"] > 0.0
    assert await stage.drain(5.0)
    assert [w for w, _ in shipped.polls] == [1, 2, 3]


async def test_without_an_embedder_nothing_waits_and_intake_is_never_held() -> None:
    shipped = Shipped()
    stage = BuildStage(ComparisonBuilder(None), shipped.ship, shipped.give_up, None)
    await stage.submit([_differing(n) for n in range(50)], watermark=1)
    assert len(shipped.polls[0][1]) == 50
    assert stage.room() > 10**6


async def test_a_backlog_given_up_at_the_drain_bound_is_handed_back_to_the_join() -> None:
    stage, embedder, shipped = _stage(limit=100)
    polled: list[Output] = [_differing(1), _same(2)]
    await stage.submit(polled, watermark=1)
    assert not await stage.drain(0.2)  # the embedder never answers in time
    assert shipped.polls == []
    assert shipped.given_up == [(envelope(1).req_hash, "cand"), (envelope(2).req_hash, "cand")]
    assert stage.backlog == 0
    assert not stage.paused
    embedder.gate.set()  # the abandoned thread finishes; nothing is shipped for it
    await asyncio.sleep(0.1)
    assert shipped.polls == []


async def test_a_failing_build_surfaces_at_the_next_submit() -> None:
    stage, embedder, _ = _stage()
    embedder.fail = True
    embedder.gate.set()
    await stage.submit([_differing(1)], watermark=1)
    await _until(lambda: stage.gauges()["build_queue"] == 1 and not stage.counters()["delta_s_retries"])
    await _until(lambda: stage._task is None)
    with pytest.raises(RuntimeError, match="embedder down"):
        await stage.submit([], watermark=2)


async def test_a_build_failing_while_fetching_is_paused_surfaces_from_room() -> None:
    """Paused, the comparator calls room() and wait_for_room(), not submit(): the failure must
    reach it there, or it would wait forever with its partitions paused."""
    stage, embedder, _ = _stage(limit=2)
    await stage.submit([_differing(1), _differing(2)], watermark=1)
    assert stage.room() == 0
    embedder.fail = True
    embedder.gate.set()
    with pytest.raises(RuntimeError, match="embedder down"):
        await asyncio.wait_for(stage.wait_for_room(5.0), 2.0)  # woken by the failure, not the time-out


async def test_polls_waiting_on_a_slow_output_pause_fetching_too() -> None:
    """Polls with nothing for ΔS still queue behind one that needs it: past MAX_QUEUED_POLLS the
    stage holds fetching even with room left in its ΔS backlog."""
    stage, embedder, _ = _stage(limit=10_000)
    await stage.submit([_differing(0)], watermark=0)
    for n in range(1, MAX_QUEUED_POLLS):
        await stage.submit([_same(n)], watermark=n)
    assert stage.gauges()["build_queue"] == MAX_QUEUED_POLLS
    assert stage.room() == 0
    embedder.gate.set()
    assert await stage.drain(10.0)
    assert stage.room() > 0


async def test_a_poll_given_up_while_shipping_keeps_its_pairs_finished() -> None:
    """Its comparisons may already be produced: forgetting them would emit them twice."""
    embedder, shipped, release = BagOfWords(), Shipped(), asyncio.Event()

    async def slow_ship(polled: Polled, comparisons: list[Comparison]) -> None:
        await release.wait()  # the broker does not acknowledge

    stage = BuildStage(ComparisonBuilder(embedder), slow_ship, shipped.give_up, Bound(5.0, 100))
    await stage.submit([_differing(1)], watermark=1)  # built, then stuck shipping
    await stage.submit([_differing(2)], watermark=2)  # never built
    await _until(lambda: bool(embedder.batches))
    assert not await stage.drain(0.3)
    assert shipped.given_up == [(envelope(2).req_hash, "cand")]


async def test_room_counts_the_pairs_one_record_can_complete() -> None:
    """A request read after its three results completes three pairs at once: the room is in
    records, so the backlog stays within the limit."""
    embedder, shipped = GatedEmbedder(), Shipped()
    bound = Bound(5.0, 10)
    stage = BuildStage(ComparisonBuilder(embedder), shipped.ship, shipped.give_up, bound, pairs_per_record=3)
    assert stage.room() == 3
    await stage.submit([_differing(n) for n in range(8)], watermark=1)
    assert stage.room() == 0  # 2 pairs left: not even one record's worth
    waiting = asyncio.create_task(stage.wait_for_room(5.0))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # nothing left the stage yet
    embedder.gate.set()
    await asyncio.wait_for(waiting, 5.0)  # woken by the poll leaving, not by the time-out
    assert stage.room() == 3
    assert await stage.drain(5.0)


async def test_the_bound_follows_the_measured_rate_of_delta_s_within_its_limits() -> None:
    """``seconds`` of ΔS work at the measured rate: 20 differing pairs embedding at no more than
    50 texts/s (0.02 s each, 2 texts a pair) measure at most 25 pairs/s, so 1 s of work is the
    floor ``MIN_LIMIT``; ``max_pairs`` caps it."""
    shipped = Shipped()
    builder = ComparisonBuilder(SlowBagOfWords(per_text_s=0.02))
    stage = BuildStage(builder, shipped.ship, shipped.give_up, Bound(1.0, 1_000))
    assert stage.limit == FIRST_LIMIT  # nothing measured yet
    await stage.submit([_differing(n) for n in range(20)], watermark=1)
    assert await stage.drain(10.0)
    assert stage.pairs_per_s is not None
    assert 0 < stage.pairs_per_s <= 25.0
    assert stage.limit == MIN_LIMIT
    assert stage.gauges()["delta_s_backlog_limit"] == MIN_LIMIT
    fast = BuildStage(ComparisonBuilder(BagOfWords()), shipped.ship, shipped.give_up, Bound(60.0, 500))
    await fast.submit([_differing(n) for n in range(20)], watermark=1)
    assert await fast.drain(10.0)
    assert fast.pairs_per_s is not None
    assert fast.pairs_per_s > 25.0  # no sleep: hundreds a second, so 60 s of work is over the cap
    assert fast.limit == 500


class FlakyEmbedder(BagOfWords):
    """An embeddings server that is unavailable for its first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self.failures:
            self.failures -= 1
            raise EmbeddingServiceUnavailable("http://embed/v1/embeddings answered HTTP 503")
        return super().embed(texts)


async def test_a_transient_embedder_failure_is_retried_and_counted_never_emitted_without_delta_s() -> None:
    shipped = Shipped()
    stage = BuildStage(ComparisonBuilder(FlakyEmbedder(2)), shipped.ship, shipped.give_up, Bound(5.0, 100))
    await stage.submit([_differing(1)], watermark=1)
    assert await stage.drain(10.0)  # 0.5 s, then 1 s of backoff
    assert stage.counters()["delta_s_retries"] == 2
    assert shipped.polls == [(1, [envelope(1).req_hash])]


def test_the_settings_state_the_stages_first_bound_and_floor() -> None:
    text = CompareSettings.model_fields["delta_s_backlog_s"].description or ""
    assert f"{FIRST_LIMIT} pairs until measured, never under {MIN_LIMIT}" in text
