"""Rollout gates: one evaluation window (a merged ``WindowSummary``) → PASS / FAIL / INCONCLUSIVE.

Every gate of the flag's manifest is judged on the summary field that
``shadowlane.contracts.flag_manifest`` maps it to, with the statistic and confidence interval behind
it (:mod:`shadowlane.rollout.gate_stats`): ΔS percentiles from the paired and floor HdrHistograms
(distribution-free order-statistic intervals: ΔS has atoms and gaps), the p95 latency uplift as a
ratio of quantiles (Price-Bonett), rates with Wilson intervals, or at a confidence-sequence look
the exact always-valid Bernoulli mixture bound, the error rate also against prod's (Newcombe), the
accuracy drop paired on the solve discordance, coverage from Σx and Σx², the cost-per-solved
uplift by the paired delta method. ΔS gates use the excess ΔS ``p(ΔS) − p(floor)`` over the
requests with both when the window has a noise floor, raw ΔS otherwise; each result says which.

**Verdict rules.** ``α`` is this look's one-sided level (looks, below); a gate's interval is
two-sided at ``1 − 2α``. FAIL tests run at ``α/G`` over the ``G`` gates the manifest turns on (a
number fixed for the stage; ``multiplicity="bonferroni"``, default; at a sequence look, the
sequence's level for ``α/G``) or at ``α`` per gate (``"per_gate"``).

1. No summary or ``count < min_samples`` → INCONCLUSIVE, never PASS; no abort fires either, but
   for ``pin_mismatch_rate_over`` (2).
2. A hard abort rule fires at once: point estimate beyond its value *and* its one-sided bound too
   (at a sequence look, the sequence's bound, valid however often it is checked; otherwise a fixed
   95 %) → FAIL with ``hard_stop``. ``pin_mismatch_rate_over`` (candidate pin mismatches / pins
   checked) fires on the rate alone, whatever the sample size: a request served from the wrong
   revision is a fact, not noise.
3. A gate **PASSes** when its interval's unfavourable end is within the threshold (level α: all
   gates must pass, an intersection-union test, so no multiplicity correction is needed), or when
   it is ``held``: its bound cleared the threshold at an earlier look of the same stage under the
   confidence sequence (valid at every look at once) and it does not FAIL now. It
   **FAILs** by ``worse_than_reference`` (default) when its point estimate is beyond the threshold
   *and* the candidate is significantly worse than its reference (prod, or the noise floor) at the
   FAIL level; gates without a reference in a summary (raw ΔS, coverage, λ flips, tool success),
   and every gate under ``ci_beyond_threshold``, need the one-sided FAIL-level bound beyond the
   threshold. Otherwise INCONCLUSIVE; a gate whose metric the window lacks is SKIPPED, one set
   to null is left out.
4. Soft abort rules fire on the point estimate and hold: the verdict is at most INCONCLUSIVE.
   Budget rules and the cost gate are waived when accuracy is significantly *better* than prod's
   (the seeds' "unless quality gains are proven").
5. Any FAIL → FAIL; every judged gate PASS (at least one) → PASS; else INCONCLUSIVE, with its way
   forward (the blocking gates, further requests and time to a verdict:
   :mod:`shadowlane.rollout.forecast`).

Guarantees, over all looks of a stage whose summary is cumulative (everything since the stage
began): a gate whose threshold is breached PASSes with probability ≤ α; a candidate no worse than
its references FAILs a gate with probability ≤ α (Bonferroni), and each hard abort rule, at its own
level α, adds at most α when its value is as close to the candidate as a gate's threshold (the
seed's abort values sit far beyond the gates). ``worse_than_reference``
reaches the power targets where "whole interval beyond the threshold" needs far more data; the
price: a candidate sitting exactly at a threshold FAILs often. ``shadowlane simulate-gates``
measures the whole decision (``docs/gates.md``).

**Looks.** A rollout evaluates every window. By default each look takes the level of an always-valid
confidence sequence (:func:`shadowlane.rollout.looks.sequence_look`), which holds at every look at
once and never runs out; ``alpha_spending`` spends α over the stage's planned samples instead
(:func:`~shadowlane.rollout.looks.look_alpha_for`, :func:`~shadowlane.rollout.looks.look_schedule`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from shadowlane.contracts.flag_manifest import FlagSpec, HardAbortRule, SoftAbortRule
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout import gate_stats as _gs
from shadowlane.rollout.forecast import Forward
from shadowlane.rollout.forecast import attach as _way_forward
from shadowlane.rollout.gate_stats import ExcessInterval
from shadowlane.rollout.looks import LookAlpha, fixed_look

Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]
GateVerdict = Literal["PASS", "FAIL", "INCONCLUSIVE", "SKIPPED"]
Direction = Literal["max", "min"]
FailRule = Literal["worse_than_reference", "ci_beyond_threshold"]
Multiplicity = Literal["per_gate", "bonferroni"]
Severity = Literal["hard", "soft"]
Floats = NDArray[np.float64]
ABORT_CONFIDENCE = 0.90  # two-sided: its ends are the one-sided 95 % bounds hard aborts need
EXIT_CODES: dict[str, int] = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 2}
WAIVED = "waived: accuracy significantly better"
HELD = (
    "held: its bound cleared the threshold at an earlier look of this stage "
    "(a confidence sequence holds at every look at once)"
)


@dataclass(frozen=True, slots=True)
class GateResult:
    name: str
    metric: str
    value: float | None
    threshold: float
    direction: Direction
    statistic: str
    ci_low: float | None
    ci_high: float | None
    confidence: float
    n: int
    verdict: GateVerdict
    reason: str
    reference: float | None = None  # prod's value (0: no change) the FAIL rule compares with
    worse_low: float | None = None  # interval of candidate − reference, at ``confidence``
    worse_high: float | None = None
    fail_alpha: float | None = None  # one-sided level of the FAIL test (α, or α/G)
    fail_bound: float | None = None  # the bound the FAIL test read, when the estimate was beyond
    forward: Forward | None = None  # INCONCLUSIVE: further requests to its verdict (rollout.forecast)


@dataclass(frozen=True, slots=True)
class AbortResult:
    kind: str
    severity: Severity
    value: float | None
    threshold: float
    fired: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    flag: str
    verdict: Verdict
    reason: str
    gates: tuple[GateResult, ...]
    aborts: tuple[AbortResult, ...]
    hard_stop: bool
    soft_hold: bool
    n: int
    min_samples: int
    window_start_ms: int | None
    window_end_ms: int | None
    look: LookAlpha
    fail_rule: FailRule
    multiplicity: Multiplicity
    forward: Forward | None = None  # INCONCLUSIVE: the way forward to a verdict (rollout.forecast)
    blocking: tuple[str, ...] = ()  # INCONCLUSIVE: the gates that do not pass yet

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if g.verdict == "FAIL")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (infinite bounds become null)."""
        out: dict[str, Any] = _finite(asdict(self))
        return out


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


