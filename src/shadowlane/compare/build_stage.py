"""The comparator's build stage: each poll's comparisons built in poll order, off the polling loop.

ΔS needs the embedder, which can be far slower than arrival (MiniLM on a CPU core embeds tens of
answers a second; the join handles tens of thousands of pairs). Built inside the poll, one slow
batch would stop polling, committing and health for as long as it embeds. Here a poll hands its
outputs to the stage and goes on; one task builds the queued polls in order (the embedding in a
worker thread) and ships each through ``ship``, the comparator's output path, so windows, acks,
transactions and commits see polls in the order they were read. A poll with nothing to embed
and nothing queued before it is built and shipped at once, as before.

The backlog's bound, ``limit``, is in seconds of ΔS work: the pairs the embedder builds in
``seconds`` at the rate measured on the last builds (a moving average), within ``MIN_LIMIT`` and
``max_pairs``; before the first measurement, ``FIRST_LIMIT``. MiniLM on 2 cores gets a few hundred
pairs, the static embedder thousands: a fast embedder gets polls large enough to keep it busy,
and any backlog drains within ``seconds``.

Backpressure, not load shedding: every joined pair gets its ΔS. A poll takes at most the records
that can complete no more pairs than ``limit`` leaves room for; when that is less than one record
(or ``MAX_QUEUED_POLLS`` polls wait, when shipping is what is slow), :meth:`room` is 0 and the
comparator pauses its partitions until the backlog is down to half. It goes on polling (paused
partitions give nothing, and the member stays in its group), committing and answering health
checks. Expiring requests can still add the pairs that had joined them, out of the join buffer:
the two together stay within ``max_pending`` + ``limit``. The time spent paused and the number of
pauses are counted (``intake_paused_seconds``, ``intake_pauses``), the backlog is a gauge, and the
group's lag as the broker has it (KEDA's scaler, ``shadowlane lag``) grows; the member's own
``shadowlane_consumer_lag`` does not, as paused partitions fetch no new high-water marks. An
embedder's transient failure is retried with backoff (``delta_s_retries``); any other failure
stops the comparator.

Nothing is dropped: a record is marked done only once its comparison is shipped, so a backlog
given up at shutdown or revocation (after ``drain_timeout_s``) is read again by the partition's
next owner, and the join forgets that the given-up polls' pairs left (read again here, they are
new pairs). A poll whose shipping had begun may be out, so its pairs stay finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from shadowlane.compare.build import ComparisonBuilder, Prepared
from shadowlane.compare.join import Output
from shadowlane.compare.pair_records import Pair
from shadowlane.contracts.comparison import Comparison
from shadowlane.errors import RetriableError
from shadowlane.kafka.consumer_support import wait_bounded

log = logging.getLogger(__name__)

_MIN_PAUSE_LOG_S = 60.0  # at most one "intake paused" warning a minute


MIN_LIMIT: Final = 32
FIRST_LIMIT: Final = 64  # about 3 s of MiniLM on 2 cores, within the default drain_timeout_s
MAX_QUEUED_POLLS: Final = 64  # polls waiting to be built or shipped, ΔS or not (a slow broker)
_SMOOTHING: Final = 0.3  # weight of the newest build in the moving average of pairs/s
_MEASURED_PAIRS: Final = 8  # builds of fewer pairs are too short to time
RETRY_FIRST_S: Final = 0.5  # backoff of a build whose embedder failed transiently, doubling
RETRY_MAX_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class Bound:
    """The backlog's bound: ``seconds`` of ΔS work at the measured rate, at most ``max_pairs``."""

    seconds: float
    max_pairs: int


@dataclass(slots=True)
class Polled:
    """One poll's outputs on their way out: as read, prepared, and the watermark after it."""

    outputs: list[Output]
    prepared: Prepared | None
    watermark: int
    started_ns: int  # when the poll's build began (the start of its shadowlane.compare spans)
    pairs: int  # pairs that may need the embedder (what the backlog counts)
    slow: bool = False  # some pair may need the embedder: built in a worker thread
    shipping: bool = False  # built, and handed to ``ship``

    def leaving(self) -> list[tuple[str, str]]:
        """The (``req_hash``, candidate) of every comparison this poll builds."""
        if self.prepared is None or self.shipping:
            return []  # a poll whose shipping began may be out: its pairs stay finished
        return [
            (item.envelope.req_hash, item.result.candidate)
            if isinstance(item, Pair)
            else (item.req_hash, item.candidate)
            for item in self.prepared.items
        ]


