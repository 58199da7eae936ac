"""Crafted window summaries for gate and rollout tests: a candidate's window built from synthetic
comparisons through the real ``Accumulator`` (so the histograms and sums are the comparator's)."""

from __future__ import annotations

import random

from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.windows.accumulator import Accumulator

ENDPOINT = "/v1/chat/completions"


def crafted_summary(
    candidate: str,
    start_ms: int,
    end_ms: int,
    n: int,
    *,
    drift: tuple[float, float] = (0.0, 0.04),
    floor: tuple[float, float] = (0.0, 0.04),
    latency_ms: tuple[float, float] = (40.0, 40.0),
    seed: int = 0,
) -> WindowSummary:
    """``n`` joined comparisons: ΔS to prod uniform in ``drift``, the noise floor's in ``floor``,
    prod / shadow latency around ``latency_ms`` (±10 %), no errors, every answer graded solved."""
    rng = random.Random(seed)
    acc = Accumulator(start_ms, end_ms, (candidate, ENDPOINT, "default"))
    prod_ms, shadow_ms = latency_ms
    for i in range(n):
        ds, fl = round(rng.uniform(*drift), 4), round(rng.uniform(*floor), 4)
        acc.add(
            Comparison(
                comparison_id=f"{seed}-{i}",
                req_hash=f"{seed:08x}{i:024x}",
                candidate=candidate,
                ts_ms=start_ms + i % max(1, end_ms - start_ms),
                endpoint=ENDPOINT,
                tenant="default",
                complete=True,
                outcome="joined",
                delta_s=ds,
                delta_s_floor=fl,
                delta_s_excess=round(ds - fl, 6),
                exact_match=ds == 0.0,
                prod_latency_ms=prod_ms * rng.uniform(0.9, 1.1),
                shadow_latency_ms=shadow_ms * rng.uniform(0.9, 1.1),
                prod_status="200",
                shadow_status="ok",
                grader="contains@1",
                prod_solved=True,
                shadow_solved=True,
            )
        )
    return acc.summary(member="crafted")


def comparison(i: int, rng: random.Random, *, candidate: str = "b", outcome: str = "joined") -> Comparison:
    joined = outcome == "joined"
    delta_s = round(rng.random(), 4) if joined else None
    floor = round(rng.random() * 0.5, 4) if joined and i % 4 else None
    excess = None if delta_s is None or floor is None else round(delta_s - floor, 6)
    return Comparison(
        comparison_id=f"c{i}",
        req_hash=f"{i:032x}",
        candidate=candidate,
        ts_ms=0,
        endpoint="/v1/chat/completions",
        tenant="t1",
        complete=joined,
        outcome=outcome,  # type: ignore[arg-type]
        delta_s=delta_s,
        delta_s_floor=floor,
        delta_s_excess=excess,
        exact_match=(i % 3 == 0) if joined else None,
        prod_latency_ms=rng.lognormvariate(3.5, 0.5),
        shadow_latency_ms=rng.lognormvariate(3.8, 0.6) if joined else None,
        prod_status="200" if i % 50 else "500",
        shadow_status=("ok" if i % 20 else "error:timeout") if joined else None,
    )
