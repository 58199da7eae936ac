"""shadowlane/cli/gate_cmd.py without a broker: each flag of ``gate`` reaches the decision it
names, judged on crafted window summaries: the range, the candidate, alpha and its spending over
looks, the FAIL rule, Bonferroni, and the audit event (who, or none)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from shadowlane.cli import gate_cmd
from shadowlane.cli.main import build_parser, joined_negative_values, main
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout.audit import default_who
from shadowlane.rollout.gates import Decision
from shadowlane.rollout.manifest import load_manifest
from tests.support.summaries import crafted_summary

MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "flags" / "feature_flags.yml"
FLAG, CANDIDATE = "grammar_b", "grammar-b"
NOW = 1_750_000_000_000
MINUTE = 60_000


def _args(*extra: str) -> argparse.Namespace:
    argv = ["gate", "--manifest", str(MANIFEST), "--flag", FLAG, *extra]
    return build_parser().parse_args(joined_negative_values(argv))


def _windows(candidate: str = CANDIDATE, n: int = 300, count: int = 3) -> list[WindowSummary]:
    """``count`` green one-minute windows of ``n`` comparisons each, the last ending now."""
    return [
        crafted_summary(candidate, NOW - (i + 1) * MINUTE, NOW - i * MINUTE, n, seed=i) for i in range(count)
    ]


def _judge(args: argparse.Namespace, records: list[WindowSummary]) -> tuple[Decision, dict[str, Any]]:
    manifest = load_manifest(args.manifest)
    start, end = gate_cmd.gate_range(args, manifest.flags[FLAG], now_ms=NOW)
    return gate_cmd.judge(args, manifest, records, start, end)


def test_from_to_and_window_are_the_range_judged() -> None:
    spec = load_manifest(MANIFEST).flags[FLAG]
    assert gate_cmd.gate_range(_args(), spec, now_ms=NOW) == (NOW - int(spec.evaluation_window_s * 1000), NOW)
    assert gate_cmd.gate_range(_args("--window", "2m"), spec, now_ms=NOW) == (NOW - 2 * MINUTE, NOW)
    assert gate_cmd.gate_range(_args("--from", "-30m", "--to", "-10m"), spec, now_ms=NOW) == (
        NOW - 30 * MINUTE,
        NOW - 10 * MINUTE,
    )
    with pytest.raises(gate_cmd.GateInputError):
        gate_cmd.gate_range(_args("--from", "-1m", "--to", "-2m"), spec, now_ms=NOW)
    _, details = _judge(_args("--window", "2m"), _windows())
    assert details["partials"] == 2  # only the two windows that start in the last two minutes


def test_candidate_chooses_whose_summaries_are_judged() -> None:
    records = _windows("grammar-c")
    _, mine = _judge(_args(), records)
    _, theirs = _judge(_args("--candidate", "grammar-c"), records)
    assert (mine["candidate"], mine["partials"]) == (CANDIDATE, 0)  # the flag's candidate: no data
    assert (theirs["candidate"], theirs["partials"]) == ("grammar-c", 3)


def test_look_rule_alpha_planned_and_previous_samples_set_the_looks_level() -> None:
    spec = load_manifest(MANIFEST).flags[FLAG]
    sequence, _ = _judge(_args(), _windows())  # the default: a confidence sequence
    assert (sequence.look.rule, sequence.look.planned_n) == ("confidence_sequence", 15 * spec.min_samples)
    tuned, _ = _judge(_args("--planned-samples", "9000"), _windows())
    assert tuned.look.planned_n == 9000  # where the sequence is tightest
    assert tuned.look.alpha != sequence.look.alpha
    spaced, _ = _judge(_args("--previous-samples", "600"), _windows())
    assert spaced.look.alpha == sequence.look.alpha  # a sequence needs no increment, only the spacing
    assert spaced.look.fraction_prev * spaced.look.planned_n == pytest.approx(600)
    spending = ("--look-rule", "alpha_spending")
    fixed, _ = _judge(_args(*spending, "--alpha", "0.01"), _windows())
    assert (fixed.look.rule, fixed.look.alpha) == ("fixed", 0.01)
    first, _ = _judge(_args(*spending, "--planned-samples", "9000"), _windows())
    later, _ = _judge(_args(*spending, "--planned-samples", "9000", "--previous-samples", "600"), _windows())
    assert first.look.rule == "union_bound"
    assert first.look.fraction == pytest.approx(900 / 9000)
    assert first.look.alpha < 0.05  # an early look spends little
    assert later.look.fraction_prev == pytest.approx(600 / 9000)
    assert later.look.alpha < first.look.alpha  # only the increment since n = 600


def test_an_inconclusive_says_which_gates_block_and_how_far_a_verdict_is() -> None:
    # 2 × 75 green comparisons: below min_samples, a verdict needs at least the rest
    short, _ = _judge(_args("--window", "2m"), _windows(n=75))
    assert short.verdict == "INCONCLUSIVE"
    assert short.forward is not None
    assert short.forward.low is not None
    assert short.forward.low >= short.min_samples - short.n
    # 3 × 300 green comparisons, no errors yet: the error rate cannot be proven ≤ 0.5 % so soon
    decision, details = _judge(_args(), _windows(n=300))
    assert decision.verdict == "INCONCLUSIVE"
    assert "error_rate_max" in decision.blocking
    assert decision.forward is not None
    assert decision.forward.median is not None
    assert decision.forward.heading == "PASS"
    assert details["forward"]["reason"] == decision.forward.reason
    assert details["blocking"] == list(decision.blocking)
    assert decision.forward.rate_per_s == pytest.approx(900 / 180)  # the window's request rate
    assert decision.forward.seconds_median == pytest.approx(decision.forward.median / (900 / 180))
    assert decision.reason.startswith("undecided: ")
    text = gate_cmd.render(decision, CANDIDATE, 3)
    assert decision.forward.reason in text.splitlines()[-1]
    assert any(line.startswith("  way forward ") for line in text.splitlines())


def test_fail_rule_and_bonferroni_are_how_the_gates_judge() -> None:
    default, _ = _judge(_args(), _windows())
    assert (default.fail_rule, default.multiplicity) == ("worse_than_reference", "bonferroni")
    chosen, details = _judge(
        _args("--fail-rule", "ci_beyond_threshold", "--multiplicity", "per_gate"), _windows()
    )
    assert (chosen.fail_rule, chosen.multiplicity) == ("ci_beyond_threshold", "per_gate")
    assert details["fail_rule"] == "ci_beyond_threshold"


def test_no_audit_and_who_shape_the_audit_event() -> None:
    args = _args("--who", "carol")
    decision, details = _judge(args, _windows())
    record = gate_cmd.audit_record(args, decision, details)
    assert record is not None
    assert (record.what, record.who, record.name) == ("gate_decision", "carol", FLAG)
    assert record.details == details
    default = gate_cmd.audit_record(_args(), decision, details)
    assert default is not None
    assert default.who == default_who()
    assert gate_cmd.audit_record(_args("--no-audit"), decision, details) is None


def test_manifest_and_flag_are_checked_before_any_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", "--manifest", str(MANIFEST), "--flag", "no_such_flag", "--no-audit"]) == 3
    assert "'no_such_flag' is not in" in capsys.readouterr().err
