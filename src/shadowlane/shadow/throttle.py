"""A hard replay-rate cap shared by a consumer group: token bucket sized by owned partitions.

Each member runs its own bucket at ``cap * owned / total`` partitions of the requests topic, so
the members' rates add up to the group cap whatever the group size, and follow rebalances. The
bucket holds at most ``burst`` tokens (default: 50 ms worth of rate, at least one token), so
an idle period never turns into a burst: over any window of T seconds a member replays at most
``rate * T + burst``. Waiters are served in FIFO order.

Counters for metrics (read at scrape time): ``throttled`` counts acquisitions that did not get a
token at once (queued behind another waiter or waiting for a refill), ``throttle_wait_s`` sums
how long those acquisitions waited, and ``waited_s`` is the time the bucket itself spent
sleeping for refills (concurrent waiters counted once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

BURST_S = 0.05


def partition_share(cap: float, owned: int, total: int) -> float:
    """This member's part of the group cap."""
    if total <= 0 or owned <= 0:
        return 0.0
    return cap * min(owned, total) / total


class TokenBucket:
    def __init__(
        self, rate: float, *, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._rate = 0.0
        self._burst = 1.0
        self._burst_override = burst
        self._tokens = 0.0
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.waited_s = 0.0
        self.throttled = 0
        self.throttle_wait_s = 0.0
        self.set_rate(rate)

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float) -> None:
        self._refill()
        self._rate = max(rate, 0.0)
        self._burst = self._burst_override or max(1.0, self._rate * BURST_S)
        self._tokens = min(self._tokens, self._burst)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    async def acquire(self) -> None:
        """Wait for one token. FIFO among waiters; a rate of 0 waits until the rate is raised."""
        started = self._clock()
        queued = self._lock.locked()
        async with self._lock:
            slept = False
            while True:
                self._refill()
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    if queued or slept:
                        self.throttled += 1
                        self.throttle_wait_s += max(0.0, self._stamp - started)
                    return
                slept = True
                wait = min((1.0 - self._tokens) / self._rate if self._rate > 0 else 0.1, 0.5)
                self.waited_s += wait
                await asyncio.sleep(wait)