Ship = Callable[[Polled, list[Comparison]], Awaitable[None]]
GiveUp = Callable[[list[tuple[str, str]]], None]


class BuildStage:
    """Builds polls' comparisons in order, the slow ones in a worker thread, and ships them."""

    def __init__(
        self,
        builder: ComparisonBuilder,
        ship: Ship,
        give_up: GiveUp,
        bound: Bound | None,
        pairs_per_record: int = 1,
    ) -> None:
        self._builder = builder
        self._ship = ship
        self._give_up = give_up  # told the pairs of polls given up: the join forgets they left
        self._bound = bound  # None: no embedder, nothing ever waits for it
        self.pairs_per_s: float | None = None  # ΔS builds, measured (a moving average)
        # the most pairs one record read can complete: a request whose results all came first
        self._per_record = max(pairs_per_record, 1)
        self._room = asyncio.Event()  # set whenever a queued poll leaves
        self._queue: deque[Polled] = deque()  # the head is being built or shipped
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self.backlog = 0  # pairs queued for the embedder (the head's included)
        self._paused_since: float | None = None
        self.paused_s = 0.0
        self.pauses = 0
        self.retries = 0  # builds retried after a transient embedder failure
        self._last_log = -_MIN_PAUSE_LOG_S

    # ------------------------------------------------------------------ intake
    async def submit(self, outputs: list[Output], watermark: int) -> None:
        """Queue a poll (built and shipped at once when nothing waits and nothing needs ΔS).

        Raises what a queued poll's build or shipping raised (the comparator then stops)."""
        self._raise_failure()
        started_ns = time.time_ns()
        prepared = self._builder.prepare(outputs) if outputs else None
        slow = prepared is not None and self._builder.needs_embedding(prepared)
        if not slow and not self._queue:
            polled = Polled(outputs, prepared, watermark, started_ns, 0)
            await self._ship(polled, self._builder.finish(prepared) if prepared is not None else [])
            return
        if not outputs and self._queue and not self._queue[-1].outputs and len(self._queue) > 1:
            self._queue[-1].watermark = max(self._queue[-1].watermark, watermark)  # nothing to build
            return
        pairs = sum(1 for item in prepared.items if isinstance(item, Pair)) if prepared and slow else 0
        self._queue.append(Polled(outputs, prepared, watermark, started_ns, pairs, slow))
        self.backlog += pairs
        if self._task is None:
            self._task = asyncio.create_task(self._work())

    @property
    def limit(self) -> int | None:
        """Pairs that may wait for the embedder now (None: no embedder)."""
        bound = self._bound
        if bound is None:
            return None
        if self.pairs_per_s is None:
            return min(FIRST_LIMIT, bound.max_pairs)
        floor = min(MIN_LIMIT, bound.max_pairs)
        return max(min(int(self.pairs_per_s * bound.seconds), bound.max_pairs), floor)

    def room(self) -> int:
        """Records the next poll may take: what is left of ``limit`` in records that may each
        complete ``pairs_per_record`` pairs; 0 once that is less than one record, until the
        backlog is down to half of ``limit``."""
        self._raise_failure()
        limit = self.limit
        if limit is None:
            return sys.maxsize
        now = time.monotonic()
        left = (limit - self.backlog) // self._per_record
        if not self.backlog:
            left = max(left, 1)  # one record at a time, even with a bound under pairs_per_record
        if len(self._queue) >= MAX_QUEUED_POLLS:
            left = 0  # shipping, not ΔS, is what is slow: as many polls wait as may
        if self._paused_since is None and left < 1:
            self._paused_since = now
            self.pauses += 1
            if now - self._last_log >= _MIN_PAUSE_LOG_S:
                self._last_log = now
                log.warning(
                    "ΔS is slower than arrival: %d pairs wait for the embedder; fetching paused until "
                    "%d are left (counted in shadowlane_compare_intake_paused_seconds_total)",
                    self.backlog,
                    limit // 2,
                )
        elif (
            self._paused_since is not None
            and self.backlog <= limit // 2
            and len(self._queue) <= MAX_QUEUED_POLLS // 2
        ):
            self.paused_s += now - self._paused_since
            self._paused_since = None
        return 0 if self._paused_since is not None else max(left, 1)

    async def wait_for_room(self, timeout_s: float) -> None:
        """Wait, up to ``timeout_s``, until a queued poll leaves (the loop polls again then, not
        after a full fetch timeout of paused partitions)."""
        self._room.clear()
        if self.paused and self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), timeout_s)
        self._raise_failure()

    @property
    def paused(self) -> bool:
        return self._paused_since is not None

    def counters(self) -> dict[str, float]:
        """``intake_paused_seconds`` (up to now), ``intake_pauses`` and ``delta_s_retries``, monotonic."""
        running = time.monotonic() - self._paused_since if self._paused_since is not None else 0.0
        return {
            "intake_paused_seconds": self.paused_s + running,
            "intake_pauses": self.pauses,
            "delta_s_retries": self.retries,
        }

    def gauges(self) -> dict[str, float]:
        """``delta_s_backlog`` (pairs waiting for the embedder), its bound ``delta_s_backlog_limit``,
        ``delta_s_pairs_per_s`` (the measured build rate, 0 until measured) and ``build_queue``
        (polls)."""
        return {
            "delta_s_backlog": self.backlog,
            "delta_s_backlog_limit": self.limit or 0,
            "delta_s_pairs_per_s": round(self.pairs_per_s or 0.0, 1),
            "build_queue": len(self._queue),
        }

    # ------------------------------------------------------------------ work
    async def _work(self) -> None:
        try:
            while self._queue:
                polled = self._queue[0]
                comparisons = await self._build(polled)
                polled.shipping = True
                await self._ship(polled, comparisons)
                self._queue.popleft()
                self.backlog -= polled.pairs
                self._room.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced by the next submit(), room() or wait_for_room()
            self._failure = exc
        finally:
            self._task = None
            self._room.set()  # a waiter learns the failure, or that nothing is left

    async def _build(self, polled: Polled) -> list[Comparison]:
        """The poll's comparisons; an embedder's transient failure (an embeddings server's 429,
        5xx or time-out) is retried with backoff, counted, for as long as it lasts: the backlog
        then stops fetching, and nothing is emitted without its ΔS."""
        prepared = polled.prepared
        if prepared is None:  # a poll with only a watermark
            return []
        if not polled.slow:
            return self._builder.finish(prepared)
        delay = RETRY_FIRST_S
        while True:
            started = time.perf_counter()
            try:
                comparisons = await asyncio.to_thread(self._builder.finish, prepared)
            except RetriableError as exc:
                self.retries += 1
                if delay == RETRY_FIRST_S or delay >= RETRY_MAX_S:
                    log.warning("ΔS failed (%s); retrying in %.1fs (counted in delta_s_retries)", exc, delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, RETRY_MAX_S)
                continue
            self._measured(polled.pairs, time.perf_counter() - started)
            return comparisons

    def _measured(self, pairs: int, seconds: float) -> None:
        if pairs < _MEASURED_PAIRS or seconds <= 0.0:
            return
        rate = pairs / seconds
        last = self.pairs_per_s
        self.pairs_per_s = rate if last is None else (1 - _SMOOTHING) * last + _SMOOTHING * rate

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def drain(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for every queued poll to be shipped. On time-out the rest is
        given up (its records stay uncommitted: the partitions' next owner reads them again) and
        False is returned. A failure not yet raised by :meth:`submit` is logged here."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while (task := self._task) is not None:  # a poll submitted meanwhile starts a new task
            backlog = self.backlog
            if await wait_bounded([task], deadline - time.monotonic()):  # cancelled: out of time
                log.warning(
                    "%d pairs still waited for ΔS after %.0fs; their records stay uncommitted",
                    backlog,
                    timeout_s,
                )
                break
        given_up = bool(self._queue)
        if given_up:
            self._give_up([pair for polled in self._queue for pair in polled.leaving()])
        self._queue.clear()
        self.backlog = 0
        if self._failure is not None:
            log.error("building comparisons failed: %s", self._failure)
            self._failure = None
        self.room()  # a pause ends with its backlog
        return not given_up
