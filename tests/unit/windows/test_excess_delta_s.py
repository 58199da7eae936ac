"""The excess ΔS has one definition, q(ΔS) − q(floor) over the requests with both, and every path
gives the same value from the same comparisons: the window summary, the gate, the report and
the Prometheus gauge (within the window histograms' resolution, 3 significant digits)."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from shadowlane.compare.prom import CompareMetrics
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_state import WindowState
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.report.analysis import delta_s as report_delta_s
from shadowlane.rollout.gate_stats import Stat, Window
from shadowlane.rollout.gate_stats import delta_s as gate_delta_s
from shadowlane.windows.accumulator import Accumulator
from tests.support.summaries import comparison

RESOLUTION = 1e-3


def _comparisons(n: int, seed: int) -> list[Comparison]:
    rng = random.Random(seed)
    return [comparison(i, rng) for i in range(n)]


def _gauge(metrics: CompareMetrics, name: str) -> float:
    registry = CollectorRegistry()
    for collector in metrics.collectors():
        registry.register(collector)
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith(f"shadowlane_compare_window_delta_s_excess_{name}{{"):
            return float(line.rpartition(" ")[2])
    raise AssertionError(f"no {name} gauge")


@pytest.mark.parametrize(("seed", "n"), [(0, 400), (1, 413), (2, 97), (3, 1_011), (4, 58), (5, 2_345)])
def test_every_path_gives_the_same_excess_delta_s(seed: int, n: int) -> None:
    """Sizes where n·q is and is not whole: every path reads the same rank (``percentile_rank``)."""
    comps = _comparisons(n, seed)
    acc = Accumulator(0, 60_000, ("b", "/v1/chat/completions", "t1"))
    for c in comps:
        acc.add(c)
    summary = acc.summary()
    window = Window(summary)
    metrics = CompareMetrics()
    metrics.window(summary)
    joined = [c for c in comps if c.outcome == "joined" and c.delta_s is not None]
    paired = [(c.delta_s, c.delta_s_floor) for c in joined if c.delta_s_floor is not None]
    report = report_delta_s(
        [c.delta_s for c in joined if c.delta_s is not None],
        [f for _, f in paired if f is not None],
        [(d, f) for d, f in paired if d is not None and f is not None],
    )
    for q, name, by_report in ((0.5, "median", report.excess_median), (0.95, "p95", report.excess_p95)):
        from_summary = getattr(summary, f"delta_s_excess_{name}")
        gate = gate_delta_s(q)(window, 0.9)
        assert isinstance(gate, Stat)
        assert gate.metric == f"delta_s_excess_{name}"
        assert gate.n == summary.excess_count == len(paired)
        assert by_report is not None
        for value in (from_summary, gate.value, _gauge(metrics, name)):
            assert value == pytest.approx(by_report, abs=RESOLUTION), name
    excess = [d - f for d, f in paired if d is not None and f is not None]
    assert summary.delta_s_excess_mean == pytest.approx(float(np.mean(excess)), abs=1e-9)


def test_a_candidate_as_noisy_as_the_floor_has_no_excess_but_wide_per_request_differences() -> None:
    """Why the definition is a difference of quantiles: ΔS and floor drawn from one distribution
    give an excess ΔS near 0 at the p95, while the p95 of per-request differences is large."""
    rng = np.random.default_rng(7)
    ds, floor = rng.uniform(0.0, 0.4, 5_000), rng.uniform(0.0, 0.4, 5_000)
    report = report_delta_s(list(ds), list(floor), list(zip(ds, floor, strict=True)))
    assert report.excess_p95 is not None
    assert abs(report.excess_p95) < 0.02
    assert float(np.quantile(ds - floor, 0.95)) > 0.2


def test_records_written_before_the_rename_read_with_the_one_name() -> None:
    """Summaries (and window states) on a topic from before carry ``delta_s_adjusted_*``."""
    acc = Accumulator(0, 60_000, ("b", None, None))
    for c in _comparisons(40, 1):
        acc.add(c)
    new = acc.summary()
    data = orjson.loads(encode(new))
    old = {
        ("delta_s_adjusted_" + k.removeprefix("delta_s_excess_") if k.startswith("delta_s_excess_") else k): v
        for k, v in data.items()
    }
    assert "delta_s_adjusted_p95" in old
    assert decode(orjson.dumps(old), WindowSummary) == new


def test_a_window_state_written_before_the_rename_restores_its_open_windows() -> None:
    """A comparator taking a partition over reads the state its predecessor wrote with the old
    names: the open window rebuilds the same accumulator."""
    acc = Accumulator(0, 60_000, ("b", None, None))
    for c in _comparisons(60, 2):
        acc.add(c)
    summary = acc.summary()
    state = WindowState(group="g", partition=0, written_ms=1, open_windows=(summary,))
    data = orjson.loads(encode(state))
    data["open_windows"] = [
        {k.replace("delta_s_excess_", "delta_s_adjusted_"): v for k, v in w.items()}
        for w in data["open_windows"]
    ]
    assert "delta_s_adjusted_median" in data["open_windows"][0]
    restored = decode(orjson.dumps(data), WindowState)
    assert restored == state
    assert Accumulator.of_summary(restored.open_windows[0]).summary() == summary
