"""ΔS quality per embedder variant: does a faster embedder keep MiniLM's judgement of the answers?

Set: ``tests/bench/data/delta_s_calibration.jsonl`` (384 labelled pairs, six categories; origin
and lengths in ``delta_s_calibration.md`` beside it). Reference: MiniLM as the comparator runs it
by default (int8, truncating at 256 tokens, ``embed_batch`` from ``CompareSettings()``), whatever
the default embedder becomes: issue #20's bars are stated against MiniLM. Each variant in
:data:`VARIANTS` is scored on the same pairs by :mod:`shadowlane.compare.calibration`, three rows:

- ``ΔS quality ρ``: Spearman correlation of its ΔS with the reference's, ×100; target ≥ 90 (the
  bar issue #20 sets for a faster default);
- ``ΔS quality agreement``: share of pairs both put on the same side of the drift threshold
  (``CompareSettings().alert_delta_s_mean``, 0.45), in %; target ≥ 95 %;
- ``ΔS quality AUC``: P(ΔS of a contradiction > ΔS of a paraphrase), ×100, beside the reference's
  own; this bench's own bar is ≥ 0.95× the reference's (a faster embedder must not blur
  contradictions into paraphrases more than MiniLM already does).

``extra`` also has: ρ without the unrelated pairs (``spearman_related``, the stricter figure);
agreement at lower thresholds (0.1, 0.2, 0.3; at 0.45 only the unrelated pairs are above, so
agreement there is easy); per-group median ΔS for both; the seconds each embedder took on the set
(one pass on a shared machine: an indication, not a throughput benchmark, which ``bench_embedder``
is). The quality figures are deterministic and do not depend on load. ``--quick`` scores the first
16 pairs of each category.

A new embedder (a static table, a server) is one line in :data:`VARIANTS`: a label and a
zero-argument factory returning an :class:`~shadowlane.compare.embedder.Embedder`. A factory that
raises ``ImportError`` or ``FileNotFoundError`` (the embedder is not installed here) is skipped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from shadowlane.compare.calibration import (
    CalibrationPair,
    load_pairs,
    pair_delta_s,
    quality,
    threshold_agreement,
)
from shadowlane.compare.embed_onnx import MiniLMEmbedder
from shadowlane.compare.embed_static import StaticEmbedder
from shadowlane.compare.embedder import Embedder
from shadowlane.settings import CompareSettings, load_settings
from tests.bench.common import BenchResult

SET: Final = Path(__file__).parent / "data" / "delta_s_calibration.jsonl"
QUICK_PER_CATEGORY: Final = 16
MIN_SPEARMAN: Final = 0.90
MIN_AGREEMENT: Final = 0.95
MIN_AUC_RATIO: Final = 0.95
EXTRA_THRESHOLDS: Final = (0.1, 0.2, 0.3)


@dataclass(frozen=True)
class Variant:
    """An embedder to score against the reference: a label for the table and how to build it."""

    label: str
    build: Callable[[], Embedder]


#: The embedders scored against the reference; add one line per new embedder.
VARIANTS: Final[tuple[Variant, ...]] = (
    Variant("minilm-128", lambda: MiniLMEmbedder(batch_size=CompareSettings().embed_batch, max_tokens=128)),
    Variant("minilm-64", lambda: MiniLMEmbedder(batch_size=CompareSettings().embed_batch, max_tokens=64)),
    Variant("static", lambda: StaticEmbedder(load_settings().state_dir / "embedders")),  # opt-in
)


def quick_subset(pairs: Sequence[CalibrationPair], per_category: int) -> list[CalibrationPair]:
    """The first ``per_category`` pairs of each category, in file order."""
    counts: dict[str, int] = {}
    out: list[CalibrationPair] = []
    for pair in pairs:
        counts[pair.category] = counts.get(pair.category, 0) + 1
        if counts[pair.category] <= per_category:
            out.append(pair)
    return out


def _rounded(medians: dict[str, float]) -> dict[str, float]:
    return {group: round(value, 4) for group, value in medians.items()}


async def run(quick: bool) -> list[BenchResult]:
    settings = CompareSettings()
    reference = MiniLMEmbedder(batch_size=settings.embed_batch)
    pairs = load_pairs(SET)
    if quick:
        pairs = quick_subset(pairs, QUICK_PER_CATEGORY)
    groups = [pair.group for pair in pairs]
    threshold = settings.alert_delta_s_mean

    started = time.perf_counter()
    reference_scores = pair_delta_s(reference, pairs)
    reference_s = time.perf_counter() - started
    reference_label = "minilm-256"

    results: list[BenchResult] = []
    for variant in VARIANTS:
        try:
            embedder = variant.build()
        except (ImportError, FileNotFoundError) as exc:  # not installed here: say so, score the rest
            print(f"# embedder_quality: {variant.label} skipped ({exc})", file=sys.stderr)
            continue
        started = time.perf_counter()
        scores = pair_delta_s(embedder, pairs)
        seconds = time.perf_counter() - started
        q = quality(
            scores,
            reference_scores,
            groups,
            threshold=threshold,
            candidate_name=embedder.name,
            reference_name=reference.name,
        )
        extra: dict[str, Any] = {
            "embedder": q.embedder,
            "reference": q.reference,
            "pairs": q.pairs,
            "threshold": threshold,
            "threshold_source": "CompareSettings().alert_delta_s_mean",
            "spearman": round(q.spearman, 4),
            "spearman_related": round(q.spearman_related, 4),
            "agreement": round(q.agreement, 4),
            # how demanding the threshold is on this set: agreement at lower drift thresholds
            "agreement_by_threshold": {
                f"{t:g}": round(threshold_agreement(scores, reference_scores, t), 4) for t in EXTRA_THRESHOLDS
            },
            "auc": round(q.auc, 4),
            "reference_auc": round(q.reference_auc, 4),
            "medians": _rounded(q.medians),
            "reference_medians": _rounded(q.reference_medians),
            "seconds_on_set": {reference_label: round(reference_s, 2), variant.label: round(seconds, 2)},
            "set": "tests/bench/data/delta_s_calibration.jsonl",
        }
        results += [
            BenchResult(
                name="ΔS quality ρ",
                unit="Spearman ×100",
                baseline_name=reference_label,
                baseline=100.0,
                variant_name=variant.label,
                variant=round(100 * q.spearman, 1),
                ratio=q.spearman,
                target=f"≥ {MIN_SPEARMAN:.2f}",
                passed=q.spearman >= MIN_SPEARMAN,
                extra=extra,
            ),
            BenchResult(
                name=f"ΔS quality agreement@{threshold:g}",
                unit="% of pairs",
                baseline_name=reference_label,
                baseline=100.0,
                variant_name=variant.label,
                variant=round(100 * q.agreement, 1),
                ratio=q.agreement,
                target=f"≥ {MIN_AGREEMENT:.2f}",
                passed=q.agreement >= MIN_AGREEMENT,
                extra={"embedder": q.embedder, "pairs": q.pairs},
            ),
            BenchResult(
                name="ΔS quality AUC contra>para",
                unit="AUC ×100",
                baseline_name=reference_label,
                baseline=round(100 * q.reference_auc, 1),
                variant_name=variant.label,
                variant=round(100 * q.auc, 1),
                ratio=q.auc / q.reference_auc,
                target=f"≥ {MIN_AUC_RATIO:.2f}×",
                passed=q.auc >= MIN_AUC_RATIO * q.reference_auc,
                extra={"embedder": q.embedder, "pairs": q.pairs},
            ),
        ]
    return results
