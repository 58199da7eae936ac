"""shadowlane/cli/report_cmd.py without a broker: each flag of ``report`` reaches the report it
names (range, candidates, flag and planned weight, grader, the verdict's tolerances) and the
summary a person reads names the decision, its reasons and where the files are."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowlane.cli import report_cmd
from shadowlane.cli.main import build_parser, joined_negative_values
from shadowlane.report.analysis import build_report
from shadowlane.report.gates import judge_shadow
from shadowlane.report.model import Report, ReportInput
from shadowlane.settings import CompareSettings, Settings
from tests.support.report_rows import GRADER, ab_rows, shadow_rows
from tests.support.summaries import crafted_summary

NOW = 1_750_000_000_000
SETTINGS = Settings(
    compare=CompareSettings(candidates=("grammar-b", "baseline"), baseline_candidate="baseline")
)


def _plan(*argv: str, out: str = "out") -> report_cmd.ReportPlan:
    args = build_parser().parse_args(joined_negative_values(["report", "--out", out, *argv]))
    return report_cmd.plan(args, SETTINGS, now_ms=NOW)


def _judged(p: report_cmd.ReportPlan, rows: list[object]) -> Report:
    data = ReportInput(0, 10_000, "cand", "baseline", None, shadow=rows)  # type: ignore[arg-type]
    return build_report(data, GRADER, p.options)


def test_from_and_to_are_the_range() -> None:
    p = _plan("--from", "-2h", "--to", "-1h")
    assert (p.start, p.end) == (NOW - 7_200_000, NOW - 3_600_000)
    assert _plan("--from", "-15m").end == NOW  # --to defaults to now
    with pytest.raises(SystemExit) as empty:
        _plan("--from", "-1h", "--to", "-2h")
    assert empty.value.code == 64


def test_candidate_noise_floor_and_no_shadow_choose_the_shadow_side() -> None:
    default = _plan("--from", "-1h")
    assert (default.candidate, default.noise_floor) == ("grammar-b", "baseline")  # not the floor itself
    chosen = _plan("--from", "-1h", "--candidate", "grammar-c", "--noise-floor", "grammar-a")
    assert (chosen.candidate, chosen.noise_floor) == ("grammar-c", "grammar-a")
    assert _plan("--from", "-1h", "--no-shadow").candidate is None  # the compare topic is left out


def test_flag_route_config_and_ab_weight_set_the_ab_side(tmp_path: Path) -> None:
    assert _plan("--from", "-1h").flag is None
    assert _plan("--from", "-1h", "--flag", "grammar_b").flag == "grammar_b"
    route = tmp_path / "route.yml"
    route.write_text(
        "flag: grammar_b\nepoch: 1\nsalt: s\nbaseline: grammar-a\n"
        "rules:\n  - strategy: ab\n    candidate: grammar-b\n    candidate_weight: 0.3\n"
    )
    p = _plan("--from", "-1h", "--route-config", str(route))
    assert p.flag == "grammar_b"  # from the route config
    assert p.route_config is not None
    assert p.options.ab_weight == 0.3
    assert _plan("--from", "-1h", "--route-config", str(route), "--ab-weight", "0.4").options.ab_weight == 0.4
    assert _plan("--from", "-1h", "--ab-weight", "0.2").options.ab_weight == 0.2
    assert _plan("--from", "-1h").options.ab_weight == 0.5
    with pytest.raises(SystemExit) as other_flag:
        _plan("--from", "-1h", "--route-config", str(route), "--flag", "another")
    assert other_flag.value.code == 64


def test_grader_and_no_answers() -> None:
    assert _plan("--from", "-1h").settings.compare.grader == SETTINGS.compare.grader
    assert _plan("--from", "-1h", "--grader", "exact").settings.compare.grader == "exact"
    assert _plan("--from", "-1h").answers is True
    assert _plan("--from", "-1h", "--no-answers").answers is False  # no answer texts looked up


def test_allowed_regression_is_the_accuracy_drop_tolerated() -> None:
    rows: list[object] = list(shadow_rows(1500, 0.80, 0.79, 3))  # 1 point worse, not significantly
    strict = _judged(_plan("--from", "-1h"), rows)
    lenient = _judged(_plan("--from", "-1h", "--allowed-regression", "0.10"), rows)
    assert "a regression beyond 2 pp is not ruled out" in strict.recommendation.reasons[0]
    assert "no regression beyond 10 pp" in lenient.recommendation.reasons[0]
    assert (strict.recommendation.decision, lenient.recommendation.decision) == ("hold", "promote")


def test_latency_budget_and_alpha_decide_a_latency_regression() -> None:
    rows: list[object] = list(shadow_rows(200, 0.8, 0.8, 4, cand_shift=1.1))  # 10 % slower
    assert _judged(_plan("--from", "-1h"), rows).shadow.latency.regression is False  # type: ignore[union-attr]
    tight = _plan("--from", "-1h", "--latency-budget", "0")
    assert _judged(tight, rows).shadow.latency.regression is True  # type: ignore[union-attr]
    strict = _plan("--from", "-1h", "--latency-budget", "0", "--alpha", "0.0001")
    assert _judged(strict, rows).shadow.latency.regression is False  # type: ignore[union-attr]


def test_min_samples_is_what_a_verdict_needs() -> None:
    rows: list[object] = list(shadow_rows(40, 0.8, 0.8, 5))
    assert _judged(_plan("--from", "-1h"), rows).shadow.accuracy.enough_data is True  # type: ignore[union-attr]
    fewer = _judged(_plan("--from", "-1h", "--min-samples", "50"), rows)
    assert fewer.shadow is not None
    assert fewer.shadow.accuracy.enough_data is False


def test_out_is_where_the_files_go_and_the_summary_says_so(tmp_path: Path) -> None:
    args = build_parser().parse_args(["report", "--from", "0", "--to", "10000", "--out", str(tmp_path / "r")])
    data = ReportInput(
        0,
        10_000,
        "cand",
        "baseline",
        "f",
        shadow=shadow_rows(300, 0.8, 0.8, 6),
        ab=ab_rows(100, 100, 0.8, 0.8, 7),
    )
    report = build_report(data, GRADER, report_cmd.plan(args, SETTINGS).options)
    manifest = report_cmd.build_manifest(report, SETTINGS, topics=[], counts={"compare_records": 300})
    report_cmd.write_report(args.out, report, manifest)
    assert {p.name for p in args.out.iterdir()} == {"report.md", "report.html", "manifest.json"}
    text = report_cmd.render_summary(report, args.out, manifest["counts"])
    lines = text.splitlines()
    assert lines[0].startswith(f"{report.recommendation.decision.upper()}: cand, flag f, ")
    assert all(f"  - {reason}" in lines for reason in report.recommendation.reasons)
    assert any(line.startswith("shadow: 300 comparisons") for line in lines)
    assert any(line.startswith("A/B f: baseline 100, candidate 100 requests") for line in lines)
    assert lines[-1] == f"written: {args.out / 'report.html'} (also report.md, manifest.json)"


def test_manifest_names_the_gates_that_judge_the_range(tmp_path: Path) -> None:
    """``--manifest``: its flag's gates judge the shadow range (``--flag``, or its only flag);
    without one, the seed's gates do."""
    template = Path(__file__).resolve().parents[3] / "deploy" / "flags" / "feature_flags.yml"
    p = _plan("--from", "-1h", "--manifest", str(template))
    assert p.gates is not None
    assert p.gate_flag == "grammar_b"  # the template's only flag
    assert _plan("--from", "-1h").gates is None
    two = tmp_path / "two.yml"
    two.write_text(
        "flags:\n"
        "  a: {traffic: {baseline_weight: 0.9, canary_weight: 0.1}, gates: {error_rate_max: null}}\n"
        "  b: {traffic: {baseline_weight: 0.9, canary_weight: 0.1}}\n"
    )
    with pytest.raises(SystemExit) as unnamed:
        _plan("--from", "-1h", "--manifest", str(two))
    assert unnamed.value.code == 64
    chosen = _plan("--from", "-1h", "--manifest", str(two), "--flag", "a")
    assert chosen.gate_flag == "a"
    summary = crafted_summary("grammar-b", NOW - 3_000_000, NOW - 2_940_000, 300, seed=2)
    section = judge_shadow([summary], NOW - 3_600_000, NOW, "grammar-b", chosen.gates, chosen.gate_flag)
    names = {g.name for g in section.decision.gates}
    assert "error_rate_max" not in names  # flag a turns it off
    assert section.partials == 1
    seed = judge_shadow([summary], NOW - 3_600_000, NOW, "grammar-b", None, None)
    assert "error_rate_max" in {g.name for g in seed.decision.gates}
    bad = tmp_path / "bad.yml"
    bad.write_text("flags: [")
    with pytest.raises(SystemExit) as broken:
        _plan("--from", "-1h", "--manifest", str(bad))
    assert broken.value.code == 64
