"""The chaos run: shadow and comparator members SIGKILLed at random moments while requests flow.

Two shadow members and two comparator members run as ``shadowlane`` processes (what an operator
runs). Requests are published at a steady rate; meanwhile, at random moments (seeded), a random
member is killed with SIGKILL (no revoke, no final commit) and a replacement started after a
random pause. Once the kills are over, the run waits until a ``read_committed`` reader of the
compare topic has every request compared and the window summaries add up, then reads the
shadow-results topic the same way. The figures say what a consumer of the topics saw:

- ``lost``: requests without a comparison; ``duplicates``: comparisons beyond one per
  (request, candidate); ``disagreeing``: pairs whose copies disagree on the outcome;
- ``window_sum``: comparisons counted by all summaries together (must equal ``distinct``);
- ``shadow_duplicates``: shadow results beyond one per (request, candidate); ``re_replays``:
  candidate calls beyond one per request (what killed shadow members had in flight, replayed
  again by the partitions' next owners);
- ``recover_s``: from the last kill until every request had its shadow result and comparison;
  ``settled_s``: until the summaries added up too (a window closes a join window after its end).

``tests/integration/test_chaos.py`` asserts them; ``make chaos`` (``python -m tests.chaos``)
prints them, with a run at exactly-once off beside it for comparison.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.demo.procs import WorkerProcess
from shadowlane.hashing import partition_for
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.bootstrap import client_kwargs
from shadowlane.settings import CompareSettings, ControlSettings, Settings, ShadowSettings, TopicSettings
from tests.support.candidates import CALLS_FILE_ENV
from tests.support.factories import envelope

CONCURRENCY = 16  # per shadow member
SHADOW_MEMBERS = 2


def uncommitted_bound(rate: float) -> float:
    """What one shadow member can have replayed but not committed when it is killed: its records
    in flight (twice its concurrency) and about 2 s of its share of the traffic (a commit every
    0.5 s, the one running when the next is due, and its round trips on a loaded machine)."""
    return 2 * CONCURRENCY + 2.0 * rate / SHADOW_MEMBERS


SHADOW_ARGS = ("shadow", "--candidate", "cand", "--callable", "tests.support.candidates:recorded_echo")
COMPARE_ARGS = ("compare",)


@dataclass
class ChaosFigures:
    exactly_once: bool
    seed: int
    requests: int
    kills: int
    comparisons: int  # records on the compare topic
    distinct: int  # distinct (request, candidate)
    lost: int
    duplicates: int
    disagreeing: int
    joined: int  # comparisons with a shadow result (the rest timed out waiting for one)
    summaries: int
    window_sum: int
    shadow_results: int
    shadow_duplicates: int
    shadow_kills: int
    candidate_calls: int  # every call the candidate received, killed members' included
    re_replays: int  # calls beyond one per request: the work a crash made the group redo
    recover_s: float  # last kill -> every request has its shadow result and its comparison
    settled_s: float  # last kill -> the summaries add up (windows close a join window later)
    elapsed_s: float
    complete: bool  # everything compared and summarised before the deadline

    def line(self) -> str:
        return " ".join(
            f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in asdict(self).items()
        )


def chaos_settings(bootstrap: str, *, exactly_once: bool) -> Settings:
    run = uuid.uuid4().hex[:10]
    return Settings(
        bootstrap_servers=bootstrap,
        topics=TopicSettings(prefix=f"chaos-{run}.", partitions=6),
        shadow=ShadowSettings(
            candidate="cand",
            group_prefix=f"chaos-{run}.shadow.",
            rate_cap=5000.0,
            concurrency=CONCURRENCY,
            lambda_ratio=0.0,
            dedupe_ttl_s=0.0,  # exactly-once must hold on its own, without the retry-storm dedupe
            exactly_once=exactly_once,
            drain_timeout_s=5.0,
        ),
        compare=CompareSettings(
            group_id=f"chaos-{run}.compare",
            candidates=("cand",),
            baseline_candidate=None,
            embedder="none",
            window_s=60.0,  # longer than a group's recovery (session timeout, rebalance, catching up)
            summary_window_s=2.0,
            summary_grace_s=1.0,
            exactly_once=exactly_once,
            drain_timeout_s=5.0,
        ),
        control=ControlSettings(enabled=False),
    )


class _Tail:
    """A ``read_committed`` reader of some topics from their beginning, in the background."""

    def __init__(self, kwargs: dict[str, Any], topics: list[str]) -> None:
        self.records: dict[str, list[bytes]] = {topic: [] for topic in topics}
        self._consumer = AIOKafkaConsumer(
            *topics,
            **kwargs,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=300)
            for tp, records in batches.items():
                self.records[tp.topic].extend(r.value for r in records if r.value is not None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()


class _Members:
    """The running worker processes; kills and replaces them."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.calls = log_dir / f"{settings.topics.prefix}candidate-calls"  # one per run
        self.running: list[tuple[str, WorkerProcess]] = []
        self.started = 0
        self.killed: Counter[str] = Counter()

    async def add(self, kind: str) -> None:
        self.started += 1
        args = SHADOW_ARGS if kind == "shadow" else COMPARE_ARGS
        log_path = self.log_dir / f"{kind}-{self.started}.log"
        env = {CALLS_FILE_ENV: str(self.calls)}
        self.running.append(
            (kind, await WorkerProcess.start(self.settings, *args, log_path=log_path, secrets=env))
        )

    async def kill_one(self, rng: random.Random) -> str:
        kind, proc = self.running.pop(rng.randrange(len(self.running)))
        await proc.kill()
        self.killed[kind] += 1
        return kind

    async def stop_all(self) -> None:
        for _kind, proc in self.running:
            try:
                await proc.terminate(timeout_s=40)
            except Exception:  # a member that will not stop is killed: the figures are read already
                await proc.kill()
        self.running.clear()


