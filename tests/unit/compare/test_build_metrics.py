"""ComparisonBuilder's metrics: noise floor, λ, gold, coverage, cost, event time, batching, masking.

A deterministic bag-of-words embedder (hashed words, L2-normalised rows) stands in for MiniLM, so
every expected ΔS can be recomputed here independently of the builder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from shadowlane.compare.join import Expired, Joined, Output
from shadowlane.compare.prod_side import ProdSide
from shadowlane.compare.results import Result
from shadowlane.contracts.chat import TokenUsage
from shadowlane.contracts.codec import encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import GoldLabel, RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult, StabilitySample
from shadowlane.sanitize import Sanitizer
from shadowlane.settings import CompareSettings, ModelPrice
from tests.support.bag_of_words import BagOfWords, vector
from tests.support.contracts import CheckedBuilder
from tests.support.factories import envelope, result

TS = 1_700_000_000_000


def _ds(a: str, b: str) -> float:
    """ΔS computed here, independently of the builder: 1 − cos, clipped to [0, 1]."""
    cos = float(np.dot(vector(a).astype(np.float64), vector(b).astype(np.float64)))
    return min(1.0, max(0.0, 1.0 - cos))


# ---------------------------------------------------------------------- record helpers
def _env(
    i: int,
    answer: str,
    *,
    gold: GoldLabel | None = None,
    cited: tuple[str, ...] = (),
    model: str | None = None,
    usage: TokenUsage | None = None,
) -> RequestEnvelope:
    env = envelope(i, answer=answer)
    prod = env.prod.model_copy(update={"cited_ids": cited, "model": model, "usage": usage})
    return env.model_copy(update={"prod": prod, "gold": gold, "ts_ms": TS + i})


def _res(env: RequestEnvelope, candidate: str, answer: str | None, **update: Any) -> ShadowResult:
    base = result(env, candidate)  # the factory's answer=None means "prod's answer": set ours below
    return base.model_copy(update={"ts_ms": env.ts_ms + 5_000, "answer": answer, **update})


def _samples(*answers: str | None) -> tuple[StabilitySample, ...]:
    """ok samples for strings, error samples (with a junk answer) for None."""
    return tuple(
        StabilitySample(variant=f"seed:{i}", seed=i, status="ok", answer=a)
        if a is not None
        else StabilitySample(
            variant=f"seed:{i}", seed=i, status="error", error_class="timeout", answer="zebra quantum"
        )
        for i, a in enumerate(answers)
    )


def _joined_all(env: RequestEnvelope, *results: ShadowResult) -> list[Output]:
    """One Joined per result, each seeing all results of the request as peers (as the join does)."""
    side = ProdSide.of(env)
    peers: dict[str, Result] = {r.candidate: r for r in results}
    return [Joined(side, r, [], peers=peers) for r in results]


def _build(
    outputs: Sequence[Output], embedder: BagOfWords | None = None, **settings: Any
) -> list[Comparison]:
    return CheckedBuilder(embedder or BagOfWords(), CompareSettings(**settings)).build(outputs)


def _by_candidate(comps: Sequence[Comparison]) -> dict[str, Comparison]:
    return {c.candidate: c for c in comps}


def _pair(prod: str, cand: str, base: str | None, **settings: Any) -> tuple[Comparison, Comparison | None]:
    env = _env(1, prod)
    results = [_res(env, "cand", cand)]
    if base is not None:
        results.append(_res(env, "baseline", base))
    comps = _by_candidate(_build(_joined_all(env, *results), **settings))
    return comps["cand"], comps.get("baseline")


# ---------------------------------------------------------------------- noise floor
PROD = "the cat sat on the mat today"
NEAR = "the cat sat on a mat today"
FAR = "a dog ran through the park quickly"


def test_noise_floor_is_delta_s_of_prod_and_baseline() -> None:
    cand, base = _pair(PROD, FAR, NEAR)
    assert base is not None
    assert cand.delta_s == pytest.approx(_ds(PROD, FAR), abs=1e-6)
    assert cand.delta_s_floor == pytest.approx(_ds(PROD, NEAR), abs=1e-6)
    assert 0.0 < cand.delta_s_floor < cand.delta_s  # type: ignore[operator]
    assert cand.delta_s_floor == base.delta_s  # the same pair, scored once
    assert cand.delta_s_excess == round(cand.delta_s - cand.delta_s_floor, 6)  # type: ignore[operator]
    assert cand.delta_s_excess is not None
    assert cand.delta_s_excess > 0.0
    assert cand.traffic_arm == "shadow"


def test_excess_is_signed_negative_when_candidate_is_closer_to_prod_than_baseline() -> None:
    cand, _ = _pair(PROD, NEAR, FAR)
    assert cand.delta_s is not None
    assert cand.delta_s_floor is not None
    assert cand.delta_s < cand.delta_s_floor
    assert cand.delta_s_excess == round(cand.delta_s - cand.delta_s_floor, 6)  # not clamped at 0
    assert cand.delta_s_excess is not None
    assert cand.delta_s_excess < 0.0
    assert cand.delta_s_excess == pytest.approx(_ds(PROD, NEAR) - _ds(PROD, FAR), abs=2e-6)


def test_excess_of_a_candidate_answering_like_the_baseline_is_zero() -> None:
    cand, base = _pair(PROD, NEAR, " The cat sat on A mat  today")
    assert base is not None
    assert cand.delta_s == cand.delta_s_floor == base.delta_s
    assert cand.delta_s is not None
    assert cand.delta_s > 0.0
    assert cand.delta_s_excess == 0.0


def test_excess_when_candidate_matches_prod_exactly_is_minus_the_floor() -> None:
    cand, _ = _pair(PROD, PROD, FAR)
    assert cand.delta_s == 0.0
    assert cand.delta_s_floor == pytest.approx(_ds(PROD, FAR), abs=1e-6)
    assert cand.delta_s_excess == -cand.delta_s_floor  # type: ignore[operator]


def test_baseline_comparison_is_its_own_arm_without_floor() -> None:
    _, base = _pair(PROD, FAR, NEAR)
    assert base is not None
    assert base.traffic_arm == "baseline"
    assert base.delta_s_floor is None
    assert base.delta_s_excess is None
    assert base.delta_s == pytest.approx(_ds(PROD, NEAR), abs=1e-6)


def test_no_floor_without_baseline_peer() -> None:
    cand, base = _pair(PROD, FAR, None)
    assert base is None
    assert cand.delta_s is not None
    assert cand.delta_s_floor is None
    assert cand.delta_s_excess is None


def test_no_floor_and_no_baseline_arm_when_baseline_disabled() -> None:
    cand, base = _pair(PROD, FAR, NEAR, baseline_candidate=None)
    assert base is not None
    assert cand.delta_s_floor is None
    assert cand.delta_s_excess is None
    assert base.traffic_arm == "shadow"


def test_configured_baseline_name_is_used() -> None:
    env = _env(1, PROD)
    comps = _by_candidate(
        _build(_joined_all(env, _res(env, "cand", FAR), _res(env, "ref", NEAR)), baseline_candidate="ref")
    )
    assert comps["ref"].traffic_arm == "baseline"
    assert comps["cand"].delta_s_floor == comps["ref"].delta_s


def test_errored_baseline_without_answer_gives_no_floor() -> None:
    env = _env(1, PROD)
    base = _res(env, "baseline", None, status="error", error_class="timeout")
    comps = _by_candidate(_build(_joined_all(env, _res(env, "cand", FAR), base)))
    assert comps["cand"].delta_s_floor is None
    assert comps["cand"].delta_s_excess is None
    assert comps["baseline"].shadow_status == "error:timeout"


# ---------------------------------------------------------------------- λ
SAME = "paris is the capital of france"
WILD = ("alpha beta gamma", "delta epsilon zeta", "eta theta iota", "kappa lambda mu")


def _lambda(
    cand_samples: tuple[StabilitySample, ...],
    base_samples: tuple[StabilitySample, ...] | None = None,
    **settings: Any,
) -> Comparison:
    env = _env(1, SAME)
    results = [_res(env, "cand", SAME, stability=cand_samples)]
    if base_samples is not None:
        results.append(_res(env, "baseline", SAME, stability=base_samples))
    return _by_candidate(_build(_joined_all(env, *results), **settings))["cand"]


def test_identical_lambda_replays_converge() -> None:
    comp = _lambda(_samples(SAME, SAME, " Paris is the CAPITAL of France "))
    assert comp.lambda_state == "convergent"
    assert comp.lambda_max_ds == 0.0
    assert comp.lambda_samples == 3
    assert comp.lambda_threshold == 0.40


def test_wildly_different_lambda_replays_diverge() -> None:
    comp = _lambda(_samples(*WILD))
    expected = max(_ds(a, b) for i, a in enumerate(WILD) for b in WILD[i + 1 :])
    assert comp.lambda_state == "divergent"
    assert comp.lambda_max_ds == pytest.approx(expected, abs=1e-6)
    assert comp.lambda_max_ds > 0.40  # type: ignore[operator]
    assert comp.lambda_samples == 4


def test_lambda_error_samples_are_ignored() -> None:
    comp = _lambda(_samples(SAME, None, SAME, None))
    assert comp.lambda_state == "convergent"
    assert comp.lambda_samples == 2


def test_lambda_needs_two_answers() -> None:
    comp = _lambda(_samples(SAME, None))
    assert comp.lambda_state is None
    assert comp.lambda_max_ds is None
    assert comp.lambda_samples == 1
    assert comp.lambda_threshold is None
    none = _lambda(())
    assert (none.lambda_state, none.lambda_samples, none.lambda_flip) == (None, 0, None)


def test_lambda_threshold_is_configurable() -> None:
    a, b = "the cat sat on the mat", "the cat sat on the rug"
    ds = _ds(a, b)
    assert 0.05 < ds < 0.95
    assert _lambda(_samples(a, b), lambda_threshold=ds - 0.01).lambda_state == "divergent"
    assert _lambda(_samples(a, b), lambda_threshold=min(1.0, ds + 0.01)).lambda_state == "convergent"


def test_lambda_replays_are_masked_before_comparing() -> None:
    comp = _lambda(
        _samples("write to anna@example.org today", "write to bob@mail.example.com today"),
        lambda_threshold=0.0,
    )
    assert comp.lambda_state == "convergent"
    assert comp.lambda_max_ds == 0.0


@pytest.mark.parametrize(
    ("base", "cand", "flip", "base_state"),
    [
        (_samples(SAME, SAME), _samples(*WILD), True, "convergent"),
        (_samples(SAME, SAME), _samples(SAME, SAME), False, "convergent"),
        (_samples(*WILD), _samples(*WILD), False, "divergent"),
        (_samples(*WILD), _samples(SAME, SAME), False, "divergent"),
        ((), _samples(*WILD), None, None),
        (_samples(SAME, SAME), (), None, "convergent"),
    ],
)
def test_lambda_flip(
    base: tuple[StabilitySample, ...],
    cand: tuple[StabilitySample, ...],
    flip: bool | None,
    base_state: str | None,
) -> None:
    comp = _lambda(cand, base)
    assert comp.lambda_flip is flip
    assert comp.baseline_lambda_state == base_state


def test_lambda_flip_is_none_without_baseline_result() -> None:
    comp = _lambda(_samples(*WILD))
    assert comp.baseline_lambda_state is None
    assert comp.lambda_flip is None


def test_baseline_comparison_has_its_own_lambda_but_no_flip() -> None:
    env = _env(1, SAME)
    comps = _by_candidate(
        _build(
            _joined_all(
                env,
                _res(env, "cand", SAME, stability=_samples(*WILD)),
                _res(env, "baseline", SAME, stability=_samples(SAME, SAME)),
            )
        )
    )
    base = comps["baseline"]
    assert base.lambda_state == "convergent"
    assert base.baseline_lambda_state is None
    assert base.lambda_flip is None
    assert comps["cand"].lambda_flip is True


# ---------------------------------------------------------------------- gold
GOLD = "Paris is the capital"


def _gold(prod: str, shadow: str, gold: GoldLabel | None, **settings: Any) -> Comparison:
    env = _env(1, prod, gold=gold)
    return _build(_joined_all(env, _res(env, "cand", shadow)), **settings)[0]


def test_gold_delta_s_and_contains_grading() -> None:
    shadow = "The capital of France:  PARIS is the  capital, indeed."
    comp = _gold("Lyon is a big city", shadow, GoldLabel(answer=GOLD))
    assert comp.delta_s_gold == pytest.approx(_ds(GOLD, shadow), abs=1e-6)
    assert comp.prod_delta_s_gold == pytest.approx(_ds(GOLD, "Lyon is a big city"), abs=1e-6)
    assert comp.grader == "contains@1"
    assert comp.shadow_solved is True
    assert comp.prod_solved is False


def test_no_gold_means_no_grading() -> None:
    comp = _gold("Lyon", "Paris", None)
    assert (comp.delta_s_gold, comp.prod_delta_s_gold, comp.grader) == (None, None, None)
    assert (comp.prod_solved, comp.shadow_solved) == (None, None)


def test_gold_with_only_cited_ids_is_not_graded() -> None:
    comp = _gold("Lyon", "Paris", GoldLabel(cited_ids=("d1",)))
    assert comp.grader is None
    assert (comp.prod_solved, comp.shadow_solved, comp.delta_s_gold) == (None, None, None)


def test_exact_grader() -> None:
    comp = _gold("paris is  the CAPITAL", "Paris is the capital, yes", GoldLabel(answer=GOLD), grader="exact")
    assert comp.grader == "exact@1"
    assert comp.prod_solved is True
    assert comp.shadow_solved is False


def test_delta_s_grader_uses_gold_delta_s() -> None:
    close, far = "Paris is the capital city", "bananas grow on trees"
    cutoff = (_ds(GOLD, close) + _ds(GOLD, far)) / 2
    comp = _gold(far, close, GoldLabel(answer=GOLD), grader="delta_s", solved_max_delta_s=cutoff)
    assert comp.grader == "delta_s@1"
    assert comp.shadow_solved is True
    assert comp.prod_solved is False


# ---------------------------------------------------------------------- coverage
def _coverage(
    prod: str,
    shadow: str,
    *,
    gold: GoldLabel | None = None,
    prod_ids: tuple[str, ...] = (),
    shadow_ids: tuple[str, ...] = (),
) -> Comparison:
    env = _env(1, prod, gold=gold, cited=prod_ids)
    return _build(_joined_all(env, _res(env, "cand", shadow, cited_ids=shadow_ids)))[0]


def test_coverage_targets_gold_ids_when_gold_has_them() -> None:
    comp = _coverage(
        "See [doc:p1].",
        "Per [doc:d2] and [cite:zz].",
        gold=GoldLabel(answer="x", cited_ids=("d1", "d2", "d3", "d4")),
        prod_ids=("p2",),
        shadow_ids=("d1",),
    )
    assert comp.coverage_target == "gold"
    assert comp.coverage == 0.5  # d1 (explicit) and d2 (in the answer) of d1..d4


def test_coverage_targets_prod_ids_without_gold_ids() -> None:
    comp = _coverage(
        "Sources: [src:p2] and [doc:p3].",
        "Only [doc:p2].",
        gold=GoldLabel(answer="x"),
        prod_ids=("p1",),
    )
    assert comp.coverage_target == "prod"
    assert comp.coverage == pytest.approx(1 / 3)  # p2 of {p1, p2, p3}


def test_coverage_counts_candidate_explicit_ids() -> None:
    comp = _coverage("no citations", "none either", prod_ids=("a", "b"), shadow_ids=("b", "a"))
    assert comp.coverage_target == "prod"
    assert comp.coverage == 1.0


def test_no_coverage_without_any_target() -> None:
    comp = _coverage("no citations", "but [doc:1] here", shadow_ids=("x",))
    assert comp.coverage is None
    assert comp.coverage_target is None


def test_candidate_explicit_cited_ids_are_masked_like_the_targets() -> None:
    """The hook masks prod's and gold's cited ids; the candidate's must be masked the same way."""
    raw = "owner@docs.io"
    masked = Sanitizer().mask_text(raw)[0]  # what the envelope carries for prod's citation of it
    assert masked != raw
    in_text = _coverage("Answer.", f"Per [doc:{raw}].", prod_ids=(masked,))
    explicit = _coverage("Answer.", "Per the docs.", prod_ids=(masked,), shadow_ids=(raw,))
    assert in_text.coverage == 1.0  # the answer text is masked before citations are read
    assert explicit.coverage == 1.0  # the same id in the response's citations list


