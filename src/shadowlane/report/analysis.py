"""The report's statistics: rows in, a frozen :class:`Report` out (pure, no I/O).

Per source (``shadow``: prod vs the candidate on the same requests; ``ab``: the two arms of a
flag on different requests), always *candidate − baseline*:

- accuracy against gold: Wilson 95 % interval per arm, two-proportion z-test (pooled SE) with a
  Newcombe 95 % interval on the difference (``shadowlane.stats.proportions``); the same per bucket
  value of every breakdown label (tense, person, verb, ...);
- latency of successful answers: p50 / p95 / p99 per arm with distribution-free intervals, the
  p95 ratio (Price-Bonett interval) and a two-sided Mann-Whitney U test (candidate first, so
  ``effect`` = P(candidate slower));
- error rate per arm (prod / A/B arm: HTTP ≥ 500; shadow: status not ok), two-proportion test;
- shadow only: ΔS(prod, candidate) against the noise floor ΔS(prod, baseline replay), and the
  disagreements (joined pairs whose answers differ) split into improved (candidate solved, prod
  not), regressed (prod solved, candidate not) and neutral (same solved state, or ungraded), with
  an exact McNemar test on improved vs regressed;
- A/B only: the SRM chi-square of the arm counts against the planned weight.

ΔS values of different embedders are not comparable: when the rows behind the ΔS statistics name
more than one (``Comparison.delta_s_embedder``), the report says so in one note
(:func:`embedder_mix`); rows written before comparisons named their embedder are not counted.

The promote / hold / retrain rule is :func:`shadowlane.report.recommend.recommend`'s.

ΔS against the noise floor, the excess ΔS (:func:`excess_delta_s`: q(ΔS) − q(floor) over the
requests with both, as everywhere else), is reported with the seed's drift targets (median ≤ 0.03,
p95 ≤ 0.10) but does not decide: a better answer differs from prod's too, so quality is judged by gold.
Both shadow arms answer the same requests; the tests assume independent samples, which makes them
conservative for positively correlated pairs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from shadowlane.report.divergence import first_divergences
from shadowlane.report.model import (
    AbSection,
    Accuracy,
    ArmLatency,
    BucketRow,
    DeltaS,
    Disagreements,
    Errors,
    Example,
    GraderMixError,
    Latency,
    Report,
    ReportInput,
    ReportOptions,
    ShadowSection,
)
from shadowlane.report.pins import pin_checks
from shadowlane.report.recommend import recommend
from shadowlane.report.retrieval import retrieval_drift
from shadowlane.report.rows import AbRow, AnswerGrader, Arm, ShadowRow
from shadowlane.stats.distributions import binom_cdf_all
from shadowlane.stats.proportions import ProportionCI, TwoProportionTest, two_proportion_test, wilson_interval
from shadowlane.stats.quantiles import EffectCI, quantile, quantile_ci, quantile_ratio_ci
from shadowlane.stats.ranks import mann_whitney_u
from shadowlane.stats.srm import sample_ratio_mismatch

AB_STRATEGIES = frozenset({"ab", "canary"})
DS_EDGES = tuple(round(i * 0.05, 2) for i in range(21))
CDF_POINTS = 101


def check_graders(shadow_graders: Iterable[str | None], ab_grader: str | None) -> str | None:
    """The one grader the report's numbers come from; :class:`GraderMixError` when there are more."""
    seen = sorted({g for g in shadow_graders if g})
    if len(seen) > 1:
        raise GraderMixError(
            f"the comparisons in this range were graded by {len(seen)} grader versions ({', '.join(seen)}): "
            "the report refuses to mix them; narrow --from/--to or rescore the range with one grader"
        )
    if seen and ab_grader is not None and seen[0] != ab_grader:
        raise GraderMixError(
            f"the comparisons were graded by {seen[0]} but the A/B answers would be graded by {ab_grader}: "
            "the report refuses to mix grader versions; pass the matching --grader"
        )
    return seen[0] if seen else ab_grader


def _distinct(dicts: Iterable[dict[str, str]]) -> tuple[dict[str, str], ...]:
    keys = {tuple(sorted(d.items())) for d in dicts}
    return tuple(dict(k) for k in sorted(keys))


def _rate(flags: Sequence[bool], confidence: float) -> ProportionCI | None:
    return wilson_interval(sum(flags), len(flags), confidence) if flags else None


def _test(
    cand: ProportionCI | None, base: ProportionCI | None, confidence: float
) -> TwoProportionTest | None:
    if cand is None or base is None:
        return None
    return two_proportion_test(cand.successes, cand.n, base.successes, base.n, confidence=confidence)


