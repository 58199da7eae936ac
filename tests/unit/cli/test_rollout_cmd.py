"""shadowlane/cli/rollout_cmd.py: each flag of ``rollout`` reaches the staged rollout it drives,
run here by the real driver against in-memory route and summary stand-ins (the Kafka side is
tests/integration/test_rollout.py): the window waited, the holds allowed, the samples alpha is
spent over, the router's epoch and salt, who is recorded, and what is printed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import cast

import orjson
import pytest

from shadowlane.cli import rollout_cmd
from shadowlane.cli.main import build_parser, main
from shadowlane.cli.progress import Progress
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout.audit import default_who
from shadowlane.rollout.forecast import describe
from shadowlane.rollout.gates import Decision
from shadowlane.rollout.manifest import load_manifest
from shadowlane.rollout.staging import Step
from tests.support.summaries import crafted_summary

MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "flags" / "feature_flags.yml"
FLAG, CANDIDATE = "grammar_b", "grammar-b"


class Routes:
    """Where the route configs go (the control topic in production)."""

    def __init__(self) -> None:
        self.published: list[tuple[RouteConfig, str]] = []

    async def publish(self, config: RouteConfig, *, who: str, why: str) -> None:
        self.published.append((config, who))


class Windows:
    """Each look's merged summary: none, or a green one of ``n`` comparisons."""

    def __init__(self, n: int = 0) -> None:
        self.n = n

    async def summary(self, candidate: str, start_ms: int, end_ms: int) -> WindowSummary | None:
        return crafted_summary(candidate, 0, 60_000, self.n) if self.n else None


def _args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["rollout", "--manifest", str(MANIFEST), "--flag", FLAG, *extra])


async def _drive(args: argparse.Namespace, windows: Windows) -> tuple[list[Step], Routes, list[float]]:
    routes, waits = Routes(), []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    plan = rollout_cmd.plan(args, load_manifest(args.manifest))
    steps = await rollout_cmd.run_plan(
        plan, sink=routes, source=windows, audit=None, progress=Progress.silent(), sleep=sleep
    )
    return steps, routes, waits


async def test_window_epoch_salt_and_who_reach_the_rollout() -> None:
    steps, routes, waits = await _drive(
        _args("--window-s", "7", "--epoch", "3", "--salt", "pepper", "--who", "carol", "--max-looks", "1"),
        Windows(),
    )
    assert waits == [7.0]
    config, who = routes.published[0]
    assert (config.epoch, config.salt, who) == (3, "pepper", "carol")
    assert [s.action for s in steps] == ["start", "stalled"]
    steps, routes, waits = await _drive(_args("--max-looks", "1"), Windows())
    spec = load_manifest(MANIFEST).flags[FLAG]
    assert waits == [spec.evaluation_window_s]  # the flag's own window
    config, who = routes.published[0]
    assert (config.epoch, config.salt, who) == (1, FLAG, default_who())


async def test_max_looks_is_how_long_a_stage_may_hold() -> None:
    steps, _, waits = await _drive(_args("--max-looks", "3", "--window-s", "1"), Windows())
    assert [s.action for s in steps] == ["start", "hold", "hold", "stalled"]
    assert len(waits) == 3
    steps, _, _ = await _drive(_args("--window-s", "1"), Windows())
    assert len(steps) == 1 + 12  # the default, 12 looks


async def test_planned_samples_is_what_alpha_is_spent_over() -> None:
    spending = ("--look-rule", "alpha_spending", "--window-s", "1")
    # every window green with 800 comparisons: planned for 800, each look spends all of alpha
    steps, routes, _ = await _drive(_args(*spending, "--planned-samples", "800"), Windows(800))
    assert steps[-1].action == "complete"
    assert [c.rules[0].candidate_weight for c, _ in routes.published][-1] == 1.0
    # planned for far more, a look at 800 spends almost nothing: no stage can PASS yet
    steps, _, _ = await _drive(
        _args(*spending, "--planned-samples", "10000000", "--max-looks", "2"), Windows(800)
    )
    assert [s.action for s in steps] == ["start", "hold", "stalled"]