# ---------------------------------------------------------------------- cost
PRICES = {
    "grammar-tutor": ModelPrice(input_per_mtok=1.0, output_per_mtok=2.0),
    "cand-model": ModelPrice(input_per_mtok=0.5, output_per_mtok=4.0),
}


def _cost(prod_model: str | None, shadow_model: str | None) -> Comparison:
    env = _env(1, PROD, model=prod_model, usage=TokenUsage(prompt_tokens=1_000, completion_tokens=200))
    res = _res(
        env, "cand", PROD, model=shadow_model, usage=TokenUsage(prompt_tokens=900, completion_tokens=300)
    )
    return _build(_joined_all(env, res), prices=PRICES)[0]


def test_cost_per_arm_from_price_table() -> None:
    comp = _cost(None, "cand-model")  # prod model falls back to the request's model
    assert comp.prod_cost_usd == pytest.approx((1_000 * 1.0 + 200 * 2.0) / 1e6)
    assert comp.shadow_cost_usd == pytest.approx((900 * 0.5 + 300 * 4.0) / 1e6)


def test_cost_is_none_for_unpriced_models() -> None:
    comp = _cost("mystery-prod", "mystery-shadow")
    assert comp.prod_cost_usd is None
    assert comp.shadow_cost_usd is None


def test_cost_is_none_without_usage() -> None:
    env = _env(1, PROD, model="grammar-tutor")
    comp = _build(_joined_all(env, _res(env, "cand", PROD, model="cand-model")), prices=PRICES)[0]
    assert comp.prod_cost_usd is None
    assert comp.shadow_cost_usd is None