def accuracy(base: Sequence[bool], cand: Sequence[bool], o: ReportOptions) -> Accuracy:
    b, c = _rate(base, o.confidence), _rate(cand, o.confidence)
    enough = len(base) >= o.min_samples and len(cand) >= o.min_samples
    return Accuracy(b, c, _test(c, b, o.confidence), enough)


def errors(base: Sequence[bool], cand: Sequence[bool], o: ReportOptions) -> Errors:
    b, c = _rate(base, o.confidence), _rate(cand, o.confidence)
    test = _test(c, b, o.confidence)
    enough = len(base) >= o.min_samples and len(cand) >= o.min_samples
    return Errors(b, c, test, enough and test is not None and test.p_value < o.alpha and test.diff > 0)


def buckets(items: Iterable[tuple[dict[str, str], Arm, bool]], o: ReportOptions) -> tuple[BucketRow, ...]:
    """Accuracy per arm per (label key, value)."""
    tally: dict[tuple[str, str], dict[Arm, list[bool]]] = defaultdict(
        lambda: {"baseline": [], "candidate": []}
    )
    for labels, arm, solved in items:
        for key, value in labels.items():
            tally[(key, value)][arm].append(solved)
    out = []
    for (key, value), arms in sorted(tally.items()):
        b, c = _rate(arms["baseline"], o.confidence), _rate(arms["candidate"], o.confidence)
        out.append(BucketRow(key, value, b, c, _test(c, b, o.confidence)))
    return tuple(out)


def _arm_latency(values: Sequence[float], o: ReportOptions) -> ArmLatency | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    cdf = np.quantile(arr, np.linspace(0.0, 1.0, CDF_POINTS), method="inverted_cdf")
    return ArmLatency(
        n=arr.size,
        p50=quantile_ci(arr, 0.50, confidence=o.confidence),
        p95=quantile_ci(arr, 0.95, confidence=o.confidence),
        p99=quantile_ci(arr, 0.99, confidence=o.confidence),
        cdf=tuple(float(v) for v in cdf),
    )


def latency(base: Sequence[float], cand: Sequence[float], o: ReportOptions) -> Latency:
    b, c = _arm_latency(base, o), _arm_latency(cand, o)
    if b is None or c is None:
        return Latency(b, c, None, None, False, False)
    mwu = mann_whitney_u(cand, base, alternative="two-sided")
    try:
        ratio: EffectCI | None = quantile_ratio_ci(cand, base, 0.95, confidence=o.confidence)
    except ValueError:  # a ratio needs positive latencies
        ratio = None
    enough = b.n >= o.min_latency_samples and c.n >= o.min_latency_samples
    over = c.p95.estimate > (1.0 + o.latency_budget) * b.p95.estimate
    regression = enough and mwu.p_value < o.alpha and mwu.effect > 0.5 and over
    return Latency(b, c, mwu, ratio, enough, regression)


_q = quantile  # the rank window summaries and gates read (stats.quantiles.percentile_rank)


def embedder_counts(rows: Iterable[ShadowRow]) -> tuple[tuple[str, int], ...]:
    """(embedder, rows) over the rows that carry a ΔS and name its embedder, most rows first."""
    counts = Counter(
        r.delta_s_embedder
        for r in rows
        if r.delta_s_embedder is not None and (r.delta_s is not None or r.delta_s_floor is not None)
    )
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def embedder_mix(ds: DeltaS) -> str | None:
    """The one line saying that the ΔS statistics mix embedders, or None when they do not."""
    if len(ds.embedders) < 2:
        return None
    named = ", ".join(f"{name} ({n:,})" for name, n in ds.embedders)
    return f"ΔS mixes embedders: {named}; rescore the range with one embedder (shadowlane rescore --embedder)"


def excess_delta_s(paired: Sequence[tuple[float, float]], q: float) -> float | None:
    """The excess ΔS at quantile ``q``: q(ΔS) − q(floor) over the requests with both (``paired``:
    each request's (ΔS, floor)), as window summaries, gates and Prometheus give it. Not the
    quantile of the per-request differences: for a candidate as noisy as the baseline that is far
    from 0 at the p95 (two independent noisy values differ), while this is 0 at every quantile."""
    if not paired:
        return None
    ds, floor = _q([d for d, _ in paired], q), _q([f for _, f in paired], q)
    return None if ds is None or floor is None else round(ds - floor, 6)