async def test_look_rule_chooses_the_sequence_or_alpha_spending() -> None:
    manifest = load_manifest(MANIFEST)
    spec = manifest.flags[FLAG]
    # --planned-samples: where the sequence is tightest (15 × min_samples), or what alpha is spent over
    assert rollout_cmd.plan(_args(), manifest).planned_samples == 15 * spec.min_samples
    spending = rollout_cmd.plan(_args("--look-rule", "alpha_spending"), manifest)
    assert (spending.look_rule, spending.planned_samples) == ("alpha_spending", 5 * spec.min_samples)
    judge = rollout_cmd.look_evaluator(FLAG, "confidence_sequence", 3000)
    first = cast(Decision, judge(spec, crafted_summary(CANDIDATE, 0, 60_000, 800), 1))
    assert (first.look.rule, first.look.planned_n) == ("confidence_sequence", 3000)
    judge = rollout_cmd.look_evaluator(FLAG, "alpha_spending", 3000)
    spent = cast(Decision, judge(spec, crafted_summary(CANDIDATE, 0, 60_000, 800), 1))
    assert spent.look.rule == "union_bound"
    # the sequence keeps deciding past its planned samples: tuned at 200, 2,000 green a look completes
    steps, _, _ = await _drive(_args("--window-s", "1", "--planned-samples", "200"), Windows(2000))
    assert steps[-1].action == "complete"


async def test_holds_and_the_stall_carry_the_way_forward() -> None:
    # 800 green comparisons, no errors: "errors ≤ 0.5 %" is not provable yet, whatever else passes
    steps, _, _ = await _drive(_args("--window-s", "1", "--max-looks", "2"), Windows(800))
    assert [s.action for s in steps] == ["start", "hold", "stalled"]
    hold, stall = steps[1], steps[2]
    assert hold.forward is not None
    assert "error_rate_max" in hold.blocking
    assert hold.forward.reason in hold.reason
    assert stall.forward is not None
    assert "last way forward: " in stall.reason
    assert "more requests" in stall.reason
    data = orjson.loads(rollout_cmd.output(_args("--json"), steps))
    assert data["forward"]["median"] == stall.forward.median
    assert data["steps"][2]["blocking"] == list(stall.blocking)
    text = rollout_cmd.output(_args(), steps).splitlines()
    assert text[-1] == f"way forward: {describe(stall.forward, stall.blocking)}"


def test_json_is_one_object_and_the_summary_ends_with_the_outcome() -> None:
    steps = [
        Step("start", 0, 0.0, 0, None, "stage 1 of 5: shadow"),
        Step("advance", 1, 0.05, 1, "PASS", "gates green: graduating to canary 5%"),
        Step("rollback", 1, 0.05, 1, "FAIL", "a gate failed: baseline serves everything"),
    ]
    printed = rollout_cmd.output(_args("--json"), steps)
    assert "\n" not in printed
    data = orjson.loads(printed)
    assert (data["flag"], data["outcome"], data["weight"]) == (FLAG, "rollback", 0.05)
    assert [s["action"] for s in data["steps"]] == ["start", "advance", "rollback"]
    text = rollout_cmd.output(_args(), steps).splitlines()
    assert text[0].split() == ["step", "traffic", "look", "verdict", "reason"]
    assert text[2].split()[:4] == ["advance", "5%", "1", "PASS"]
    assert text[-1] == f"rollout {FLAG}: ROLLED BACK at 5%: the baseline serves everything"
    assert rollout_cmd.EXIT["rollback"] == 1


def test_manifest_and_flag_are_read_before_anything_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollout", "--manifest", str(MANIFEST), "--flag", "no_such_flag"]) == 3
    assert "no flag 'no_such_flag'" in capsys.readouterr().err
    broken = tmp_path / "flags.yml"
    broken.write_text("flags: [not, a, mapping]\n")
    assert main(["rollout", "--manifest", str(broken), "--flag", FLAG]) == 3
    assert str(broken) in capsys.readouterr().err