# ---------------------------------------------------------------------- event time, determinism
def _mixed_outputs() -> list[Output]:
    env = _env(7, PROD, gold=GoldLabel(answer=GOLD, cited_ids=("d1",)))
    other = _env(8, NEAR)
    orphan = _res(_env(9, FAR), "cand", FAR)
    return [
        *_joined_all(env, _res(env, "cand", FAR, stability=_samples(*WILD)), _res(env, "baseline", NEAR)),
        Expired("shadow_timeout", "cand", other.req_hash, ProdSide.of(other), None, []),
        Expired("request_missing", "cand", orphan.req_hash, None, orphan, []),
    ]


def test_ts_ms_is_event_time() -> None:
    outputs = _mixed_outputs()
    comps = _build(outputs)
    assert [c.outcome for c in comps] == ["joined", "joined", "shadow_timeout", "request_missing"]
    assert [c.ts_ms for c in comps] == [TS + 7, TS + 7, TS + 8, TS + 9 + 5_000]


def test_build_is_a_pure_function_of_its_records() -> None:
    first = [encode(c) for c in _build(_mixed_outputs())]
    second = [encode(c) for c in _build(_mixed_outputs())]
    assert first == second


# ---------------------------------------------------------------------- batching
def test_all_delta_s_of_a_build_are_embedded_in_one_call_each_text_once() -> None:
    env1 = _env(1, "prod one answer", gold=GoldLabel(answer="gold one text"))
    env2 = _env(2, "prod two answer")
    shared = "shared candidate answer"
    outputs = [
        *_joined_all(
            env1,
            _res(env1, "cand", shared, stability=_samples("lam a", "lam b", "lam a")),
            _res(env1, "baseline", "baseline one", stability=_samples("lam c", "lam d")),
        ),
        *_joined_all(env2, _res(env2, "cand", shared), _res(env2, "baseline", "baseline two")),
        *_joined_all(_env(3, "same answer"), _res(_env(3, "same answer"), "cand", "Same  ANSWER")),
    ]
    embedder = BagOfWords()
    comps = _build(outputs, embedder)
    assert len(embedder.batches) == 1
    embedded = embedder.embedded
    assert len(embedded) == len(set(embedded))
    assert set(embedded) == {
        "prod one answer",
        "gold one text",
        shared,
        "lam a",
        "lam b",
        "baseline one",
        "lam c",
        "lam d",
        "prod two answer",
        "baseline two",
    }
    assert comps[-1].delta_s == 0.0  # equal after normalisation: scored without the embedder


