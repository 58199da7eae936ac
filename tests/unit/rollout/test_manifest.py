"""Flag manifests: the seed template loads with its defaults, and every bad input is refused with
a message naming the field path and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shadowlane.contracts.flag_manifest import (
    DEFAULT_STAGES,
    AbortRules,
    FlagManifest,
    HardAbortRule,
    SoftAbortRule,
)
from shadowlane.rollout.manifest import ManifestError, load_manifest, manifest_from_obj, parse_manifest

ROOT = Path(__file__).resolve().parents[3]

SEED_TEMPLATE = """
# opsdeploy/flags/feature_flags.yml
flags:
  prompt_pack_vNplus1:
    scope:
      tenants: ["all"]           # or a list of tenant ids
      regions: ["us-east-1"]     # stage per region
      endpoints: ["/rag/reason"]
    versions:
      MODEL_VER: "gpt-4o-2025-07-15"
      PROMPT_VER: "p-2025.08.31-h1"
      INDEX_HASH: "b7f3..."
      RERANK_CONF: "bge-rerank-v2@top32"
    traffic:
      baseline_weight: 0.95
      canary_weight: 0.05
    gates:
      delta_s:
        median_max: 0.03
        p95_max: 0.10
      coverage_min: 0.70
      lambda_convergent: true
      latency_p95_uplift_max: 0.15
      error_rate_max: 0.005
      tool_success_min: 0.99
      cost_uplift_max: 0.10
    abort_rules:
      hard:
        - kind: "delta_s_p95_over"
          value: 0.15
        - kind: "coverage_under"
          value: 0.60
        - kind: "lambda_flip_rate_over"
          value: 0.20
        - kind: "error_rate_over"
          value: 0.01
      soft:
        - kind: "latency_p95_over_budget"
        - kind: "cost_per_solved_over_budget"
