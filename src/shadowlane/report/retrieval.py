"""The report's retrieval drift rows: per arm, ΔS(question, retrieved), overlap and coverage.

From the joined comparisons of the candidate (and of the noise-floor baseline replay, when it
reported retrieval), one row per arm: prod (its own retrieval, from the candidate's rows), the
candidate, the baseline replay. Each row gives how many requests carry the figure, the median and
p95 of ΔS(question, retrieved) (the candidate's and the baseline's are each request's worst over
it and its λ paraphrases, as the comparator computes them: :mod:`shadowlane.compare.retrieval`),
the share of requests beyond the manifest's default ``retrieval_delta_s_max`` (the seed's 0.45),
the mean overlap of the retrieved ids with prod's and the mean coverage of the target ids, held
against the default ``retrieval_coverage_min`` (0.70). The worst requests are listed as examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shadowlane.contracts.flag_manifest import Gates
from shadowlane.report.rows import ShadowRow
from shadowlane.stats.quantiles import quantile

_DEFAULTS = Gates()


@dataclass(frozen=True, slots=True)
class RetrievalArm:
    arm: str  # prod, candidate, baseline replay
    n: int  # requests with this arm's ΔS(question, retrieved)
    median: float | None
    p95: float | None
    beyond: float | None  # share of those requests with ΔS above the threshold
    overlap: float | None  # mean Jaccard of the retrieved ids with prod's (None for prod)
    coverage: float | None  # mean share of the target ids retrieved (None for prod)
    paraphrases: int  # λ paraphrase retrievals the worst-of figures cover


@dataclass(frozen=True, slots=True)
class RetrievalExample:
    req_id: str | None
    req_hash: str
    delta_s: float | None
    prod_delta_s: float | None
    overlap: float | None
    coverage: float | None


@dataclass(frozen=True, slots=True)
class RetrievalDrift:
    """Retrieval drift of one shadow section (None there when no arm reported retrieval)."""

    arms: tuple[RetrievalArm, ...]
    delta_s_max: float  # the thresholds the rows are read against
    coverage_min: float
    worst: tuple[RetrievalExample, ...]  # the candidate's requests with the highest ΔS


def _quantile(values: Sequence[float], q: float) -> float | None:
    value = quantile(values, q)  # the rank window summaries and gates read
    return None if value is None else round(value, 6)


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def _arm(name: str, rows: Sequence[ShadowRow], threshold: float) -> RetrievalArm | None:
    if name == "prod":
        values = [r.prod_retrieval_delta_s for r in rows if r.prod_retrieval_delta_s is not None]
        overlaps: list[float] = []
        coverages: list[float] = []
    else:
        values = [r.retrieval_delta_s for r in rows if r.retrieval_delta_s is not None]
        overlaps = [r.retrieval_overlap for r in rows if r.retrieval_overlap is not None]
        coverages = [  # the expected section, as the window and the gate read it
            r.retrieval_coverage
            for r in rows
            if r.retrieval_coverage is not None and r.retrieval_coverage_target == "gold"
        ]
    if not values and not overlaps and not coverages:
        return None
    return RetrievalArm(
        name,
        len(values),
        _quantile(values, 0.5),
        _quantile(values, 0.95),
        sum(v > threshold for v in values) / len(values) if values else None,
        _mean(overlaps),
        _mean(coverages),
        0 if name == "prod" else sum(r.retrieval_paraphrases or 0 for r in rows),
    )


def retrieval_drift(
    joined: Sequence[ShadowRow], floor_joined: Sequence[ShadowRow], max_examples: int = 5
) -> RetrievalDrift | None:
    """The retrieval drift rows of a candidate's joined rows and the baseline replay's."""
    threshold, coverage_min = _DEFAULTS.retrieval_delta_s_max, _DEFAULTS.retrieval_coverage_min
    assert threshold is not None  # the seed's defaults are set
    assert coverage_min is not None
    arms = [
        arm
        for name, rows in (("prod", joined), ("candidate", joined), ("baseline replay", floor_joined))
        if (arm := _arm(name, rows, threshold)) is not None
    ]
    if not arms:
        return None
    scored = sorted(
        (r for r in joined if r.retrieval_delta_s is not None),
        key=lambda r: (-(r.retrieval_delta_s or 0.0), r.req_hash),
    )
    worst = tuple(
        RetrievalExample(
            r.req_id,
            r.req_hash,
            r.retrieval_delta_s,
            r.prod_retrieval_delta_s,
            r.retrieval_overlap,
            r.retrieval_coverage if r.retrieval_coverage_target == "gold" else None,  # as the rows
        )
        for r in scored[:max_examples]
    )
    return RetrievalDrift(tuple(arms), threshold, coverage_min, worst)