async def _publish(
    kwargs: dict[str, Any], topic: str, partitions: int, n: int, rate: float, tag: str
) -> None:
    producer = AIOKafkaProducer(**kwargs, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        started = time.monotonic()
        for i in range(n):
            env = envelope(i, tag=tag)
            await producer.send(
                topic,
                encode(env),
                key=env.req_hash.encode(),
                partition=partition_for(env.req_hash, partitions),
            )
            lag = started + (i + 1) / rate - time.monotonic()
            if lag > 0:
                await asyncio.sleep(lag)
        await producer.flush()
    finally:
        await producer.stop()


def _figures(tail: _Tail, settings: Settings) -> tuple[int, int, int, int, int, int]:
    """(records, distinct pairs, disagreeing pairs, joined pairs, summaries, summed window counts)."""
    t = settings.topics
    comparisons = [decode(v, Comparison) for v in tail.records[t.compare_topic]]
    outcomes: dict[tuple[str, str], set[str]] = {}
    for c in comparisons:
        outcomes.setdefault((c.req_hash, c.candidate), set()).add(c.outcome)
    summaries = [decode(v, WindowSummary) for v in tail.records[t.summary_topic]]
    disagreeing = sum(1 for seen in outcomes.values() if len(seen) > 1)
    joined = sum(1 for seen in outcomes.values() if "joined" in seen)
    return (
        len(comparisons),
        len(outcomes),
        disagreeing,
        joined,
        len(summaries),
        sum(s.count for s in summaries),
    )


async def chaos_run(
    bootstrap: str,
    log_dir: Path,
    *,
    requests: int = 5000,
    rate: float = 250.0,
    kills: int = 6,
    seed: int | None = None,
    exactly_once: bool = True,
    deadline_s: float = 240.0,
) -> ChaosFigures:
    """One chaos run on the broker at ``bootstrap``; worker logs go to ``log_dir``."""
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    settings = chaos_settings(bootstrap, exactly_once=exactly_once)
    t = settings.topics
    kwargs = client_kwargs(settings, bootstrap)
    await ensure_topics(t, kwargs)
    members = _Members(settings, log_dir)
    tail = _Tail(kwargs, [t.compare_topic, t.summary_topic, t.shadow_results_topic])
    started = time.monotonic()
    last_kill = started
    try:
        for kind in ["shadow"] * SHADOW_MEMBERS + ["compare", "compare"]:
            await members.add(kind)
        for _kind, proc in members.running:
            await proc.wait_event("assigned", timeout_s=120)
        await tail.start()
        publishing = asyncio.create_task(
            _publish(kwargs, t.requests_topic, t.partitions, requests, rate, f"chaos{seed}")
        )
        span = requests / rate
        for _ in range(kills):  # spread over the publishing time and a little after it
            await asyncio.sleep(rng.uniform(0.3, 1.7) * span / kills)
            kind = await members.kill_one(rng)
            last_kill = time.monotonic()
            await asyncio.sleep(rng.uniform(0.0, 2.0))
            await members.add(kind)
        await publishing
        complete = False
        recover_s = deadline_s
        c = settings.compare
        closing_s = c.window_s + c.summary_window_s + c.summary_grace_s + 10.0
        while time.monotonic() - last_kill < deadline_s:
            _records, distinct, _dis, _joined, _n, window_sum = _figures(tail, settings)
            replayed = len(set(tail.records[t.shadow_results_topic]))
            if distinct >= requests and replayed >= requests and recover_s == deadline_s:
                recover_s = time.monotonic() - last_kill
            if recover_s < deadline_s and window_sum >= distinct:
                complete = True
                break
            if recover_s < deadline_s and time.monotonic() - last_kill > recover_s + closing_s:
                break  # every window has closed by now: the summaries will not add up any more
            await asyncio.sleep(0.5)
        settled_s = time.monotonic() - last_kill
        await asyncio.sleep(2.0)  # anything emitted twice would show up by now
        records, distinct, disagreeing, joined, summaries, window_sum = _figures(tail, settings)
    finally:
        await tail.stop()
        await members.stop_all()
    calls = len(members.calls.read_bytes().splitlines()) if members.calls.exists() else 0
    results = Counter(
        (r.req_hash, r.candidate)
        for r in (decode(v, ShadowResult) for v in tail.records[t.shadow_results_topic])
    )
    return ChaosFigures(
        exactly_once=exactly_once,
        seed=seed,
        requests=requests,
        kills=kills,
        comparisons=records,
        distinct=distinct,
        lost=requests - distinct,
        duplicates=records - distinct,
        disagreeing=disagreeing,
        joined=joined,
        summaries=summaries,
        window_sum=window_sum,
        shadow_results=sum(results.values()),
        shadow_duplicates=sum(results.values()) - len(results),
        shadow_kills=members.killed["shadow"],
        candidate_calls=calls,
        re_replays=calls - requests,
        recover_s=recover_s,
        settled_s=settled_s,
        elapsed_s=time.monotonic() - started,
        complete=complete,
    )