"""

MINIMAL = {"flags": {"f": {"traffic": {"baseline_weight": 1.0, "canary_weight": 0.0}}}}


def problems_of(text: str) -> tuple[str, ...]:
    with pytest.raises(ManifestError) as exc:
        parse_manifest(text)
    for problem in exc.value.problems:
        assert problem in str(exc.value)
    return exc.value.problems


def with_flag(**fields: object) -> str:
    spec = {"traffic": {"baseline_weight": 0.95, "canary_weight": 0.05}, **fields}
    return yaml.safe_dump({"flags": {"grammar_b": spec}})


def test_the_seed_template_loads_verbatim_and_fills_the_seed_defaults() -> None:
    manifest = parse_manifest(SEED_TEMPLATE)
    spec = manifest.flags["prompt_pack_vNplus1"]
    assert spec.scope.tenants == ("all",)
    assert spec.scope.regions == ("us-east-1",)
    assert spec.versions["RERANK_CONF"] == "bge-rerank-v2@top32"
    assert (spec.traffic.baseline_weight, spec.traffic.canary_weight) == (0.95, 0.05)
    assert spec.stages == DEFAULT_STAGES == (0.0, 0.05, 0.25, 0.50, 1.0)
    assert spec.evaluation_window_s == 600.0
    assert spec.min_samples == 200
    assert spec.gates.lambda_flip_rate_max == 0.10
    assert spec.gates.accuracy_drop_max == 0.02
    assert [(r.kind, r.value) for r in spec.abort_rules.hard] == [
        ("delta_s_p95_over", 0.15),
        ("coverage_under", 0.60),
        ("lambda_flip_rate_over", 0.20),
        ("error_rate_over", 0.01),
    ]
    # a soft budget rule without a value compares with the matching gate
    latency, cost = spec.abort_rules.soft
    assert (spec.threshold(latency), spec.threshold(cost)) == (0.15, 0.10)
    assert manifest.candidate("prompt_pack_vNplus1") == "prompt_pack_vNplus1"


def test_omitted_sections_take_the_seed_defaults() -> None:
    explicit = parse_manifest(SEED_TEMPLATE).flags["prompt_pack_vNplus1"]
    spec = manifest_from_obj(MINIMAL).flags["f"]
    assert spec.gates == explicit.gates
    assert spec.abort_rules.soft == explicit.abort_rules.soft
    # the seed's hard stops, and any pin mismatch (pins are verified, not assumed)
    pins = HardAbortRule(kind="pin_mismatch_rate_over", value=0.0)
    assert spec.abort_rules.hard == (*explicit.abort_rules.hard, pins)
    assert spec.scope.tenants == spec.scope.regions == spec.scope.endpoints == ("*",)


def test_the_deployed_demo_manifest_loads() -> None:
    manifest = load_manifest(ROOT / "deploy" / "flags" / "feature_flags.yml")
    assert manifest.candidate("grammar_b") == "grammar-b"
    spec = manifest.flags["grammar_b"]
    assert spec.baseline == "grammar-a"
    assert spec.scope.endpoints == ("/v1/chat/completions",)
    assert spec.versions["MODEL_VER"] == "grammar-b@v0.3.0"
    assert spec.abort_rules == AbortRules()  # the template spells out the defaults, pin rule included
    assert spec.next_stage(spec.traffic.canary_weight) == 0.25
    assert spec.next_stage(1.0) is None


def test_json_and_yaml_give_the_same_manifest() -> None:
    manifest = parse_manifest(SEED_TEMPLATE)
    assert parse_manifest(manifest.model_dump_json()) == manifest
    assert load_manifest(manifest.model_dump_json()) == manifest


def test_an_out_of_range_value_names_its_path_bound_and_input() -> None:
    (problem,) = problems_of(with_flag(gates={"delta_s": {"p95_max": 3}}))
    assert problem == "flags.grammar_b.gates.delta_s.p95_max: must be ≤ 1 (got 3)"
    (problem,) = problems_of(with_flag(min_samples=0))
    assert problem == "flags.grammar_b.min_samples: must be ≥ 1 (got 0)"


def test_every_problem_is_listed_at_once() -> None:
    problems = problems_of(
        with_flag(
            gates={"coverage_min": -0.1, "error_rate_max": "lots", "lambda_convergent": "maybe"},
            versions={"MODEL_VER": 2025},
        )
    )
    assert set(problems) == {
        "flags.grammar_b.gates.coverage_min: must be ≥ 0 (got -0.1)",
        "flags.grammar_b.gates.error_rate_max: must be a number (got 'lots')",
        "flags.grammar_b.gates.lambda_convergent: must be true or false (got 'maybe')",
        "flags.grammar_b.versions.MODEL_VER: must be a string (quote it in YAML) (got 2025)",
    }


@pytest.mark.parametrize(
    ("baseline", "canary"),
    [(0.95, 0.10), (0.5, 0.4), (0.0, 0.0)],
)
def test_weights_must_sum_to_one(baseline: float, canary: float) -> None:
    text = yaml.safe_dump(
        {"flags": {"g": {"traffic": {"baseline_weight": baseline, "canary_weight": canary}}}}
    )
    (problem,) = problems_of(text)
    assert problem.startswith("flags.g.traffic: baseline_weight + canary_weight must be 1 (got ")


def test_a_weight_outside_zero_one_is_refused_by_name() -> None:
    text = yaml.safe_dump({"flags": {"g": {"traffic": {"baseline_weight": -0.5, "canary_weight": 1.5}}}})
    assert set(problems_of(text)) == {
        "flags.g.traffic.baseline_weight: must be ≥ 0 (got -0.5)",
        "flags.g.traffic.canary_weight: must be ≤ 1 (got 1.5)",
    }


@pytest.mark.parametrize(
    ("stages", "problem"),
    [
        ([0.0, 0.25, 0.05, 1.0], "must be strictly increasing: [2] = 0.05 follows [1] = 0.25"),
        ([0.05, 0.05, 1.0], "must be strictly increasing: [1] = 0.05 follows [0] = 0.05"),
        ([0.0, 0.5], "must end at 1.0, full rollout (got 0.5)"),
        ([0.0, 1.5], "[1] must be in [0, 1] (got 1.5)"),
        ([], "must list at least one stage (1.0)"),
    ],
)
def test_stages_must_climb_to_full_rollout(stages: list[float], problem: str) -> None:
    assert problems_of(with_flag(stages=stages)) == (f"flags.grammar_b.stages: {problem}",)


def test_a_hard_rule_needs_a_value_and_a_soft_threshold_rule_too() -> None:
    problems = problems_of(
        with_flag(
            abort_rules={
                "hard": [{"kind": "delta_s_p95_over"}, {"kind": "latency_p95_over_budget"}],
                "soft": [{"kind": "error_rate_over"}, {"kind": "cost_per_solved_over_budget"}],
            }
        )
    )
    assert set(problems) == {
        "flags.grammar_b.abort_rules.hard[0].value: required field is missing",
        "flags.grammar_b.abort_rules.hard[1].value: required field is missing",
        "flags.grammar_b.abort_rules.soft[0].value: required for kind 'error_rate_over' "
        "(only *_over_budget kinds can omit it)",
    }


def test_abort_rule_kinds_and_values_are_checked() -> None:
    problems = problems_of(
        with_flag(
            abort_rules={
                "hard": [
                    {"kind": "moon_phase_over", "value": 1},
                    {"kind": "coverage_under", "value": 1.5},
                    {"kind": "cost_uplift_over", "value": 2.5},
                    {"kind": "cost_uplift_over", "value": 0.5},
                ]
            }
        )
    )
    assert len(problems) == 2
    kind, value = problems
    assert kind.startswith("flags.grammar_b.abort_rules.hard[0].kind: must be one of 'delta_s_median_over'")
    assert kind.endswith("(got 'moon_phase_over')")
    assert (
        value
        == "flags.grammar_b.abort_rules.hard[1].value: must be in [0, 1] for kind 'coverage_under' (got 1.5)"
    )
    # once those are fixed the duplicate kind is reported
    (duplicate,) = problems_of(
        with_flag(abort_rules={"hard": [{"kind": "cost_uplift_over", "value": v} for v in (2.5, 0.5)]})
    )
    assert duplicate == (
        "flags.grammar_b.abort_rules.hard: kind 'cost_uplift_over' is listed twice ([0] and [1])"
    )


def test_a_budget_rule_needs_a_budget() -> None:
    (problem,) = problems_of(with_flag(gates={"cost_uplift_max": None}))
    assert problem == (
        "flags.grammar_b: abort_rules.soft[1]: cost_per_solved_over_budget has no value and "
        "gates.cost_uplift_max is null, so it has no budget"
    )
    spec = manifest_from_obj(
        {
            "flags": {
                "f": {
                    **MINIMAL["flags"]["f"],
                    "gates": {"cost_uplift_max": None},
                    "abort_rules": {"soft": [{"kind": "cost_per_solved_over_budget", "value": 0.3}]},
                }
            }
        }
    ).flags["f"]
    assert spec.threshold(spec.abort_rules.soft[0]) == 0.3


def test_unknown_keys_are_refused_with_their_path_and_a_suggestion() -> None:
    problems = problems_of(
        with_flag(gates={"delta_s": {"median_mx": 0.1}}, scope={"tenant": ["a"]}, rollout_speed="fast")
    )
    assert set(problems) == {
        "flags.grammar_b.gates.delta_s.median_mx: unknown field (did you mean 'median_max'? allowed: "
        "median_max, p95_max)",
        "flags.grammar_b.scope.tenant: unknown field (did you mean 'tenants'? allowed: tenants, regions, "
        "endpoints)",
        "flags.grammar_b.rollout_speed: unknown field (allowed: scope, candidate, baseline, versions, "
        "traffic, stages, evaluation_window_s, min_samples, gates, abort_rules)",
    }
    (top,) = problems_of("flags: {}\nversion: 2\n")[1:]
    assert top == "version: unknown field (allowed: flags)"


def test_flag_names_and_missing_parts_are_named() -> None:
    text = yaml.safe_dump({"flags": {"bad name": {"traffic": {"baseline_weight": 1, "canary_weight": 0}}}})
    (problem,) = problems_of(text)
    assert problem == "flags.bad name: the name must match ^[A-Za-z0-9][A-Za-z0-9_.:-]*$ (got 'bad name')"
    assert problems_of("flags:\n  f: {}\n") == ("flags.f.traffic: required field is missing",)
    assert problems_of("flags: {}\n") == ("flags: must have at least 1 entry",)
    assert problems_of("flags:\n  f: 3\n") == ("flags.f: must be a mapping (got 3)",)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "manifest: the document is empty (expected a mapping with 'flags')"),
        ("- 1\n- 2\n", "manifest: must be a mapping with a 'flags' key (got a list)"),
        ("flags: [\n  a: b", "yaml syntax, line 2, column 7: expected ',' or ']', but got '<stream end>'"),
        (
            "flags:\n  f:\n    traffic: {baseline_weight: 1, canary_weight: 0}\n    traffic: {}\n",
            "yaml syntax, line 4, column 5: duplicate key 'traffic' (first defined on line 3)",
        ),
    ],
)
def test_yaml_problems_name_the_line(text: str, problem: str) -> None:
    (got,) = problems_of(text)
    assert got.startswith(problem)


def test_an_unreadable_file_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read the file"):
        load_manifest(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text(with_flag(min_samples=-1))
    with pytest.raises(ManifestError) as exc:
        load_manifest(bad)
    assert str(bad) in str(exc.value)
    assert exc.value.problems == ("flags.grammar_b.min_samples: must be ≥ 1 (got -1)",)


def test_the_manifest_is_frozen_and_splits_into_one_flag_payloads() -> None:
    manifest = parse_manifest(
        SEED_TEMPLATE + "  other:\n    traffic: {baseline_weight: 1, canary_weight: 0}\n"
    )
    parts = manifest.split()
    assert list(parts) == ["prompt_pack_vNplus1", "other"]
    assert all(list(part.flags) == [name] for name, part in parts.items())
    assert FlagManifest.model_validate(parts["other"].model_dump(mode="json")) == parts["other"]
    with pytest.raises(ValueError, match="frozen"):
        manifest.flags["other"].min_samples = 1  # type: ignore[misc]
    assert HardAbortRule(kind="error_rate_over", value=0.02).value == 0.02
    assert SoftAbortRule(kind="latency_p95_over_budget").value is None
