"""The report's recommendation: promote, hold or retrain the candidate, with its reasons.

Defaults: α = 0.05, allowed accuracy regression δ = 0.02 (the seed's "gold eval regression ≤ 2
points"), latency budget 15 % on p95 (the seed's "p95 latency within +15 % of baseline"). A source
(shadow, A/B) is *usable* for accuracy when both arms have ≥ ``min_samples`` (30) graded requests,
for latency and errors when both have ≥ ``min_latency_samples`` (20) successful answers /
``min_samples`` requests. A/B evidence is not used at all when its SRM check flags a mismatch.

1. **retrain** when a usable source shows the candidate significantly less accurate (the 95 % CI
   of candidate − baseline accuracy lies entirely below 0), or regressions dominate the shadow
   disagreements (exact McNemar p < α with more regressed than improved requests);
2. else **hold** when any of: no usable accuracy source (too little data never promotes); no
   usable source shows non-inferiority (accuracy CI lower bound ≥ −δ), i.e. a regression beyond
   the allowed one is not ruled out; no usable latency source; an SRM mismatch (p < 0.001); a
   significant latency regression in a usable source (Mann-Whitney two-sided p < α, candidate
   slower, and candidate p95 above (1 + budget) × baseline p95); a significant error-rate increase
   (two-proportion p < α, ≥ ``min_samples`` requests per arm);
3. else **promote**.

Non-inferiority needs one source, not all: the lab grades quality on the shadow pairs and measures
latency on the A/B split, so a small latency A/B whose accuracy interval is merely wide does not
block a promotion the shadow pairs support (it is listed in ``notes``); a source that shows the
candidate significantly worse always retrains.

``reasons`` are the findings that decided; ``notes`` the rest (checks that passed, ΔS against the
noise floor, which is informational: a better answer differs from prod's too, so quality is judged
by the gold grader, not by ΔS).
"""

from __future__ import annotations

from shadowlane.report.model import (
    AbSection,
    Accuracy,
    Errors,
    Latency,
    Recommendation,
    ReportOptions,
    ShadowSection,
)

DS_TARGET_MEDIAN = 0.03
DS_TARGET_P95 = 0.10


def _pp(x: float) -> str:
    return f"{100 * x:+.1f} pp"


def _accuracy(label: str, a: Accuracy, o: ReportOptions, out: dict[str, list[str]]) -> None:
    """Files a usable source under ``worse``, ``shown`` (non-inferior) or ``open`` (inconclusive)."""
    t = a.test
    if t is None or not a.enough_data:
        return
    what = f"{label}: accuracy {100 * t.p1:.1f} % vs {100 * t.p2:.1f} %, Δ {_pp(t.diff)}"
    ci = f"95 % CI [{_pp(t.ci_low)}, {_pp(t.ci_high)}], p = {t.p_value:.3g}"
    delta = f"{100 * o.allowed_regression:g} pp"
    if t.ci_high < 0:
        out["worse"].append(f"{what} is significantly worse ({ci})")
    elif t.ci_low < -o.allowed_regression:
        out["open"].append(f"{what}: a regression beyond {delta} is not ruled out ({ci})")
    else:
        out["shown"].append(f"{what}: no regression beyond {delta} ({ci})")


def _latency(label: str, lat: Latency, o: ReportOptions, hold: list[str], ok: list[str]) -> None:
    if not lat.enough_data or lat.mwu is None or lat.baseline is None or lat.candidate is None:
        return
    b, c = lat.baseline.p95.estimate, lat.candidate.p95.estimate
    what = f"{label}: latency p95 {c:.1f} ms vs {b:.1f} ms, Mann-Whitney p = {lat.mwu.p_value:.3g}"
    if lat.regression:
        hold.append(
            f"{what}: the candidate is significantly slower, "
            f"p95 beyond the +{100 * o.latency_budget:.0f} % budget"
        )
    else:
        ok.append(f"{what}: no significant regression beyond the +{100 * o.latency_budget:.0f} % p95 budget")


def _errors(label: str, e: Errors, hold: list[str], ok: list[str]) -> None:
    t = e.test
    if t is None:
        return
    what = f"{label}: error rate {100 * t.p1:.2f} % vs {100 * t.p2:.2f} % (p = {t.p_value:.3g})"
    (hold if e.regression else ok).append(f"{what}{': significantly higher' if e.regression else ''}")