_GATES: tuple[tuple[str, str, Direction, _gs.Compute], ...] = (
    ("delta_s.median_max", "delta_s_median", "max", _gs.delta_s(0.5)),
    ("delta_s.p95_max", "delta_s_p95", "max", _gs.delta_s(0.95)),
    ("coverage_min", "coverage", "min", _gs.coverage),
    ("lambda_convergent", "lambda", "max", _gs.LAMBDA_FLIPS),
    ("latency_p95_uplift_max", "latency", "max", _gs.latency),
    ("error_rate_max", "errors", "max", _gs.errors),
    ("error_rate_margin", "error_delta", "max", _gs.error_delta),
    ("tool_success_min", "tools", "min", _gs.TOOL_SUCCESS),
    ("cost_uplift_max", "cost", "max", _gs.cost),
    ("accuracy_drop_max", "accuracy", "max", _gs.accuracy),
    ("retrieval_delta_s_max", "retrieval_delta_s", "max", _gs.retrieval_delta_s),
    ("retrieval_coverage_min", "retrieval_coverage", "min", _gs.retrieval_coverage),
)  # fmt: skip
_ABORT_METRIC: dict[str, str] = {
    "delta_s_median_over": "delta_s_median", "delta_s_p95_over": "delta_s_p95", "coverage_under": "coverage",
    "lambda_flip_rate_over": "lambda", "error_rate_over": "errors", "tool_success_under": "tools",
    "accuracy_drop_over": "accuracy", "latency_p95_uplift_over": "latency", "cost_uplift_over": "cost",
    "latency_p95_over_budget": "latency", "cost_per_solved_over_budget": "cost",
    "pin_mismatch_rate_over": "pins",
}  # fmt: skip
_DIRECTION: dict[str, Direction] = {key: direction for _, key, direction, _ in _GATES} | {"pins": "max"}
_EXACT = frozenset({"pin_mismatch_rate_over"})  # facts, not estimates: any sample size, no bound
_WAIVABLE = frozenset({"latency_p95_over_budget", "cost_per_solved_over_budget", "cost_uplift_max"})


