"""Synthetic paired requests for the gate simulation, aggregated into window summaries.

**Synthetic requests** (:class:`Population`, per request ``i``; "the model" is prod's model):

- latency: ``ln L = ln 800 ms + 0.5·(√ρ·z_i + √(1−ρ)·ε)``, ρ = 0.5 shared by both arms (the
  request's length), lognormal with σ = 0.5 per arm; the candidate's is multiplied by its factor;
- errors: prod 5xx and candidate errors Bernoulli(0.2 %), independent; an errored answer has no
  ΔS, coverage, λ, tool call or cost and is not solved;
- solved: item difficulty ``p_i ~ Beta(0.8, 0.2)`` (mean 0.8); prod and candidate solve with
  independent Bernoulli(p_i) draws (a nondeterministic model disagrees with itself on ~16 % of
  items); a candidate with an accuracy drop ``d > 0`` solves with ``p_i·(1 − d/0.8)``, a better one
  (``d < 0``, a gain ``g = −d``) fails with ``(1 − p_i)·(1 − g/0.2)``: both scale the mean exactly
  to ``0.8 − d`` and keep every probability within [0, 1] (clipped there all the same);
- ΔS to prod, for the baseline (the floor) and the candidate alike: identical answer (ΔS 0) with
  probability 0.2, a rewording ``Gamma(2, 0.05·o_i)`` with 0.75, an off-topic answer ``U(0.5, 0.8)``
  with 0.05; ``o_i ~ LogNormal(0, 0.4)`` is the request's openness, shared by both draws; a drifted
  candidate adds ``drift`` to every ΔS;
- λ: 10 % of requests λ-sampled; baseline and candidate each divergent with probability 0.05;
- coverage ``Binomial(3, 0.9)/3``; one tool call per answer, schema-valid with probability 0.998;
- cost per request ``0.002 USD × lognormal(σ 0.5)``, 70 % of its log-variance shared by the arms.

The aggregation is vectorised and incremental (:func:`accumulate` adds a range of requests' counts
and sums to an :class:`Accumulator` and records their histograms with numpy, so the looks of an
experiment add only the requests since the previous look); ``tests/unit/rollout/test_simulate.py``
checks it equals :meth:`Accumulator.add` over the same requests as :class:`Comparison` records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.windows import histograms as h
from shadowlane.windows.accumulator import Accumulator
from shadowlane.windows.percentiles import record_values

Bools = NDArray[np.bool_]
Floats = NDArray[np.float64]
KEY = ("candidate", "/v1/chat/completions", "sim")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    regression: bool  # FAIL is the right answer (power); False: PASS is (A/A, a better candidate)
    accuracy_drop: float = 0.0  # points of solve rate lost; negative: gained
    latency_factor: float = 1.0
    error_add: float = 0.0
    drift: float = 0.0

    @property
    def correct(self) -> str:
        """The right verdict: FAIL for a regression, PASS otherwise."""
        return "FAIL" if self.regression else "PASS"

    @property
    def wrong(self) -> str:
        """The wrong verdict: PASS for a regression (false PASS), FAIL otherwise (false FAIL)."""
        return "PASS" if self.regression else "FAIL"


def scenarios() -> tuple[Scenario, ...]:
    """The issue's four regressions, the A/A and a truly better candidate."""
    return (
        Scenario("accuracy −5 pts", "solve rate 0.80 → 0.75 (gate: drop ≤ 2 pts)", True, accuracy_drop=0.05),
        Scenario("p95 latency +20 %", "latency × 1.2 (gate: p95 uplift ≤ 15 %)", True, latency_factor=1.2),
        Scenario("error rate +1 pt", "candidate errors 0.2 % → 1.2 % (gate: ≤ 0.5 %)", True, error_add=0.01),
        Scenario("semantic drift", "ΔS + 0.06: excess ΔS median 2× the 0.03 gate", True, drift=0.06),
        Scenario("A/A", "candidate = prod's nondeterministic model", False),
        Scenario("better", "solve rate 0.80 → 0.83, latency × 0.9 (p95 −10 %)", False, accuracy_drop=-0.03,
                 latency_factor=0.9),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Population:
    """The synthetic service (see the module docstring)."""

    latency_median_ms: float = 800.0
    latency_sigma: float = 0.5
    latency_shared: float = 0.5
    error_rate: float = 0.002
    solve_mean: float = 0.8
    solve_concentration: float = 1.0
    identical: float = 0.2
    reword: float = 0.75
    reword_shape: float = 2.0
    reword_scale: float = 0.05
    openness_sigma: float = 0.4
    lambda_share: float = 0.1
    divergent: float = 0.05
    coverage_p: float = 0.9
    tool_valid: float = 0.998
    cost_usd: float = 0.002
    cost_sigma: float = 0.5
    cost_shared: float = 0.7


@dataclass(frozen=True, slots=True)
class Requests:
    """Per-request arrays, shape (experiments, requests); NaN where the candidate has no value."""

    prod_ms: Floats
    shadow_ms: Floats
    prod_error: Bools
    shadow_error: Bools
    delta_s: Floats
    floor: Floats
    lambda_sampled: Bools
    base_divergent: Bools
    cand_divergent: Bools
    coverage: Floats
    tool_valid: Bools
    tool_matched: Bools
    prod_solved: Bools
    shadow_solved: Bools
    prod_cost: Floats
    shadow_cost: Floats


def generate(s: Scenario, pop: Population, rng: np.random.Generator, experiments: int, n: int) -> Requests:
    shape = (experiments, n)
    normal = rng.standard_normal

    def lognormal(sigma: float, shared: float, z: Floats) -> Floats:
        out: Floats = np.exp(sigma * (np.sqrt(shared) * z + np.sqrt(1 - shared) * normal(shape)))
        return out

    z_lat, z_cost = normal(shape), normal(shape)
    base_ms = pop.latency_median_ms
    prod_ms = np.round(base_ms * lognormal(pop.latency_sigma, pop.latency_shared, z_lat), 3)
    shadow_ms = np.round(
        base_ms * s.latency_factor * lognormal(pop.latency_sigma, pop.latency_shared, z_lat), 3
    )
    prod_error = rng.random(shape) < pop.error_rate
    shadow_error = rng.random(shape) < pop.error_rate + s.error_add
    openness = np.exp(pop.openness_sigma * normal(shape))

    def delta_s(shift: float) -> Floats:
        u = rng.random(shape)
        reworded = rng.gamma(pop.reword_shape, pop.reword_scale * openness)
        off_topic = rng.uniform(0.5, 0.8, shape)
        x = np.where(u < pop.identical, 0.0, np.where(u < pop.identical + pop.reword, reworded, off_topic))
        out: Floats = np.round(np.clip(x + shift, 0.0, 1.0), 4).astype(np.float64)
        return out

    floor, cand = delta_s(0.0), delta_s(s.drift)
    answered = ~shadow_error
    k = pop.solve_concentration
    p = rng.beta(pop.solve_mean * k, (1 - pop.solve_mean) * k, shape)
    prod_solved = (rng.random(shape) < p) & ~prod_error
    shadow_solved = (
        rng.random(shape) < shadow_solve_probability(p, s.accuracy_drop, pop.solve_mean)
    ) & answered
    tool_valid = (rng.random(shape) < pop.tool_valid) & answered
    cost = pop.cost_usd
    return Requests(
        prod_ms=prod_ms,
        shadow_ms=shadow_ms,
        prod_error=prod_error,
        shadow_error=shadow_error,
        delta_s=np.where(answered, cand, np.nan),
        floor=floor,
        lambda_sampled=(rng.random(shape) < pop.lambda_share) & answered,
        base_divergent=rng.random(shape) < pop.divergent,
        cand_divergent=rng.random(shape) < pop.divergent,
        coverage=np.where(answered, rng.binomial(3, pop.coverage_p, shape) / 3, np.nan),
        tool_valid=tool_valid,
        tool_matched=tool_valid & (rng.random(shape) < 0.95),
        prod_solved=prod_solved,
        shadow_solved=shadow_solved,
        prod_cost=np.round(cost * lognormal(pop.cost_sigma, pop.cost_shared, z_cost), 9),
        shadow_cost=np.where(answered, np.round(cost * lognormal(pop.cost_sigma, pop.cost_shared, z_cost), 9),
                             np.nan),
    )  # fmt: skip


def shadow_solve_probability(p: Floats, drop: float, mean: float) -> Floats:
    """The candidate's solve probability per item for prod's ``p`` (mean ``mean``) and an accuracy
    drop (negative: a gain): a drop scales the solve probability, a gain the failure probability,
    so the mean moves by exactly ``drop`` and no probability leaves [0, 1]."""
    scaled = p * (1 - drop / mean) if drop >= 0 else 1 - (1 - p) * (1 + drop / (1 - mean))
    out: Floats = np.clip(scaled, 0.0, 1.0)
    return out


def accumulate(
    r: Requests, e: int, n: int, *, into: Accumulator | None = None, start: int = 0
) -> Accumulator:
    """Requests ``start`` to ``n`` (excluded) of experiment ``e`` added to ``into`` (a new accumulator
    when None) as ``Accumulator.add`` would add them; ``accumulate(r, e, n)``: the first ``n``."""
    x = {name: getattr(r, name)[e, start:n] for name in Requests.__dataclass_fields__}
    ok, lam, div = ~x["shadow_error"], x["lambda_sampled"], x["cand_divergent"]
    ds, floor = np.where(ok, x["delta_s"], 0.0), np.where(ok, x["floor"], 0.0)
    pc, sc, cov = (
        np.where(ok, x["prod_cost"], 0.0),
        np.where(ok, x["shadow_cost"], 0.0),
        np.where(ok, x["coverage"], 0.0),
    )
    ps, ss = x["prod_solved"], x["shadow_solved"]
    per_row: dict[str, NDArray[Any]] = {
        "exact_known": ok, "exact_matches": ok & (ds == 0), "shadow_errors": ~ok,
        "prod_errors": x["prod_error"], "delta_s_count": ok, "delta_s_sum": ds, "excess_count": ok,
        "excess_sum": np.round(ds - floor, 6), "lambda_sampled": lam, "lambda_divergent": lam & div,
        "lambda_paired": lam, "lambda_flips": lam & div & ~x["base_divergent"], "coverage_count": ok,
        "coverage_sum": cov, "coverage_sq_sum": cov * cov, "tool_calls": ok, "tool_valid": x["tool_valid"],
        "tool_matched_prod": x["tool_matched"], "prod_solved": ps, "shadow_solved": ss,
        "solved_gained": ss & ~ps, "solved_lost": ps & ~ss, "priced": ok, "prod_cost_usd": pc,
        "shadow_cost_usd": sc, "prod_cost_sq": pc * pc, "shadow_cost_sq": sc * sc, "cost_cross": pc * sc,
        "priced_graded": ok, "graded_prod_cost_usd": pc, "graded_shadow_cost_usd": sc,
        "priced_prod_solved": ps & ok, "priced_shadow_solved": ss & ok, "priced_both_solved": ps & ss & ok,
        "graded_prod_cost_sq": pc * pc, "graded_shadow_cost_sq": sc * sc, "graded_cost_cross": pc * sc,
        "graded_prod_cost_prod_solved": pc * ps, "graded_prod_cost_shadow_solved": pc * ss,
        "graded_shadow_cost_prod_solved": sc * ps, "graded_shadow_cost_shadow_solved": sc * ss,
    }  # fmt: skip
    acc = into if into is not None else Accumulator(0, 60_000, KEY)
    added = n - start
    acc.count, acc.joined, acc.graded = acc.count + added, acc.joined + added, acc.graded + added
    for name, values in per_row.items():
        now = getattr(acc, name)
        setattr(acc, name, now + type(now)(values.sum()))

    def scaled(values: Floats, scale: float, high: int) -> NDArray[np.int64]:
        out: NDArray[np.int64] = np.clip(np.round(values * scale), 0, high).astype(np.int64)
        return out

    record_values(acc.lat_prod.hist, np.maximum(scaled(x["prod_ms"], 1000, h.LATENCY_MAX_US), 1))
    record_values(acc.lat_shadow.hist, np.maximum(scaled(x["shadow_ms"], 1000, h.LATENCY_MAX_US), 1))
    for tally, values in ((acc.drift, ds[ok]), (acc.paired, ds[ok]), (acc.floor, floor[ok])):
        record_values(tally.hist, scaled(values, h.DELTA_S_SCALE, h.DELTA_S_SCALE) + 1)
    return acc


def summary_at(r: Requests, e: int, n: int) -> WindowSummary:
    return accumulate(r, e, n).summary()
