"""Embedder quality on a labelled calibration set: does an embedder's ΔS agree with the reference's?

Choosing an embedder trades speed for fidelity. This module measures the fidelity side on a set of
labelled answer pairs (the project's own is ``tests/bench/data/delta_s_calibration.jsonl``; an
operator can write one from their own traffic in the same format):

- the set's format: one :class:`CalibrationPair` per JSON line (:func:`load_pairs`,
  :func:`dump_pairs`);
- ΔS of every pair under an embedder, by the comparator's own rule (:class:`~shadowlane.compare.
  scores.Scores`: texts equal after normalising score 0 without the embedder);
- pure functions over ΔS arrays: :func:`spearman` (rank correlation, average ranks for ties),
  :func:`threshold_agreement` (share of pairs on the same side of the drift threshold),
  :func:`separation_auc` (P(ΔS of a contradiction > ΔS of a paraphrase)) and
  :func:`group_medians`;
- :func:`quality` combines them for a candidate against a reference (MiniLM, the default
  embedder), and :func:`evaluate` does the same from the embedders themselves.

The bar the project sets for a faster default embedder: Spearman ≥ 0.9 with MiniLM and ≥ 95 %
agreement at the drift threshold (docs/embedders.md has the measured figures).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from shadowlane.compare.embedder import Embedder
from shadowlane.compare.scores import Scores
from shadowlane.stats.ranks import mann_whitney_u

#: The categories of the set, in file order.
CATEGORIES: Final = ("paraphrase", "different_fact", "contradiction", "unrelated", "code", "tool_call")
#: What side B is to side A: the same meaning, one fact (argument, logic) changed, the claim
#: denied or reversed, a different topic.
RELATIONS: Final = ("equivalent", "changed", "contradiction", "unrelated")
#: The relation each prose category implies; ``code`` and ``tool_call`` hold two relations each.
IMPLIED_RELATION: Final = {
    "paraphrase": "equivalent",
    "different_fact": "changed",
    "contradiction": "contradiction",
    "unrelated": "unrelated",
}
_FIELDS: Final = ("id", "category", "relation", "topic", "a", "b")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CalibrationPair:
    """Two answers and what B is to A. ``topic`` names the template(s) the pair came from."""

    id: str
    category: str
    relation: str
    topic: str
    a: str
    b: str

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"{self.id}: unknown category {self.category!r}; expected one of {CATEGORIES}")
        if self.relation not in RELATIONS:
            raise ValueError(f"{self.id}: unknown relation {self.relation!r}; expected one of {RELATIONS}")
        implied = IMPLIED_RELATION.get(self.category)
        if implied is not None and self.relation != implied:
            raise ValueError(f"{self.id}: category {self.category} implies relation {implied}")
        if not self.a.strip() or not self.b.strip():
            raise ValueError(f"{self.id}: both answers must be non-empty")

    @property
    def group(self) -> str:
        """The category, or ``category/relation`` for the categories that hold two relations."""
        return self.category if self.category in IMPLIED_RELATION else f"{self.category}/{self.relation}"


def load_pairs(path: Path) -> list[CalibrationPair]:
    """The pairs of a JSON-lines file; an unknown field, a missing one or a repeated id is an error."""
    pairs: list[CalibrationPair] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record, dict) or set(record) != set(_FIELDS):
            raise ValueError(f"{path}:{number}: expected an object with exactly the fields {_FIELDS}")
        if not all(isinstance(record[name], str) for name in _FIELDS):
            raise ValueError(f"{path}:{number}: every field must be a string")
        pair = CalibrationPair(**record)
        if pair.id in seen:
            raise ValueError(f"{path}:{number}: repeated id {pair.id!r}")
        seen.add(pair.id)
        pairs.append(pair)
    return pairs


def dump_pairs(pairs: Iterable[CalibrationPair]) -> str:
    """One JSON object per line, fields in a fixed order, UTF-8 kept as is: byte-stable output."""
    return "".join(json.dumps(asdict(pair), ensure_ascii=False) + "\n" for pair in pairs)


def pair_delta_s(embedder: Embedder, pairs: Sequence[CalibrationPair]) -> FloatArray:
    """ΔS of every pair, in order, as the comparator computes it (all texts in one ``embed`` call)."""
    scores = Scores(True)
    for pair in pairs:
        scores.want(pair.a, pair.b)
    scores.compute(embedder)
    values = [scores.get(pair.a, pair.b) for pair in pairs]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _vector(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def _same_length(x: FloatArray, y: FloatArray) -> None:
    if x.size != y.size or x.size == 0:
        raise ValueError(f"need two non-empty arrays of the same length, got {x.size} and {y.size}")


def average_ranks(values: npt.ArrayLike) -> FloatArray:
    """Ranks 1..n in the order of ``values``; tied values share the average of their ranks."""
    arr = _vector(values, "values")
    _, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    last = np.cumsum(counts).astype(np.float64)
    ranks: FloatArray = (last - (counts - 1) / 2.0)[inverse.ravel()]
    return ranks


def spearman(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Spearman's ρ: Pearson's correlation of the average ranks (``scipy.stats.spearmanr``'s ρ).

    NaN when either side is constant (no ranking to correlate), as scipy returns.
    """
    rx, ry = average_ranks(x), average_ranks(y)
    _same_length(rx, ry)
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denominator = float(np.sqrt((dx @ dx) * (dy @ dy)))
    return float(dx @ dy) / denominator if denominator > 0.0 else float("nan")


