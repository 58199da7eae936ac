"""Broker outage: the prod service's latency while the hook's backlog drains after a real outage.

A second local broker (its own state folder in a temporary directory, the installed jars linked
from ``$SHADOWLANE_HOME/kafka/libs``, OS-chosen ports) serves one long-lived publisher with the
default hook settings and the README's producer settings, so other benchmarks and tests on the
shared broker are never affected. The prod app is the hook_overhead bench's (5 ms handler, ~1 KB
bodies, behind ``ShadowMirrorMiddleware``), driven open loop at a fixed rate through four phases:

- warm-up (not recorded);
- broker up;
- outage: the broker JVM is SIGSTOPped for 60 s (10 s with ``--quick``): its sockets stay open but
  nothing is answered, so requests time out and the hook's queue fills, then drops (counted);
- recovery: from SIGCONT until the backlog has drained (everything the hook had accepted by then
  published or counted as failed), and at least ``MIN_RECOVERY`` requests.

A request belongs to the phase in which it was scheduled. Reported per rate: the end-to-end p99
(scheduled start to last response byte) of recovery vs broker up (target ≤ 1.05×), with p50s and
the event-loop lag of each phase (the lateness of a 1 ms ticker on the prod loop). A p99 over
fewer requests is lower on a heavy-tailed machine, so the broker-up p99 compared is the median
p99 of broker-up windows holding as many requests as the recovery window.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from hdrh.histogram import HdrHistogram

from shadowlane.hook.asgi import ASGIApp, ShadowMirrorMiddleware
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.kafka.bootstrap import client_kwargs
from shadowlane.kafka.local import LocalKafka
from shadowlane.settings import Settings
from tests.bench.bench_hook_overhead import MAX_INFLIGHT, PRODUCER, RoundStats, Timing, handler, one, timed
from tests.bench.common import BenchResult, bench_settings, create_topic

TARGET = 1.05
MIN_RECOVERY = 300  # requests: the recovery window holds at least this many
TICK_S = 0.001
pc = time.perf_counter_ns


def _hist() -> Any:
    return HdrHistogram(1, 60 * 10**9, 3)


@dataclass
class Kept(RoundStats):
    """Also keeps every end-to-end time (ns), in schedule order."""

    e2e_ns: list[int] = field(default_factory=list)

    def record(self, i: int, t: Timing, due: int) -> None:
        super().record(i, t, due)
        self.e2e_ns.append(max(1, t.done - due))


def windowed_p99_ms(values: list[int], size: int) -> float:
    """The median p99 of consecutive windows of ``size`` values."""
    windows = [sorted(values[i : i + size]) for i in range(0, len(values) - size + 1, size)]
    return round(statistics.median(w[int(0.99 * (len(w) - 1))] for w in windows) / 1e6, 2)


@dataclass
class Phase:
    name: str
    rs: Kept = field(default_factory=lambda: Kept(0))
    lag: Any = field(default_factory=_hist)  # ns late, of a 1 ms ticker

    def summary(self) -> dict[str, Any]:
        e2e, lag = self.rs.e2e, self.lag
        return {
            "requests": e2e.get_total_count(),
            "e2e_ms": {p: round(e2e.get_value_at_percentile(q) / 1e6, 2) for p, q in _PCTS},
            "e2e_max_ms": round(e2e.get_max_value() / 1e6, 2),
            "loop_lag_ms": {p: round(lag.get_value_at_percentile(q) / 1e6, 2) for p, q in _PCTS},
            "loop_lag_max_ms": round(lag.get_max_value() / 1e6, 2),
        }


_PCTS = (("p50", 50.0), ("p99", 99.0))


class Driver:
    """Open loop at ``rate``: request i is scheduled at t0 + i/rate and recorded in the phase that
    is current when it is scheduled; a ticker records the loop's lag in the same phase."""

    def __init__(self, app: ASGIApp, rate: int, tag: str) -> None:
        self.app, self.rate, self.tag = app, rate, tag
        self.phase = Phase("warmup")
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _requests(self) -> None:
        sem, interval = asyncio.Semaphore(MAX_INFLIGHT), 1_000_000_000 // self.rate
        t0, i = pc() + 1_000_000, 0
        while not self._stop.is_set():
            due = t0 + i * interval
            if (delay := due - pc()) > 0:
                await asyncio.sleep(delay / 1e9)
            rs = self.phase.rs
            rs.waited += sem.locked()
            await sem.acquire()
            task = asyncio.create_task(one(self.app, i, due, self.tag, rs, sem))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            i += 1

    async def _ticker(self) -> None:
        while not self._stop.is_set():
            start = pc()
            await asyncio.sleep(TICK_S)
            self.phase.lag.record_value(max(1, pc() - start - int(TICK_S * 1e9)))

    async def run_until_stopped(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._requests())
            tg.create_task(self._ticker())
        await asyncio.gather(*self._tasks)

    def stop(self) -> None:
        self._stop.set()