def test_equal_answers_never_reach_the_embedder() -> None:
    env = _env(1, "Same answer")
    embedder = BagOfWords()
    comps = _build(_joined_all(env, _res(env, "cand", "  same ANSWER ")), embedder)
    assert embedder.batches == []
    assert comps[0].delta_s == 0.0
    assert comps[0].exact_match is True


# ---------------------------------------------------------------------- without an embedder
def _no_embedder(*results_of: Any, **settings: Any) -> tuple[CheckedBuilder, list[Output]]:
    env = _env(1, SAME, gold=GoldLabel(answer="paris"))
    outputs = _joined_all(env, *(make(env) for make in results_of))
    return CheckedBuilder(None, CompareSettings(**settings)), outputs


def test_without_embedder_delta_s_is_off_even_for_identical_answers() -> None:
    """Scoring only the equal pairs (as 0) would bias every ΔS mean towards zero."""
    builder, outputs = _no_embedder(
        lambda e: _res(e, "cand", " Paris is the CAPITAL of France ", stability=_samples(SAME, SAME)),
        lambda e: _res(e, "baseline", SAME, stability=_samples(SAME, SAME)),
    )
    assert builder.needs_embedding(builder.prepare(outputs)) is False
    comps = _by_candidate(builder.build(outputs))
    for comp in comps.values():
        assert comp.exact_match is True  # exact match needs no embedder
        assert comp.delta_s is None
        assert (comp.delta_s_floor, comp.delta_s_excess) == (None, None)
        assert (comp.delta_s_gold, comp.prod_delta_s_gold) == (None, None)
        assert (comp.lambda_state, comp.lambda_max_ds, comp.lambda_threshold) == (None, None, None)
        assert comp.lambda_samples == 2  # the replays are there, only unscored
        assert (comp.baseline_lambda_state, comp.lambda_flip) == (None, None)


