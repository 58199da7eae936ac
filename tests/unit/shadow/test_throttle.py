"""shadowlane/shadow/throttle.py: the group rate cap split by partitions, and the token bucket."""

from __future__ import annotations

import asyncio
import math
import time
import types

import pytest

from shadowlane.shadow import throttle
from shadowlane.shadow.throttle import TokenBucket, partition_share


@pytest.mark.parametrize(
    ("cap", "split"),
    [
        (50.0, [6]),
        (50.0, [3, 3]),
        (50.0, [2, 2, 1, 1]),
        (20.0, [1, 1, 1, 1, 1, 1]),
        (7.5, [5, 0, 1]),
        (100.0, [4, 3, 3, 2]),
    ],
)
def test_partition_shares_sum_to_the_cap(cap: float, split: list[int]) -> None:
    total = sum(split)
    shares = [partition_share(cap, owned, total) for owned in split]
    assert sum(shares) == pytest.approx(cap, rel=1e-12)
    # proportional to ownership
    for owned, share in zip(split, shares, strict=True):
        assert share == pytest.approx(cap * owned / total)


def test_partition_share_edge_cases() -> None:
    assert partition_share(50.0, 0, 6) == 0.0
    assert partition_share(50.0, 3, 0) == 0.0
    assert partition_share(50.0, -1, 6) == 0.0
    assert partition_share(50.0, 9, 6) == 50.0  # never more than the whole cap


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def virtual_sleep(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Make the bucket's ``asyncio.sleep`` advance a fake clock instead of waiting."""
    clock = FakeClock()

    async def fake_sleep(delay: float) -> None:
        # always move forward by at least one ulp: a float clock cannot represent a 1e-17 s step
        clock.now = max(clock.now + delay, math.nextafter(clock.now, math.inf))
        await asyncio.sleep(0)

    shim = types.SimpleNamespace(sleep=fake_sleep, Lock=asyncio.Lock)
    monkeypatch.setattr(throttle, "asyncio", shim)
    return clock


@pytest.mark.parametrize("rate", [0.5, 4.0, 10.0, 37.0])
async def test_bucket_grants_exactly_the_rate(virtual_sleep: FakeClock, rate: float) -> None:
    bucket = TokenBucket(rate, clock=virtual_sleep)
    n = 200
    for _ in range(n):
        await bucket.acquire()
    # the bucket starts empty, so n tokens take exactly n / rate seconds of (virtual) time
    assert virtual_sleep.now == pytest.approx(n / rate, rel=1e-9)


@pytest.mark.parametrize("rate", [2.0, 4.0, 37.0])
async def test_waited_s_reports_the_time_spent_waiting(virtual_sleep: FakeClock, rate: float) -> None:
    bucket = TokenBucket(rate, clock=virtual_sleep)
    for _ in range(50):
        await bucket.acquire()
    assert bucket.waited_s == pytest.approx(virtual_sleep.now, rel=1e-9)


async def test_waited_s_is_not_overstated_for_slow_rates(virtual_sleep: FakeClock) -> None:
    bucket = TokenBucket(0.5, clock=virtual_sleep)
    for _ in range(10):
        await bucket.acquire()
    assert virtual_sleep.now == pytest.approx(20.0)
    assert bucket.waited_s == pytest.approx(virtual_sleep.now, rel=1e-9)


@pytest.mark.parametrize("rate", [10.0, 200.0, 1000.0])
async def test_idle_time_never_turns_into_a_burst_above_the_bucket_size(
    virtual_sleep: FakeClock, rate: float
) -> None:
    bucket = TokenBucket(rate, clock=virtual_sleep)
    burst = max(1.0, rate * throttle.BURST_S)  # documented default: 50 ms of rate, at least 1 token
    virtual_sleep.now += 3600.0  # an idle hour
    start = virtual_sleep.now
    for _ in range(int(burst)):  # the burst is granted at once
        await bucket.acquire()
    assert virtual_sleep.now == start
    await bucket.acquire()  # the next one waits for a refill
    assert virtual_sleep.now > start
    assert virtual_sleep.now == pytest.approx(start + (int(burst) + 1 - burst) / rate)
    # over the whole window: at most rate * T + burst tokens
    granted = int(burst) + 1
    assert granted <= rate * (virtual_sleep.now - start) + burst + 1e-9


async def test_explicit_burst_and_set_rate(virtual_sleep: FakeClock) -> None:
    bucket = TokenBucket(2.0, burst=3.0, clock=virtual_sleep)
    virtual_sleep.now += 100.0
    start = virtual_sleep.now
    for _ in range(3):
        await bucket.acquire()
    assert virtual_sleep.now == start
    bucket.set_rate(8.0)
    assert bucket.rate == 8.0
    for _ in range(16):
        await bucket.acquire()
    assert virtual_sleep.now == pytest.approx(start + 2.0)


async def test_negative_rate_is_clamped_to_zero() -> None:
    assert TokenBucket(-5.0).rate == 0.0


async def test_rate_zero_blocks_until_the_rate_is_raised() -> None:
    bucket = TokenBucket(0.0)  # real clock, real sleeps: the whole test stays well under 1 s
    started = time.perf_counter()
    task = asyncio.create_task(bucket.acquire())
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), 0.25)
        assert not task.done()
        bucket.set_rate(100.0)
        await asyncio.wait_for(task, 0.5)
    finally:
        task.cancel()
    assert task.done()
    assert not task.cancelled()
    assert time.perf_counter() - started < 1.0


async def test_waiters_are_served_in_fifo_order(virtual_sleep: FakeClock) -> None:
    bucket = TokenBucket(5.0, clock=virtual_sleep)
    order: list[int] = []

    async def take(i: int) -> None:
        await bucket.acquire()
        order.append(i)

    await asyncio.gather(*(take(i) for i in range(8)))
    assert order == list(range(8))
    assert virtual_sleep.now == pytest.approx(8 / 5.0)


async def test_throttled_counts_acquisitions_that_waited(virtual_sleep: FakeClock) -> None:
    bucket = TokenBucket(10.0, burst=3.0, clock=virtual_sleep)
    virtual_sleep.now += 100.0  # idle: the bucket fills to its burst
    for _ in range(3):
        await bucket.acquire()
    assert (bucket.throttled, bucket.throttle_wait_s) == (0, 0.0)  # served from the burst at once
    for _ in range(4):
        await bucket.acquire()
    assert bucket.throttled == 4
    assert bucket.throttle_wait_s == pytest.approx(4 * 0.1)
    assert bucket.throttle_wait_s == pytest.approx(bucket.waited_s)


async def test_throttle_wait_counts_every_queued_waiter(virtual_sleep: FakeClock) -> None:
    bucket = TokenBucket(5.0, clock=virtual_sleep)
    await asyncio.gather(*(bucket.acquire() for _ in range(8)))
    assert bucket.throttled == 8
    # waiter i gets its token at (i + 1) / rate: each one's wait is counted, queueing included. The
    # virtual clock jumps when the first waiter starts sleeping, i.e. before the others arrive (0.2 s)
    arrived = [0.0] + [0.2] * 7
    assert bucket.throttle_wait_s == pytest.approx(sum((i + 1) / 5.0 - arrived[i] for i in range(8)))
    assert bucket.waited_s == pytest.approx(8 / 5.0)  # the bucket itself slept once per token
    assert virtual_sleep.now == pytest.approx(8 / 5.0)  # the rate is unchanged
