"""The retrieval drift gates: ``retrieval_delta_s_max`` (p95 of each request's worst ΔS(question,
retrieved) over it and its λ paraphrases) and ``retrieval_coverage_min``, with the seed's defaults,
skipped (not failed) while a window carries no retrieval."""

from __future__ import annotations

from pathlib import Path

from shadowlane.contracts.flag_manifest import FlagSpec, Gates
from shadowlane.rollout.gates import evaluate
from shadowlane.rollout.manifest import load_manifest
from tests.unit.rollout.test_gates import TRAFFIC, _gate, _summary

ROOT = Path(__file__).resolve().parents[3]


def test_the_seeds_thresholds_are_the_defaults_and_the_template_spells_them_out() -> None:
    gates = Gates()
    assert (gates.retrieval_delta_s_max, gates.retrieval_coverage_min) == (0.45, 0.70)
    template = load_manifest(ROOT / "deploy/flags/feature_flags.yml")
    for spec in template.flags.values():
        assert (spec.gates.retrieval_delta_s_max, spec.gates.retrieval_coverage_min) == (0.45, 0.70)


def test_on_topic_retrieval_passes_and_says_what_it_judged() -> None:
    decision = evaluate(FlagSpec(traffic=TRAFFIC), _summary())
    gate = _gate(decision, "retrieval_delta_s_max")
    assert gate.verdict == "PASS"
    assert gate.metric == "retrieval_delta_s_p95"
    assert gate.value is not None
    assert 0.25 < gate.value < 0.31  # p95 of uniform(0.1, 0.3)
    assert "worst over the request and its λ paraphrases" in gate.statistic
    assert "prod's p95" in gate.statistic
    assert _gate(decision, "retrieval_coverage_min").verdict == "PASS"


def test_off_topic_retrieval_fails_the_delta_s_gate() -> None:
    decision = evaluate(FlagSpec(traffic=TRAFFIC), _summary(retrieval_shift=0.35))
    gate = _gate(decision, "retrieval_delta_s_max")
    assert gate.verdict == "FAIL"
    assert decision.verdict == "FAIL"
    assert "retrieval_delta_s_max" in decision.reason


def test_low_coverage_fails_the_coverage_gate() -> None:
    decision = evaluate(FlagSpec(traffic=TRAFFIC), _summary(retrieval_coverage=0.5))
    low = _gate(decision, "retrieval_coverage_min")
    assert low.verdict == "FAIL"
    assert low.value is not None
    assert abs(low.value - 0.5) < 1e-9
    assert low.metric == "retrieval_coverage_mean"


def test_without_retrieval_the_gates_are_skipped_not_failed() -> None:
    decision = evaluate(FlagSpec(traffic=TRAFFIC), _summary(retrieval=False))
    for name in ("retrieval_delta_s_max", "retrieval_coverage_min"):
        assert _gate(decision, name).verdict == "SKIPPED"
    assert decision.verdict == "PASS"


def test_null_turns_them_off() -> None:
    spec = FlagSpec(traffic=TRAFFIC, gates=Gates(retrieval_delta_s_max=None, retrieval_coverage_min=None))
    decision = evaluate(spec, _summary(retrieval_shift=0.35, retrieval_coverage=0.2))
    assert {g.name for g in decision.gates}.isdisjoint({"retrieval_delta_s_max", "retrieval_coverage_min"})
    assert decision.verdict == "PASS"
