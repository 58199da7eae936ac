"""Report rows for the report's tests: seeded shadow rows and A/B rows at exact rates, and the
report built from them with the ``contains`` grader."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shadowlane.report.analysis import build_report
from shadowlane.report.model import Report, ReportInput, ReportOptions
from shadowlane.report.rows import AbRow, Arm, SettingsGrader, ShadowRow
from shadowlane.settings import CompareSettings

GRADER = SettingsGrader(CompareSettings(grader="contains"))
VERBS = ("go", "be", "have")


def srow(i: int, **kw: object) -> ShadowRow:
    base: dict[str, object] = {
        "req_hash": f"{i:032x}",
        "req_id": f"r-{i}",
        "candidate": "cand",
        "noise_floor": False,
        "outcome": "joined",
        "ts_ms": 1_000 + i,
        "grader": "contains@1",
        "buckets": {"verb": VERBS[i % 3], "tense": "past" if i % 2 else "present"},
    }
    base.update(kw)
    return ShadowRow(**base)  # type: ignore[arg-type]


def _exactly(rng: np.random.Generator, n: int, p: float) -> list[bool]:
    """``round(n·p)`` True values in random order: the rate is exactly what the test asks for."""
    k = round(n * p)
    return [bool(v) for v in rng.permutation([True] * k + [False] * (n - k))]


def shadow_rows(n: int, p_prod: float, p_cand: float, seed: int, cand_shift: float = 1.0) -> list[ShadowRow]:
    rng = np.random.default_rng(seed)
    prods, cands = _exactly(rng, n, p_prod), _exactly(rng, n, p_cand)
    prod_errors, shadow_errors = _exactly(rng, n, 0.02), _exactly(rng, n, 0.02)
    rows = []
    for i in range(n):
        prod, cand = prods[i], cands[i]
        rows.append(
            srow(
                i,
                exact_match=bool(prod == cand and rng.random() < 0.7),
                delta_s=float(rng.beta(2, 8)),
                delta_s_floor=float(rng.beta(1.5, 12)),
                delta_s_excess=float(rng.normal(0.01, 0.05)),
                prod_latency_ms=float(rng.lognormal(3.6, 0.4)),
                shadow_latency_ms=float(rng.lognormal(3.6, 0.4) * cand_shift),
                prod_error=prod_errors[i],
                shadow_error=shadow_errors[i],
                prod_solved=prod,
                shadow_solved=cand,
            )
        )
    return rows


def ab_rows(
    n_base: int, n_cand: int, p_base: float, p_cand: float, seed: int, shift: float = 1.0
) -> list[AbRow]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_base + n_cand):
        arm: Arm = "baseline" if i < n_base else "candidate"
        right = rng.random() < (p_base if arm == "baseline" else p_cand)
        rows.append(
            AbRow(
                req_hash=f"{10_000 + i:032x}",
                req_id=f"ab-{i}",
                ts_ms=2_000 + i,
                flag="f",
                arm=arm,
                served_by=f"model-{arm}",
                strategy="ab",
                epoch=1,
                latency_ms=float(rng.lognormal(3.5, 0.5) * (shift if arm == "candidate" else 1.0)),
                status=500 if rng.random() < 0.01 else 200,
                answer="I went home" if right else "I goed home",
                gold="went",
                buckets={"person": ("1s", "3s")[i % 2]},
            )
        )
    return rows


def report(shadow: Sequence[ShadowRow] = (), ab: Sequence[AbRow] = (), **options: object) -> Report:
    data = ReportInput(0, 10_000, "cand", "baseline", "f", shadow=shadow, ab=ab)
    return build_report(data, GRADER, ReportOptions(**options))  # type: ignore[arg-type]