def delta_s(
    ds: Sequence[float],
    floor: Sequence[float],
    paired: Sequence[tuple[float, float]],
    embedders: tuple[tuple[str, int], ...] = (),
) -> DeltaS:
    edges = np.asarray(DS_EDGES)

    def hist(values: Sequence[float]) -> tuple[int, ...]:
        return tuple(int(v) for v in np.histogram(np.asarray(values, dtype=np.float64), bins=edges)[0])

    mwu = mann_whitney_u(ds, floor) if ds and floor else None
    return DeltaS(
        n=len(ds),
        n_floor=len(floor),
        median=_q(ds, 0.5),
        p95=_q(ds, 0.95),
        floor_median=_q(floor, 0.5),
        floor_p95=_q(floor, 0.95),
        excess_median=excess_delta_s(paired, 0.5),
        excess_p95=excess_delta_s(paired, 0.95),
        edges=DS_EDGES,
        hist=hist(ds),
        floor_hist=hist(floor),
        mwu=mwu,
        embedders=embedders,
        n_paired=len(paired),
    )


def mcnemar_exact(improved: int, regressed: int) -> float | None:
    """Two-sided exact McNemar p-value (binomial sign test of the discordant pairs at ½)."""
    n = improved + regressed
    if n == 0:
        return None
    return min(1.0, 2.0 * float(binom_cdf_all(n, 0.5)[min(improved, regressed)]))


def disagreements(joined: Sequence[ShadowRow], data: ReportInput, o: ReportOptions) -> Disagreements:
    split: dict[str, list[ShadowRow]] = {"improved": [], "regressed": [], "neutral": []}
    ungraded = 0
    for r in joined:
        if r.exact_match is not False:
            continue
        if r.shadow_solved is True and r.prod_solved is False:
            split["improved"].append(r)
        elif r.prod_solved is True and r.shadow_solved is False:
            split["regressed"].append(r)
        else:
            split["neutral"].append(r)
            ungraded += r.prod_solved is None or r.shadow_solved is None
    examples = {
        kind: tuple(
            Example(r.req_id, r.req_hash, r.buckets, r.delta_s, r.delta_s_floor, data.answers.get(r.req_hash))
            for r in sorted(rows, key=lambda r: (-(r.delta_s or 0.0), r.req_hash))[: o.max_examples]
        )
        for kind, rows in split.items()
    }
    improved, regressed = len(split["improved"]), len(split["regressed"])
    return Disagreements(
        joined=len(joined),
        total=sum(len(v) for v in split.values()),
        improved=improved,
        regressed=regressed,
        neutral=len(split["neutral"]),
        ungraded=ungraded,
        mcnemar_p=mcnemar_exact(improved, regressed),
        examples=examples,
    )


def example_hashes(data: ReportInput, o: ReportOptions) -> set[str]:
    """The requests the disagreement examples will show (whose answer texts are worth a lookup)."""
    joined = [r for r in data.shadow if r.candidate == data.candidate and r.outcome == "joined"]
    return {e.req_hash for shown in disagreements(joined, data, o).examples.values() for e in shown}


def shadow_section(data: ReportInput, o: ReportOptions) -> ShadowSection | None:
    cand = [r for r in data.shadow if r.candidate == data.candidate]
    if not cand or data.candidate is None:
        return None
    floor_rows = [r for r in data.shadow if r.candidate == data.noise_floor and r.candidate != data.candidate]
    joined = [r for r in cand if r.outcome == "joined"]
    graded = [r for r in joined if r.prod_solved is not None and r.shadow_solved is not None]
    base_solved = [bool(r.prod_solved) for r in graded]
    cand_solved = [bool(r.shadow_solved) for r in graded]
    labelled: list[tuple[dict[str, str], Arm, bool]] = []
    for r in graded:
        labelled += [
            (r.buckets, "baseline", bool(r.prod_solved)),
            (r.buckets, "candidate", bool(r.shadow_solved)),
        ]
    floor = [r.delta_s_floor for r in joined if r.delta_s_floor is not None]
    scored = joined
    if not floor:  # older comparisons: the baseline replay's own ΔS(prod, baseline)
        floor_joined = [r for r in floor_rows if r.outcome == "joined" and r.delta_s is not None]
        floor = [r.delta_s for r in floor_joined if r.delta_s is not None]
        scored = [*joined, *floor_joined]
    return ShadowSection(
        candidate=data.candidate,
        noise_floor=data.noise_floor,
        comparisons=len(cand),
        joined=len(joined),
        timeouts=sum(r.outcome == "shadow_timeout" for r in cand),
        missing=sum(r.outcome == "request_missing" for r in cand),
        accuracy=accuracy(base_solved, cand_solved, o),
        buckets=buckets(labelled, o),
        latency=latency(
            [r.prod_latency_ms for r in joined if r.prod_latency_ms is not None and not r.prod_error],
            [r.shadow_latency_ms for r in joined if r.shadow_latency_ms is not None and not r.shadow_error],
            o,
        ),
        errors=errors(
            [bool(r.prod_error) for r in joined if r.prod_error is not None],
            [bool(r.shadow_error) for r in joined if r.shadow_error is not None],
            o,
        ),
        delta_s=delta_s(
            [r.delta_s for r in joined if r.delta_s is not None],
            floor,
            [
                (r.delta_s, r.delta_s_floor)
                for r in joined
                if r.delta_s is not None and r.delta_s_floor is not None
            ],
            embedder_counts(scored),
        ),
        disagreements=disagreements(joined, data, o),
        prod_pins=_distinct(r.prod_pins for r in cand),
        candidate_pins=_distinct(r.candidate_pins for r in cand if r.outcome != "shadow_timeout"),
        floor_pins=_distinct(r.candidate_pins for r in floor_rows if r.outcome != "shadow_timeout"),
        agent=first_divergences(joined),
        retrieval=retrieval_drift(joined, [r for r in floor_rows if r.outcome == "joined"], o.max_examples),
        pin_checks=pin_checks((r.req_id or r.req_hash, r.pin_mismatch_keys) for r in cand),
        prod_pin_checks=pin_checks((r.req_id or r.req_hash, r.prod_pin_mismatch_keys) for r in cand),
    )