def _threshold(spec: FlagSpec, name: str) -> float | None:
    g = spec.gates
    if name == "lambda_convergent":
        return g.lambda_flip_rate_max if g.lambda_convergent else None
    owner, field = (g.delta_s, name.split(".")[1]) if name.startswith("delta_s.") else (g, name)
    value: float | None = getattr(owner, field)
    return value


def _beyond(x: float, t: float, direction: Direction) -> bool:
    return x > t if direction == "max" else x < t


def _judge(
    name: str, st: _gs.Stat, fail_stat: Callable[[], _gs.Stat | str], t: float, direction: Direction,
    conf: float, fail_alpha: float, rule: FailRule,
) -> GateResult:  # fmt: skip
    unfavourable = st.high if direction == "max" else st.low
    low, high = st.worse if st.worse is not None else (None, None)
    result = GateResult(name, st.metric, st.value, t, direction, st.statistic, st.low, st.high, conf, st.n,
                        "INCONCLUSIVE", "", st.reference, low, high, fail_alpha)  # fmt: skip
    interval = f"{conf:.4g} interval [{st.low:.4g}, {st.high:.4g}]"
    if math.isfinite(unfavourable) and not _beyond(unfavourable, t, direction):
        return replace(result, verdict="PASS", reason=f"{interval} within {t:g}")
    if not _beyond(st.value, t, direction):
        return replace(result, reason=f"{interval} straddles {t:g}")
    f = fail_stat()
    if isinstance(f, str):
        return replace(result, reason=f)
    if rule == "worse_than_reference" and f.worse is not None:
        bound = f.worse[0] if direction == "max" else f.worse[1]
        fail = _beyond(bound, 0.0, direction)
        test = f"candidate − reference ({f.reference:.4g}) ≥ {bound:.4g}" if direction == "max" else (
            f"candidate − reference ({f.reference:.4g}) ≤ {bound:.4g}")  # fmt: skip
    else:
        bound = f.low if direction == "max" else f.high
        fail, test = _beyond(bound, t, direction), f"bound {bound:.4g} vs {t:g}"
    level = f"one-sided α = {fail_alpha:.3g}"
    if fail:
        return replace(
            result, verdict="FAIL", fail_bound=bound, reason=f"{st.value:.4g} beyond {t:g}; {test} ({level})"
        )
    return replace(
        result, fail_bound=bound, reason=f"{st.value:.4g} beyond {t:g} but not significant: {test} ({level})"
    )


def cleared(decision: Decision) -> frozenset[str]:
    """The gates whose bound cleared their threshold at this look (PASS, not by a waiver): what a
    stage holds for its later looks (``evaluate``'s ``held``)."""
    return frozenset(g.name for g in decision.gates if g.verdict == "PASS" and not g.reason.endswith(WAIVED))


