"""The staged-rollout state machine: advance only on PASS, roll back at once, hold otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from shadowlane.contracts.flag_manifest import FlagSpec
from shadowlane.rollout.forecast import Forward
from shadowlane.rollout.manifest import load_manifest
from shadowlane.rollout.router import assign
from shadowlane.rollout.staging import StagedRollout

MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "flags" / "feature_flags.yml"


@dataclass(frozen=True)
class D:
    verdict: str
    hard_stop: bool = False


def _spec() -> tuple[str, FlagSpec]:
    manifest = load_manifest(MANIFEST)
    name = next(iter(manifest.flags))
    return name, manifest.flags[name]


def _rollout(max_looks: int = 3) -> StagedRollout:
    name, spec = _spec()
    rollout = StagedRollout(name, spec, max_looks=max_looks)
    rollout.start()
    return rollout


def test_passes_walk_every_stage_then_complete() -> None:
    rollout = _rollout()
    actions = [rollout.on_decision(D("PASS")).action for _ in rollout.spec.stages]
    assert actions == ["advance"] * (len(rollout.spec.stages) - 1) + ["complete"]
    assert [s.weight for s in rollout.history] == [0.0, *rollout.spec.stages[1:], 1.0]
    assert rollout.done


def test_inconclusive_holds_then_stalls_without_advancing() -> None:
    rollout = _rollout(max_looks=3)
    rollout.on_decision(D("PASS"))  # into the first canary stage
    steps = [rollout.on_decision(D("INCONCLUSIVE")) for _ in range(3)]
    assert [s.action for s in steps] == ["hold", "hold", "stalled"]
    assert {s.weight for s in steps} == {rollout.spec.stages[1]}
    with pytest.raises(RuntimeError, match="ended"):
        rollout.on_decision(D("PASS"))


@pytest.mark.parametrize(
    "decision", [D("FAIL"), D("INCONCLUSIVE", hard_stop=True), D("PASS", hard_stop=True)]
)
def test_fail_or_hard_stop_rolls_back_at_once(decision: D) -> None:
    rollout = _rollout()
    rollout.on_decision(D("PASS"))
    rollout.on_decision(D("PASS"))
    step = rollout.on_decision(decision)
    assert step.action == "rollback"
    assert rollout.done
    config = rollout.route_config(epoch=1, salt="s", baseline="prod", candidate="cand")
    assert config.rules[0].strategy == "off"
    assert {assign(f"u{i}", config).arm for i in range(2000)} == {"baseline"}


def test_route_config_per_stage_serves_the_stage_weight_and_only_adds_keys() -> None:
    rollout = _rollout()
    shadow = rollout.route_config(epoch=1, salt="s", baseline="prod", candidate="cand")
    assert shadow.rules[0].strategy == "shadow"
    assert shadow.rules[0].shadow_ratio == rollout.spec.traffic.shadow_ratio
    previous: set[str] = set()
    ids = [f"user-{i}" for i in range(20_000)]
    for _ in rollout.spec.stages[1:]:
        rollout.on_decision(D("PASS"))
        config = rollout.route_config(epoch=1, salt="s", baseline="prod", candidate="cand")
        served = {i for i in ids if assign(i, config).arm == "candidate"}
        assert previous <= served
        assert abs(len(served) / len(ids) - rollout.weight) < 0.02
        previous = served


def test_decisions_before_start_are_refused() -> None:
    name, spec = _spec()
    with pytest.raises(RuntimeError, match="start"):
        StagedRollout(name, spec).on_decision(D("PASS"))


WAY = Forward(
    "PASS", 0.9, 2_100, 1_300, 4_800, 2_100.0, 1_300.0, 4_800.0, 1.0, 1_000_000,
    "heading to PASS (90 %), about 2,100 more requests",
)  # fmt: skip


@dataclass(frozen=True)
class Undecided:
    """An INCONCLUSIVE that carries its way forward (as ``gates.Decision`` does)."""

    verdict: str = "INCONCLUSIVE"
    hard_stop: bool = False
    forward: Forward | None = WAY
    blocking: tuple[str, ...] = ("error_rate_max",)


def test_holds_and_the_stall_carry_the_way_forward() -> None:
    rollout = _rollout(max_looks=2)
    hold, stall = rollout.on_decision(Undecided()), rollout.on_decision(Undecided())
    assert (hold.action, stall.action) == ("hold", "stalled")
    assert hold.reason.endswith("error_rate_max blocks; heading to PASS (90 %), about 2,100 more requests")
    assert "last way forward: error_rate_max blocks; heading to PASS" in stall.reason
    assert (stall.forward, stall.blocking) == (WAY, ("error_rate_max",))
    assert stall.as_dict()["forward"]["median"] == 2_100
    assert "forward" not in rollout.history[0].as_dict()  # the start has none