def ab_section(
    flag: str, rows: Sequence[AbRow], excluded: int, grader: AnswerGrader, o: ReportOptions
) -> AbSection:
    arms: dict[Arm, list[AbRow]] = {"baseline": [], "candidate": []}
    for r in rows:
        arms[r.arm].append(r)
    graded: dict[Arm, list[tuple[AbRow, bool]]] = {"baseline": [], "candidate": []}
    for arm, members in arms.items():
        for r in members:
            solved = grader.solved(r.answer, r.gold)
            if solved is not None:
                graded[arm].append((r, solved))
    weights = (1.0 - o.ab_weight, o.ab_weight)
    counts = (len(arms["baseline"]), len(arms["candidate"]))
    return AbSection(
        flag=flag,
        counts={"baseline": counts[0], "candidate": counts[1]},
        excluded=excluded,
        accuracy=accuracy([s for _, s in graded["baseline"]], [s for _, s in graded["candidate"]], o),
        buckets=buckets(((r.buckets, arm, s) for arm, pairs in graded.items() for r, s in pairs), o),
        latency=latency(
            [r.latency_ms for r in arms["baseline"] if not r.error],
            [r.latency_ms for r in arms["candidate"] if not r.error],
            o,
        ),
        errors=errors([r.error for r in arms["baseline"]], [r.error for r in arms["candidate"]], o),
        srm=sample_ratio_mismatch(counts, weights, alpha=o.srm_alpha),
        weights=weights,
        served_by={arm: tuple(sorted({r.served_by for r in m})) for arm, m in arms.items()},
        pins={arm: _distinct(r.pins for r in m) for arm, m in arms.items()},
        epochs=tuple(sorted({r.epoch for r in rows})),
    )


def build_report(data: ReportInput, grader: AnswerGrader, options: ReportOptions | None = None) -> Report:
    """All statistics of one report; :class:`GraderMixError` when grader versions would mix."""
    o = options or ReportOptions()
    used = {data.candidate, data.noise_floor}
    flagged = [r for r in data.ab if data.flag is not None and r.flag == data.flag]
    ab_rows = [r for r in flagged if r.strategy in AB_STRATEGIES]
    name = check_graders(
        (r.grader for r in data.shadow if r.candidate in used), grader.name if ab_rows else None
    )
    shadow = shadow_section(data, o)
    ab = (
        ab_section(data.flag, ab_rows, len(flagged) - len(ab_rows), grader, o)
        if ab_rows and data.flag
        else None
    )
    notes: list[str] = []
    if data.candidate is not None and shadow is None:
        notes.append(f"shadow: candidate {data.candidate!r} has no comparisons in the range")
    mix = embedder_mix(shadow.delta_s) if shadow is not None else None
    if mix is not None:
        notes.append(f"shadow: {mix}")
    if data.flag is not None and ab is None:
        notes.append(f"A/B: no request served under an ab / canary assignment of flag {data.flag!r}")
    if ab is not None and ab.excluded:
        notes.append(f"A/B: {ab.excluded} exposures of the flag under off / shadow were left out")
    if ab is not None and ab.accuracy.baseline is None and ab.accuracy.candidate is None:
        notes.append(f"A/B: {grader.name} graded no answer (no gold labels, or a grader that needs ΔS)")
    if len(ab.epochs if ab else ()) > 1:
        notes.append("A/B: the range spans several assignment epochs")
    return Report(
        data.from_ms,
        data.to_ms,
        data.candidate,
        data.flag,
        name,
        o,
        shadow,
        ab,
        recommend(shadow, ab, o),
        tuple(notes),
    )