def threshold_agreement(x: npt.ArrayLike, y: npt.ArrayLike, threshold: float) -> float:
    """Share of pairs that both arrays put on the same side of ``threshold`` (drifted = ΔS above it)."""
    xs, ys = _vector(x, "x"), _vector(y, "y")
    _same_length(xs, ys)
    return float(np.mean((xs > threshold) == (ys > threshold)))


def separation_auc(lower: npt.ArrayLike, higher: npt.ArrayLike) -> float:
    """P(a ``higher`` value exceeds a ``lower`` one), ties counting ½: the ROC AUC of telling the two
    samples apart by value. 1 separates perfectly, 0.5 is chance."""
    return mann_whitney_u(_vector(higher, "higher"), _vector(lower, "lower")).effect


def group_medians(values: npt.ArrayLike, groups: Sequence[str]) -> dict[str, float]:
    """Median of ``values`` per group label, groups in order of first appearance."""
    arr = _vector(values, "values")
    if arr.size != len(groups):
        raise ValueError(f"{arr.size} values for {len(groups)} group labels")
    labels = np.asarray(groups)
    return {g: float(np.median(arr[labels == g])) for g in dict.fromkeys(groups)}


@dataclass(frozen=True, slots=True)
class EmbedderQuality:
    """One embedder's ΔS on the set, against the reference embedder's."""

    embedder: str
    reference: str
    pairs: int
    threshold: float
    spearman: float  # ρ of the embedder's ΔS with the reference's, over all pairs
    # ρ without the unrelated pairs: their cluster near 1 against the rest near 0.1–0.2 lifts ρ on
    # the whole set; this is the stricter figure for the pairs where the ordering is hard
    spearman_related: float
    agreement: float  # share of pairs on the same side of ``threshold``
    auc: float  # P(ΔS contradiction > ΔS paraphrase) under the embedder
    reference_auc: float
    medians: dict[str, float]  # per group (category, or category/relation)
    reference_medians: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def quality(
    candidate: npt.ArrayLike,
    reference: npt.ArrayLike,
    groups: Sequence[str],
    *,
    threshold: float,
    candidate_name: str,
    reference_name: str,
) -> EmbedderQuality:
    """The figures for ΔS arrays already computed (same pairs, same order); ``groups`` labels each
    pair and must include ``paraphrase`` and ``contradiction``."""
    cand, ref = _vector(candidate, "candidate"), _vector(reference, "reference")
    _same_length(cand, ref)
    labels = np.asarray(groups)
    if labels.size != cand.size:
        raise ValueError(f"{cand.size} ΔS values for {labels.size} group labels")
    paraphrase, contradiction = labels == "paraphrase", labels == "contradiction"
    related = labels != "unrelated"
    if not paraphrase.any() or not contradiction.any():
        raise ValueError("the set needs paraphrase and contradiction pairs to measure separation")
    return EmbedderQuality(
        embedder=candidate_name,
        reference=reference_name,
        pairs=int(cand.size),
        threshold=threshold,
        spearman=spearman(cand, ref),
        spearman_related=spearman(cand[related], ref[related]) if related.sum() > 1 else float("nan"),
        agreement=threshold_agreement(cand, ref, threshold),
        auc=separation_auc(cand[paraphrase], cand[contradiction]),
        reference_auc=separation_auc(ref[paraphrase], ref[contradiction]),
        medians=group_medians(cand, groups),
        reference_medians=group_medians(ref, groups),
    )


def evaluate(
    candidate: Embedder, reference: Embedder, pairs: Sequence[CalibrationPair], *, threshold: float
) -> EmbedderQuality:
    """Embed every pair with both embedders and compare (the reference is typically MiniLM)."""
    groups = [pair.group for pair in pairs]
    return quality(
        pair_delta_s(candidate, pairs),
        pair_delta_s(reference, pairs),
        groups,
        threshold=threshold,
        candidate_name=candidate.name,
        reference_name=reference.name,
    )