def accounted(pub: ShadowPublisher, accepted: int) -> bool:
    """The first ``accepted`` captures the hook took are all acknowledged or counted as lost."""
    st = pub.stats
    return st.published + st.send_failed + st.dropped_invalid + st.dropped_too_large >= accepted


async def one_rate(
    settings: Settings, kwargs: dict[str, Any], pid: int, rate: int, times: tuple[float, float, float]
) -> BenchResult:
    warm_s, up_s, outage_s = times
    topic = f"{settings.topics.prefix}outage.{rate}"
    await create_topic(kwargs, topic, settings.topics.partitions)
    pub = ShadowPublisher(
        settings.hook, topic=topic, producer_factory=lambda: AIOKafkaProducer(**kwargs, **PRODUCER)
    )
    await pub.start()
    await asyncio.wait_for(pub.connected.wait(), 30)
    driver = Driver(ShadowMirrorMiddleware(timed(handler), pub), rate, f"o{rate}")
    up, outage, recovery = Phase("broker_up"), Phase("outage"), Phase("recovery")
    info: dict[str, Any] = {}
    running = asyncio.create_task(driver.run_until_stopped())
    try:
        await asyncio.sleep(warm_s)
        driver.phase = up
        await asyncio.sleep(up_s)
        os.kill(pid, signal.SIGSTOP)
        driver.phase = outage
        await asyncio.sleep(outage_s)
        info["backlog_at_resume"] = pub.queued
        accepted = pub.stats.enqueued
        os.kill(pid, signal.SIGCONT)
        driver.phase = recovery
        resumed = time.monotonic()
        while time.monotonic() - resumed < 300:
            if "drain_s" not in info and accounted(pub, accepted):
                info["drain_s"] = round(time.monotonic() - resumed, 2)
            if "drain_s" in info and recovery.rs.e2e.get_total_count() >= MIN_RECOVERY:
                break
            await asyncio.sleep(0.05)
        info["recovery_s"] = round(time.monotonic() - resumed, 2)
    finally:
        os.kill(pid, signal.SIGCONT)  # never leave the broker stopped
        driver.stop()
        await running
        await pub.stop(drain_timeout_s=30)
    st = pub.stats
    lost = st.dropped_queue_full + st.send_failed + st.dropped_invalid + st.dropped_too_large
    all_counted = st.seen == st.published + lost + st.dropped_not_running + st.sampled_out
    phases = {p.name: p.summary() for p in (up, outage, recovery)}
    base = windowed_p99_ms(up.rs.e2e_ns, min(len(recovery.rs.e2e_ns), len(up.rs.e2e_ns)))
    var = phases["recovery"]["e2e_ms"]["p99"]
    return BenchResult(
        name=f"hook_outage.recovery_e2e_p99@{rate}", unit="ms", baseline_name="broker_up", baseline=base,
        variant_name="recovery", variant=var, ratio=var / base, target=f"≤ {TARGET}×",
        passed=var / base <= TARGET, higher_is_better=False,
        extra={"outage_s": outage_s, "phases": phases, **info, "publisher": st.as_dict(),
               "all_counted": all_counted},
    )  # fmt: skip


def second_broker(settings: Settings, root: Path) -> LocalKafka:
    """A broker under ``root`` that reuses the installed jars (no Maven run)."""
    libs = settings.state_dir.resolve() / "kafka" / "libs"
    if not (libs / ".installed").is_file():
        raise RuntimeError(f"no installed Kafka jars at {libs}: run `shadowlane kafka install` first")
    broker = LocalKafka(root, settings.kafka_pom, num_partitions=settings.topics.partitions)
    broker.kafka_dir.mkdir(parents=True)
    broker.libs_dir.symlink_to(libs, target_is_directory=True)
    return broker


async def run(quick: bool) -> list[BenchResult]:
    settings = bench_settings("hookout")
    times = (2.0, 5.0, 10.0) if quick else (3.0, 20.0, 60.0)
    rates = (60, 200)
    root = Path(tempfile.mkdtemp(prefix="shadowlane-outage-"))
    broker = second_broker(settings, root)
    results: list[BenchResult] = []
    logging.disable(logging.CRITICAL)  # timeouts and reconnects are expected; the stats count them
    try:
        bootstrap = await asyncio.to_thread(broker.start)
        pid = int(broker.status()["pid"])
        kwargs = client_kwargs(settings, bootstrap)
        for rate in rates:
            results.append(await one_rate(settings, kwargs, pid, rate, times))
    finally:
        logging.disable(logging.NOTSET)
        await asyncio.to_thread(broker.stop)
        shutil.rmtree(root, ignore_errors=True)
    return results
