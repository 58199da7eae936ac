"""Drift alerts: a closed window whose mean ΔS or λ flip rate is above its threshold.

Defaults come from the seed runbooks (mean ΔS > 0.45, λ flip rate > 0.20). A window with fewer
than ``alert_min_samples`` observations behind the metric never alerts: too little data is not
evidence. ``alert_id`` is deterministic, so a re-emitted window re-emits the same alert id.
"""

from __future__ import annotations

from shadowlane.contracts.drift_alert import AlertMetric, DriftAlert
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.hashing import pair_id
from shadowlane.settings import CompareSettings


def _alert(
    s: WindowSummary, metric: AlertMetric, value: float, threshold: float, n: int, what: str
) -> DriftAlert:
    return DriftAlert(
        alert_id=pair_id(s.summary_id, metric),
        summary_id=s.summary_id,
        ts_ms=s.window_end_ms,
        window_start_ms=s.window_start_ms,
        window_end_ms=s.window_end_ms,
        candidate=s.candidate,
        endpoint=s.endpoint,
        tenant=s.tenant,
        metric=metric,
        value=round(value, 6),
        threshold=threshold,
        sample_size=n,
        message=f"{s.candidate}: {what} {value:.3f} > {threshold} over {n} requests "
        f"(window {s.window_start_ms}..{s.window_end_ms}, endpoint {s.endpoint}, tenant {s.tenant})",
    )


def drift_alerts(s: WindowSummary, settings: CompareSettings) -> list[DriftAlert]:
    out: list[DriftAlert] = []
    floor = settings.alert_min_samples
    if (
        s.delta_s_mean is not None
        and s.delta_s_count >= floor
        and s.delta_s_mean > settings.alert_delta_s_mean
    ):
        out.append(
            _alert(s, "delta_s_mean", s.delta_s_mean, settings.alert_delta_s_mean, s.delta_s_count, "mean ΔS")
        )
    rate = s.lambda_flip_rate
    if rate is not None and s.lambda_paired >= floor and rate > settings.alert_lambda_flip_rate:
        out.append(
            _alert(
                s, "lambda_flip_rate", rate, settings.alert_lambda_flip_rate, s.lambda_paired, "λ flip rate"
            )
        )
    return out