def evaluate(
    spec: FlagSpec,
    summary: WindowSummary | None,
    *,
    look: LookAlpha | None = None,
    flag: str = "",
    fail_rule: FailRule = "worse_than_reference",
    multiplicity: Multiplicity = "bonferroni",
    excess_interval: ExcessInterval = "conservative",
    held: frozenset[str] = frozenset(),
    forecast: bool = True,
) -> Decision:
    """Judge one evaluation window (the rules: module docstring). ``held``: gates that PASSed at an
    earlier look of the same stage; under a confidence sequence they stay PASS unless they FAIL.
    An INCONCLUSIVE decision carries its way forward (``forward``, ``blocking``: the estimated further
    requests to a verdict, :mod:`shadowlane.rollout.forecast`) unless ``forecast`` is False."""
    look = look or fixed_look()
    conf = look.confidence

    def decision(
        verdict: Verdict,
        reason: str,
        gates: Sequence[GateResult] = (),
        aborts: Sequence[AbortResult] = (),
        hard: bool = False,
        soft: bool = False,
    ) -> Decision:
        s = summary
        start, end = (s.window_start_ms, s.window_end_ms) if s else (None, None)
        d = Decision(flag, verdict, reason, tuple(gates), tuple(aborts), hard, soft, s.count if s else 0,
                     spec.min_samples, start, end, look, fail_rule, multiplicity)  # fmt: skip
        return _way_forward(d, summary) if forecast and verdict == "INCONCLUSIVE" else d

    if summary is None:
        return decision("INCONCLUSIVE", "no window summaries: no data")
    window, cache = _gs.Window(summary), dict[tuple[str, float], "_gs.Stat | str"]()
    if look.sequence:  # rates take the exact sequence bound at the sequence's levels (gate_stats)
        window.sequence_alpha[conf] = look.total_alpha
    computes = {key: fn for _, key, _, fn in _GATES} | {"pins": _gs.PIN_MISMATCHES}
    if excess_interval != "conservative":
        computes |= {
            "delta_s_median": _gs.delta_s(0.5, excess_interval),
            "delta_s_p95": _gs.delta_s(0.95, excess_interval),
        }

    def stat(key: str, level: float) -> _gs.Stat | str:
        if not 0.0 < level < 1.0:
            return "no α left at this look (no new information, or planned samples exceeded)"
        if (key, level) not in cache:
            cache[key, level] = computes[key](window, level)
        return cache[key, level]

    enough = summary.count >= spec.min_samples
    short = f"too little data: n = {summary.count} < min_samples {spec.min_samples}"
    accuracy = stat("accuracy", conf)
    gain = isinstance(accuracy, _gs.Stat) and accuracy.high < 0  # significantly better than prod
    active = [(name, key, d, t) for name, key, d, _ in _GATES if (t := _threshold(spec, name)) is not None]
    parts = max(1, len(active)) if multiplicity == "bonferroni" else 1  # fixed by the manifest
    fail_alpha = look.level(parts)
    if look.sequence:
        window.sequence_alpha.setdefault(1 - 2 * fail_alpha, look.total_alpha / parts)
    gates = []
    for name, key, direction, t in active:
        st = stat(key, conf)
        if isinstance(st, str):
            gates.append(GateResult(name, key, None, t, direction, "", None, None, conf, 0, "SKIPPED", st))
            continue
        at_fail = partial(stat, key, 1 - 2 * fail_alpha)
        result = _judge(name, st, at_fail, t, direction, conf, fail_alpha, fail_rule)
        if name in held and look.sequence and result.verdict == "INCONCLUSIVE":
            result = replace(result, verdict="PASS", reason=f"{result.reason}; {HELD}")
        if name in _WAIVABLE and gain and result.verdict != "PASS":
            result = replace(result, verdict="PASS", reason=f"{result.reason}; {WAIVED}")
        gates.append(result if enough else replace(result, verdict="INCONCLUSIVE", reason=short))
    aborts = []
    ladder: tuple[tuple[Severity, Sequence[HardAbortRule | SoftAbortRule]], ...] = (
        ("hard", spec.abort_rules.hard),
        ("soft", spec.abort_rules.soft),
    )
    for severity, rules in ladder:
        for rule in rules:
            key, t = _ABORT_METRIC[rule.kind], spec.threshold(rule)
            direction = _DIRECTION[key]
            st = stat(key, conf if look.sequence or severity == "soft" else ABORT_CONFIDENCE)
            if isinstance(st, str) or not (enough or rule.kind in _EXACT):
                aborts.append(
                    AbortResult(rule.kind, severity, None, t, False, st if isinstance(st, str) else short)
                )
                continue
            fired = _beyond(st.value, t, direction)
            why = f"{st.metric} {st.value:.4g} vs {t:g}"
            if rule.kind in _EXACT:
                why += f" ({st.n} checked; acts on any sample size)"
            elif severity == "hard":
                fired = fired and _beyond(st.low if direction == "max" else st.high, t, direction)
                why += f" (needs its one-sided bound beyond too: {'sequence' if look.sequence else '95 %'})"
            if fired and rule.kind in _WAIVABLE and gain:
                fired, why = False, why + ": waived, accuracy significantly better than prod"
            aborts.append(AbortResult(rule.kind, severity, st.value, t, fired, why))
    stops = [a.kind for a in aborts if a.fired and a.severity == "hard"]
    holds = [a.kind for a in aborts if a.fired and a.severity == "soft"]
    failed = [g.name for g in gates if g.verdict == "FAIL"]
    judged = [g for g in gates if g.verdict != "SKIPPED"]
    args = (gates, aborts, bool(stops), bool(holds))
    if stops:  # below min_samples only an exact rule (a pin mismatch) can fire
        return decision("FAIL", f"hard abort: {', '.join(stops)}: roll back at once", *args)
    if not enough:
        return decision("INCONCLUSIVE", short, *args)
    if failed:
        return decision("FAIL", f"gate failed: {', '.join(failed)}", *args)
    if holds:
        return decision("INCONCLUSIVE", f"soft abort holds: {', '.join(holds)}", *args)
    if judged and all(g.verdict == "PASS" for g in judged):
        return decision("PASS", f"all {len(judged)} judged gates pass", *args)
    pending = [g.name for g in judged if g.verdict != "PASS"]
    return decision(
        "INCONCLUSIVE", f"undecided: {', '.join(pending)}" if pending else "no gate could be judged", *args
    )