def test_without_embedder_text_graders_still_grade_and_delta_s_grader_does_not() -> None:
    builder, outputs = _no_embedder(lambda e: _res(e, "cand", "It is Paris."))
    (comp,) = builder.build(outputs)
    assert comp.grader == "contains@1"
    assert (comp.prod_solved, comp.shadow_solved) == (True, True)
    builder, outputs = _no_embedder(lambda e: _res(e, "cand", "It is Paris."), grader="delta_s")
    (comp,) = builder.build(outputs)
    assert comp.grader == "delta_s@1"
    assert (comp.prod_solved, comp.shadow_solved) == (None, None)  # no ΔS(gold, ·) to grade with


# ---------------------------------------------------------------------- masking
def test_shadow_answer_is_masked_before_comparing() -> None:
    env = _env(1, "Write to <email> for help")  # the hook masked prod's answer
    embedder = BagOfWords()
    comps = _build(_joined_all(env, _res(env, "cand", "Write to anna@example.org for help")), embedder)
    assert comps[0].delta_s == 0.0
    assert comps[0].exact_match is True


def test_masked_text_is_what_gets_embedded() -> None:
    env = _env(1, "Contact <email> now please")
    embedder = BagOfWords()
    base = _res(env, "baseline", "Mail bob@example.com now")
    comps = _by_candidate(
        _build(_joined_all(env, _res(env, "cand", "Contact anna@example.org later"), base), embedder)
    )
    assert not any("@" in t for t in embedder.embedded)
    assert comps["cand"].delta_s == pytest.approx(
        _ds("Contact <email> now please", "Contact <email> later"), abs=1e-6
    )
    assert comps["cand"].delta_s_floor == pytest.approx(
        _ds("Contact <email> now please", "Mail <email> now"), abs=1e-6
    )
