"""The rollout driver's loop with in-memory sink, source and clock: configs, looks and audit order."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from shadowlane.contracts.audit import AuditEvent
from shadowlane.contracts.flag_manifest import FlagSpec
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout import gates
from shadowlane.rollout.audit import AuditLog
from shadowlane.rollout.driver import Targets, drive
from shadowlane.rollout.gates import Decision
from shadowlane.rollout.looks import sequence_look
from shadowlane.rollout.manifest import load_manifest
from shadowlane.rollout.staging import StagedRollout

MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "flags" / "feature_flags.yml"
TARGETS = Targets(baseline="prod", candidate="cand", epoch=1, salt="s")


@dataclass(frozen=True)
class D:
    verdict: str
    hard_stop: bool = False


@dataclass
class Sink:
    published: list[RouteConfig] = field(default_factory=list)

    async def publish(self, config: RouteConfig, *, who: str, why: str) -> None:
        self.published.append(config)


@dataclass
class Source:
    asked: list[tuple[str, int, int]] = field(default_factory=list)

    async def summary(self, candidate: str, start_ms: int, end_ms: int) -> WindowSummary | None:
        self.asked.append((candidate, start_ms, end_ms))
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


def _rollout() -> StagedRollout:
    manifest = load_manifest(MANIFEST)
    name = next(iter(manifest.flags))
    return StagedRollout(name, manifest.flags[name], max_looks=4)


async def _run(verdicts: list[D]) -> tuple[list[str], Sink, Source, list[int]]:
    looks: list[int] = []
    queue = list(verdicts)

    def evaluate(spec: FlagSpec, summary: WindowSummary | None, look: int) -> D:
        looks.append(look)
        return queue.pop(0)

    clock, sink, source = Clock(), Sink(), Source()
    steps = await drive(
        _rollout(),
        targets=TARGETS,
        sink=sink,
        source=source,
        evaluate=evaluate,
        audit=None,
        window_s=60,
        who="test",
        sleep=clock.sleep,
        clock=clock,
    )
    return [s.action for s in steps], sink, source, looks


async def test_green_rollout_publishes_one_config_per_stage_and_judges_each_stage_from_its_start() -> None:
    actions, sink, source, looks = await _run([D("INCONCLUSIVE")] + [D("PASS")] * 5)
    assert actions == ["start", "hold", "advance", "advance", "advance", "advance", "complete"]
    strategies = [(c.rules[0].strategy, c.rules[0].candidate_weight) for c in sink.published]
    assert strategies == [
        ("shadow", 0.0),
        ("canary", 0.05),
        ("canary", 0.25),
        ("canary", 0.5),
        ("canary", 1.0),
    ]
    assert looks == [1, 2, 1, 1, 1, 1]  # the look number restarts with each stage
    starts = [start for _, start, _ in source.asked]
    assert starts == [1_000, 1_000, 121_000, 181_000, 241_000, 301_000]  # since the stage's config


async def test_hard_stop_rolls_back_and_stops_publishing_the_candidate() -> None:
    actions, sink, _, _ = await _run([D("PASS"), D("INCONCLUSIVE", hard_stop=True)])
    assert actions == ["start", "advance", "rollback"]
    assert sink.published[-1].rules[0].strategy == "off"


class Audit:
    """The audit log, in memory."""

    def __init__(self) -> None:
        self.records: list[AuditEvent] = []

    async def write(self, record: AuditEvent) -> AuditEvent:
        self.records.append(record)
        return record


async def test_each_decision_and_hold_is_audited_with_its_way_forward() -> None:
    spec = load_manifest(MANIFEST).flags[_rollout().flag]

    def evaluate(spec: FlagSpec, summary: WindowSummary | None, look: int) -> Decision:
        return gates.evaluate(spec, summary, look=sequence_look(1, 3_000, index=look))

    clock, audit = Clock(), Audit()
    await drive(
        StagedRollout(_rollout().flag, spec, max_looks=2),
        targets=TARGETS,
        sink=Sink(),
        source=Source(),
        evaluate=evaluate,
        audit=cast(AuditLog, audit),
        window_s=60,
        who="test",
        sleep=clock.sleep,
        clock=clock,
    )
    decisions = [r for r in audit.records if r.what == "gate_decision"]
    assert len(decisions) == 2
    for record in decisions:  # no data yet: a verdict needs min_samples first
        assert record.details["forward"]["low"] == spec.min_samples
        assert record.details["decision"]["forward"] == record.details["forward"]
        assert "min_samples" in record.why
    steps = [r for r in audit.records if r.what == "rollout_step" and r.details["action"] != "start"]
    assert [r.details["action"] for r in steps] == ["hold", "stalled"]
    assert all(r.details["forward"]["low"] == spec.min_samples for r in steps)
    assert "last way forward" in steps[-1].why
