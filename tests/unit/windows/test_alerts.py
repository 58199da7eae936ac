"""Drift alerts from closed windows: thresholds are strict, small windows never alert, ids are stable."""

from __future__ import annotations

from typing import Any

import pytest

from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.drift_alert import DriftAlert
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.settings import CompareSettings
from shadowlane.windows.accumulator import Accumulator
from shadowlane.windows.alerts import drift_alerts

KEY = ("cand", "/v1/chat/completions", "t1")
DEFAULTS = CompareSettings()


def _comp(i: int, **fields: Any) -> Comparison:
    return Comparison(
        comparison_id=f"c{i}",
        req_hash=f"{i:032x}",
        candidate=KEY[0],
        ts_ms=0,
        endpoint=KEY[1],
        tenant=KEY[2],
        complete=True,
        outcome="joined",
        shadow_status="ok",
        **fields,
    )


def _window(comps: list[Comparison], *, start: int = 60_000, member: str = "") -> WindowSummary:
    acc = Accumulator(start, start + 60_000, KEY)
    for c in comps:
        acc.add(c)
    return acc.summary(member=member)


def _drift(value: float, n: int, *, start: int = 60_000) -> WindowSummary:
    return _window([_comp(i, delta_s=value) for i in range(n)], start=start)


def _flips(flips: int, paired: int, *, unpaired: int = 0) -> WindowSummary:
    comps = [_comp(i, lambda_state="divergent", lambda_flip=i < flips) for i in range(paired)]
    comps += [_comp(1_000 + i, lambda_state="divergent") for i in range(unpaired)]
    return _window(comps)


def test_mean_delta_s_above_threshold_alerts_once() -> None:
    s = _drift(0.46, 20)
    (alert,) = drift_alerts(s, DEFAULTS)
    assert alert.metric == "delta_s_mean"
    assert alert.value == pytest.approx(0.46)
    assert alert.threshold == 0.45
    assert alert.sample_size == 20
    assert alert.direction == "above"
    assert (alert.summary_id, alert.candidate, alert.endpoint, alert.tenant) == (s.summary_id, *KEY)
    assert (alert.window_start_ms, alert.window_end_ms, alert.ts_ms) == (60_000, 120_000, 120_000)
    assert "cand" in alert.message
    assert decode(encode(alert), DriftAlert) == alert


def test_mean_delta_s_exactly_at_threshold_does_not_alert() -> None:
    s = _drift(0.45, 40)
    assert s.delta_s_mean == pytest.approx(0.45)
    assert drift_alerts(s, DEFAULTS) == []


def test_too_few_delta_s_samples_never_alert() -> None:
    assert drift_alerts(_drift(0.99, DEFAULTS.alert_min_samples - 1), DEFAULTS) == []
    assert len(drift_alerts(_drift(0.99, DEFAULTS.alert_min_samples), DEFAULTS)) == 1


def test_sample_floor_counts_observations_behind_the_metric() -> None:
    comps = [_comp(i, delta_s=0.9) for i in range(19)] + [_comp(100 + i) for i in range(30)]
    s = _window(comps)
    assert s.count == 49
    assert s.delta_s_count == 19
    assert drift_alerts(s, DEFAULTS) == []


def test_lambda_flip_rate_above_threshold_alerts() -> None:
    s = _flips(5, 20)
    assert s.lambda_flip_rate == 0.25
    (alert,) = drift_alerts(s, DEFAULTS)
    assert alert.metric == "lambda_flip_rate"
    assert alert.value == 0.25
    assert alert.threshold == 0.20
    assert alert.sample_size == 20


def test_lambda_flip_rate_at_threshold_or_with_few_pairs_does_not_alert() -> None:
    assert drift_alerts(_flips(4, 20), DEFAULTS) == []  # 0.20 exactly
    assert drift_alerts(_flips(10, 19, unpaired=30), DEFAULTS) == []  # 19 paired < 20


def test_both_metrics_can_alert_on_one_window() -> None:
    comps = [_comp(i, delta_s=0.8, lambda_state="divergent", lambda_flip=i % 2 == 0) for i in range(20)]
    alerts = drift_alerts(_window(comps), DEFAULTS)
    assert sorted(a.metric for a in alerts) == ["delta_s_mean", "lambda_flip_rate"]
    assert len({a.alert_id for a in alerts}) == 2


def test_alert_id_is_deterministic() -> None:
    first = drift_alerts(_drift(0.6, 25), DEFAULTS)
    again = drift_alerts(_drift(0.6, 25), DEFAULTS)
    assert [a.alert_id for a in first] == [a.alert_id for a in again]
    assert first == again
    other_window = drift_alerts(_drift(0.6, 25, start=120_000), DEFAULTS)
    assert other_window[0].alert_id != first[0].alert_id
    other_member = drift_alerts(_window([_comp(i, delta_s=0.6) for i in range(25)], member="m2"), DEFAULTS)
    assert other_member[0].alert_id != first[0].alert_id


def test_thresholds_come_from_settings() -> None:
    strict = CompareSettings(alert_delta_s_mean=0.2, alert_lambda_flip_rate=0.05, alert_min_samples=5)
    s = _drift(0.3, 5)
    assert drift_alerts(s, DEFAULTS) == []
    (alert,) = drift_alerts(s, strict)
    assert (alert.metric, alert.threshold, alert.sample_size) == ("delta_s_mean", 0.2, 5)
    flips = _window([_comp(i, lambda_state="divergent", lambda_flip=i == 0) for i in range(10)])
    (flip,) = drift_alerts(flips, strict)
    assert (flip.metric, flip.value, flip.threshold) == ("lambda_flip_rate", 0.1, 0.05)
    lenient = CompareSettings(alert_delta_s_mean=0.95)
    assert drift_alerts(_drift(0.9, 100), lenient) == []


def test_window_without_data_never_alerts() -> None:
    empty = Accumulator(0, 60_000, KEY).summary()
    assert drift_alerts(empty, CompareSettings(alert_min_samples=1)) == []