def recommend(shadow: ShadowSection | None, ab: AbSection | None, o: ReportOptions) -> Recommendation:
    """promote / hold / retrain by the module's rule, with the reasons that decided."""
    retrain: list[str] = []
    hold: list[str] = []
    ok: list[str] = []
    notes: list[str] = []
    sources: list[tuple[str, Accuracy, Latency, Errors]] = []
    if shadow is not None:
        sources.append(("shadow", shadow.accuracy, shadow.latency, shadow.errors))
    if ab is not None:
        s = ab.srm
        srm = f"SRM: arms {s.observed[0]} / {s.observed[1]} vs planned {ab.weights[0]:g} / {ab.weights[1]:g}"
        srm += f" (χ² = {s.chi2:.2f}, p = {s.p_value:.3g})"
        if s.mismatch:
            hold.append(f"{srm}: sample ratio mismatch, the A/B split is broken and its numbers are not used")
        else:
            sources.append(("A/B", ab.accuracy, ab.latency, ab.errors))
            (ok if s.enough_data else notes).append(f"{srm}: {'ok' if s.enough_data else 'too few to test'}")
    acc_out: dict[str, list[str]] = {"worse": [], "open": [], "shown": []}
    for label, acc, lat, err in sources:
        _accuracy(label, acc, o, acc_out)
        _latency(label, lat, o, hold, ok)
        _errors(label, err, hold, ok)
    mcnemar = shadow.disagreements.mcnemar_p if shadow is not None else None
    if shadow is not None and mcnemar is not None:
        d = shadow.disagreements
        what = f"shadow: {d.improved} improved vs {d.regressed} regressed (McNemar p = {mcnemar:.3g})"
        if mcnemar < o.alpha and d.regressed > d.improved:
            retrain.append(f"{what}: regressions dominate the disagreements")
        else:
            ok.append(what)
    retrain[:0] = acc_out["worse"]
    ok[:0] = acc_out["shown"]
    if not any(acc.enough_data and acc.test is not None for _, acc, _, _ in sources):
        sizes = ", ".join(f"{label} {_n(acc)}" for label, acc, _, _ in sources) or "no data"
        hold.append(f"too little data: no source has ≥ {o.min_samples} graded requests per arm ({sizes})")
    elif not acc_out["shown"]:
        hold[:0] = acc_out["open"]
    else:
        notes.extend(acc_out["open"])
    if not any(lat.enough_data for _, _, lat, _ in sources):
        hold.append(f"too little latency data: no source has ≥ {o.min_latency_samples} answers per arm")
    med = shadow.delta_s.excess_median if shadow is not None else None
    p95 = shadow.delta_s.excess_p95 if shadow is not None else None
    if med is not None and p95 is not None:
        over = med > DS_TARGET_MEDIAN or p95 > DS_TARGET_P95
        notes.append(
            f"ΔS beyond the noise floor: median {med:+.3f}, p95 {p95:+.3f} "
            f"({'above' if over else 'within'} the drift targets ≤ {DS_TARGET_MEDIAN} / ≤ {DS_TARGET_P95}; "
            "informational)"
        )
    if retrain:
        return Recommendation("retrain", tuple(retrain), tuple(hold + ok + notes))
    if hold:
        return Recommendation("hold", tuple(hold), tuple(ok + notes))
    return Recommendation("promote", tuple(ok), tuple(notes))


def rule_text(o: ReportOptions) -> tuple[str, ...]:
    """The rule, with this report's thresholds, for report.md / report.html."""
    delta, budget = f"{100 * o.allowed_regression:g} pp", f"{100 * o.latency_budget:g} %"
    return (
        f"A source (shadow, A/B) counts for accuracy with ≥ {o.min_samples} graded requests per arm, "
        f"for latency with ≥ {o.min_latency_samples} successful answers per arm; A/B numbers are not "
        f"used when the SRM check fails (p < {o.srm_alpha:g}). α = {o.alpha:g}.",
        "retrain: a source shows the candidate significantly less accurate (the 95 % CI of "
        "candidate − baseline lies below 0), or regressions dominate the shadow disagreements "
        "(exact McNemar p < α, more regressed than improved).",
        "hold: otherwise, when there is too little data (no usable accuracy or latency source; too "
        "little data never promotes), no source shows non-inferiority (accuracy CI lower bound "
        f"≥ −{delta}), an SRM mismatch, a significant latency regression (Mann-Whitney p < α, "
        f"candidate slower, candidate p95 more than {budget} above baseline p95) or a significant "
        "error-rate increase.",
        "promote: otherwise. ΔS against the noise floor is informational (drift targets median "
        f"≤ {DS_TARGET_MEDIAN}, p95 ≤ {DS_TARGET_P95}).",
    )


def _n(acc: Accuracy) -> str:
    base = acc.baseline.n if acc.baseline else 0
    cand = acc.candidate.n if acc.candidate else 0
    return f"{base} baseline / {cand} candidate"
