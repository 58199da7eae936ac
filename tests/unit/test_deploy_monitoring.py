"""deploy/prometheus, deploy/grafana and docker-compose.yml: the monitoring stack is wired consistently.

No Docker here: the files are parsed and checked structurally (mounts exist, thresholds match the
runbooks, every ``shadowlane_*`` series is one the workers expose). Each alert's guard, runbook and
promtool unit tests: ``tests/unit/deploy/test_prometheus_rules.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
DATASOURCE = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
PROVIDER = ROOT / "deploy/grafana/provisioning/dashboards/shadowlane.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/shadowlane.json"
METRICS_PORT = "9108"

# the series the comparator, the shadow workers and the publish hook expose (histograms by base name)
KNOWN_METRICS = frozenset(
    {
        "shadowlane_compare_window_delta_s_mean",
        "shadowlane_compare_window_lambda_flip_rate",
        "shadowlane_compare_window_delta_s_samples",
        "shadowlane_compare_window_lambda_flip_samples",
        "shadowlane_compare_drift_alerts_total",
        "shadowlane_compare_delta_s",
        "shadowlane_compare_window_delta_s_excess_median",
        "shadowlane_compare_window_delta_s_excess_p95",
        "shadowlane_compare_window_delta_s_excess_samples",
        "shadowlane_compare_latency_seconds",
        "shadowlane_compare_comparisons_total",
        "shadowlane_compare_shadow_errors_total",
        "shadowlane_compare_late_total",
        "shadowlane_compare_consumed_total",
        "shadowlane_compare_results_total",
        "shadowlane_compare_late_results_total",
        "shadowlane_compare_duplicate_results_total",
        "shadowlane_compare_dead_lettered_total",
        "shadowlane_compare_dlq_blocked_partitions",
        "shadowlane_compare_transactions_total",
        "shadowlane_compare_transactions_aborted_total",
        "shadowlane_shadow_transactions_total",
        "shadowlane_shadow_transactions_aborted_total",
        "shadowlane_shadow_consumed_total",
        "shadowlane_compare_pending_pairs",
        "shadowlane_compare_intake_paused_seconds_total",
        "shadowlane_compare_intake_pauses_total",
        "shadowlane_compare_delta_s_backlog",
        "shadowlane_consumer_lag",
        "shadowlane_consumer_group_lag",  # shadowlane lag --serve (tests/integration/test_lag_cmd.py)
        "shadowlane_consumer_group_members",
        "shadowlane_lag_exporter_last_success_timestamp_seconds",
        "shadowlane_shadow_replayed_total",
        "shadowlane_shadow_candidate_errors_total",
        "shadowlane_shadow_throttled_total",
        "shadowlane_shadow_paused_total",
        "shadowlane_shadow_tools_blocked_total",
        "shadowlane_shadow_dead_lettered_total",
        "shadowlane_shadow_dlq_blocked_partitions",
        "shadowlane_hook_published_total",
        "shadowlane_hook_sampled_out_total",
        "shadowlane_hook_dropped_queue_full_total",
        "shadowlane_hook_dropped_invalid_total",
        "shadowlane_hook_dropped_not_running_total",
        "shadowlane_hook_dropped_too_large_total",
        "shadowlane_hook_dropped_incomplete_total",
        "shadowlane_hook_send_failed_total",
        "shadowlane_hook_sanitized_fields_total",
    }
)
HISTOGRAMS = frozenset(
    {
        "shadowlane_compare_delta_s",
        "shadowlane_compare_latency_seconds",
    }
)
REQUIRED_ALERTS = (
    "ShadowDriftHigh",
    "ShadowLambdaFlips",
    "ShadowP95LatencyUplift",
    "ShadowErrorRate",
    "ShadowTimeoutRate",
    "ComparatorLateResults",
    "ComparatorDeltaSBackpressure",
    "ConsumerLagHigh",
    "HookDroppingEnvelopes",
    "ComparatorDeadLetters",
    "ShadowWorkerDeadLetters",
    "DeadLetterQueueBlocked",
    "TransactionsAborting",
)
REQUIRED_PANELS = (
    "Window ΔS mean per candidate",
    "ΔS p50 / p95 (raw vs excess over the floor)",
    "λ flip rate",
    "Latency p50 / p95 / p99 per arm",
    "Shadow error rate",
    "Candidate errors by class",
    "Consumer lag",
    "Dropped envelopes (hook)",
    "Throughput (comparisons by outcome)",
    "Shadow timeout rate",
    "Late shadow results",
    "Dead-letter rate",
    "Aborted transactions",
)
_NAME = re.compile(r"\bshadowlane_[a-z0-9_]+")
_HIST_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def mounts(service: str) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    out: dict[str, Path] = {}
    for volume in compose()["services"][service].get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            out[target] = (ROOT / source).resolve()
    return out


def rules() -> list[dict[str, Any]]:
    """Alerting and recording rules."""
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def recorded(name: str) -> str:
    return str(next(r for r in rules() if r.get("record") == name)["expr"])


def alert(name: str) -> dict[str, Any]:
    return next(r for r in rules() if r.get("alert") == name)


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def metric_names(expr: str) -> set[str]:
    names = set()
    for name in _NAME.findall(expr):
        base = _HIST_SUFFIX.sub("", name)
        if base != name:
            assert base in HISTOGRAMS, f"{name}: _bucket/_sum/_count of a series that is not a histogram"
        names.add(base)
    return names


def test_compose_mounts_the_monitoring_files_that_exist() -> None:
    prom = mounts("prometheus")
    assert prom["/etc/prometheus/prometheus.yml"] == PROMETHEUS
    assert prom["/etc/prometheus/alerts.yml"] == ALERTS
    graf = mounts("grafana")
    assert graf["/etc/grafana/provisioning"] == DATASOURCE.parents[1]
    assert graf["/var/lib/grafana/dashboards"] == DASHBOARD.parent
    for host in (*prom.values(), *graf.values()):
        assert host.exists(), host
    for path in (PROMETHEUS, ALERTS, DATASOURCE, PROVIDER, DASHBOARD):
        assert path.is_file(), path


def test_compose_services_images_ports_and_anonymous_viewer() -> None:
    services = compose()["services"]
    assert str(services["prometheus"]["image"]).startswith("prom/prometheus")
    assert str(services["grafana"]["image"]).startswith("grafana/grafana")
    assert services["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]
    assert services["grafana"]["ports"] == ["127.0.0.1:3000:3000"]
    env = services["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


@pytest.mark.parametrize(
    ("service", "job_name"), [("shadow", "shadow"), ("baseline", "shadow"), ("compare", "compare")]
)
def test_workers_serve_metrics_on_the_scraped_port(service: str, job_name: str) -> None:
    command = [str(part) for part in compose()["services"][service]["command"]]
    assert command[command.index("--metrics-port") + 1] == METRICS_PORT
    # inside a container /metrics must bind beyond loopback, or Prometheus scrapes nothing
    assert command[command.index("--metrics-host") + 1] == "0.0.0.0"
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS)["scrape_configs"]}
    job = jobs[job_name]
    targets = [t for sc in job.get("static_configs", []) for t in sc["targets"]]
    targets += [f"{name}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for name in sd["names"]]
    assert f"{service}:{METRICS_PORT}" in targets


def test_prometheus_loads_the_mounted_rules_and_scrapes_the_hook() -> None:
    config = load_yaml(PROMETHEUS)
    # relative to the config file: the same file in the container and in a checkout
    assert config["rule_files"] == ["alerts.yml"]
    in_container = {str(PurePosixPath("/etc/prometheus") / f) for f in config["rule_files"]}
    assert in_container <= set(mounts("prometheus"))
    assert [PROMETHEUS.parent / f for f in config["rule_files"]] == [ALERTS]
    hook = next(j for j in config["scrape_configs"] if "host.docker.internal:8000" in str(j))
    assert hook.get("metrics_path", "/metrics") == "/metrics"


def test_the_required_alerts_exist_and_parse() -> None:
    names = [r["alert"] for r in rules() if "alert" in r]
    assert set(REQUIRED_ALERTS) <= set(names)
    for rule in rules():
        assert str(rule["expr"]).strip(), rule
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule


@pytest.mark.parametrize(
    ("name", "metric", "threshold"),
    [
        ("ShadowDriftHigh", "shadowlane_compare_window_delta_s_mean", "> 0.45"),
        ("ShadowLambdaFlips", "shadowlane_compare_window_lambda_flip_rate", "> 0.20"),
        ("ShadowP95LatencyUplift", "shadowlane_compare_latency_seconds_bucket", "> 0.15"),
        ("ShadowErrorRate", "shadowlane_compare_shadow_errors_total", "> 0.005"),
    ],
)
def test_alert_thresholds_match_the_runbooks(name: str, metric: str, threshold: str) -> None:
    expr = str(alert(name)["expr"])
    assert metric in expr
    assert threshold in expr


def test_latency_uplift_compares_shadow_and_prod_p95_over_10m() -> None:
    expr = str(alert("ShadowP95LatencyUplift")["expr"])
    assert expr.count("histogram_quantile(0.95") == 2
    assert 'traffic_arm="shadow"' in expr
    assert 'traffic_arm="prod"' in expr
    assert "[10m]" in expr


def test_hook_drop_alert_watches_every_drop_counter_against_published() -> None:
    expr = str(alert("HookDroppingEnvelopes")["expr"])
    assert "shadowlane:hook_dropped:increase10m" in expr
    assert "shadowlane:hook_published:increase10m" in expr
    drops = {
        m for m in KNOWN_METRICS if m.startswith(("shadowlane_hook_dropped_", "shadowlane_hook_send_failed"))
    }
    assert drops == metric_names(recorded("shadowlane:hook_dropped:increase10m"))
    assert metric_names(recorded("shadowlane:hook_published:increase10m")) == {
        "shadowlane_hook_published_total"
    }


@pytest.mark.parametrize(
    ("name", "numerator", "denominator"),
    [
        (
            "ShadowTimeoutRate",
            'shadowlane_compare_comparisons_total{outcome="shadow_timeout"}',
            "shadowlane_compare_comparisons_total[10m]",
        ),
        (
            "ComparatorLateResults",
            "shadowlane_compare_late_results_total",
            "shadowlane_compare_results_total",
        ),
        (
            "ComparatorDeadLetters",
            "shadowlane_compare_dead_lettered_total",
            "shadowlane_compare_consumed_total",
        ),
        (
            "ShadowWorkerDeadLetters",
            "shadowlane_shadow_dead_lettered_total",
            "shadowlane_shadow_consumed_total",
        ),
    ],
)
def test_rate_alerts_divide_the_right_counters(name: str, numerator: str, denominator: str) -> None:
    top, _, bottom = str(alert(name)["expr"]).partition("/")
    assert numerator in top
    assert denominator in bottom


def test_transaction_alert_reads_aborts_against_attempts_of_both_workers() -> None:
    expr = str(alert("TransactionsAborting")["expr"])
    assert "shadowlane:transactions_aborted:increase10m" in expr
    assert "shadowlane:transactions_committed:increase10m" in expr
    assert metric_names(recorded("shadowlane:transactions_aborted:increase10m")) == {
        "shadowlane_shadow_transactions_aborted_total",
        "shadowlane_compare_transactions_aborted_total",
    }
    assert metric_names(recorded("shadowlane:transactions_committed:increase10m")) == {
        "shadowlane_shadow_transactions_total",
        "shadowlane_compare_transactions_total",
    }


def test_rules_and_dashboard_only_use_exposed_series() -> None:
    used: set[str] = set()
    for expr in [str(r["expr"]) for r in rules()] + dashboard_exprs():
        used |= metric_names(expr)
    assert used - KNOWN_METRICS == set()
    assert len(used) >= 20  # the dashboard and the rules actually cover the series


def test_dashboard_has_the_required_panels_and_unique_ids() -> None:
    all_panels = dashboard()["panels"]
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels()]
    assert set(REQUIRED_PANELS) <= set(titles)
    datasource_uid = load_yaml(DATASOURCE)["datasources"][0]["uid"]
    for panel in panels():
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == datasource_uid
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]


def test_dashboard_quantiles_come_from_histograms() -> None:
    exprs = dashboard_exprs()
    quantiles = [e for e in exprs if "histogram_quantile" in e]
    assert any("shadowlane_compare_delta_s_bucket" in e for e in quantiles)
    assert not any("delta_s_excess_bucket" in e for e in exprs)  # one excess ΔS: the windows'
    assert any("shadowlane_compare_window_delta_s_excess_p95" in e for e in exprs)
    for q in ("0.5", "0.95", "0.99"):
        assert any(f"histogram_quantile({q}" in e and "latency_seconds_bucket" in e for e in quantiles)
    for expr in quantiles:
        assert "_bucket" in expr
        assert "le)" in expr  # aggregated by (..., le)


def test_dashboard_candidate_variable_filters_the_panels() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    candidate = variables["candidate"]
    assert candidate["type"] == "query"
    assert metric_names(candidate["definition"]) <= KNOWN_METRICS
    assert sum('candidate=~"$candidate"' in e for e in dashboard_exprs()) >= 8


def test_grafana_provisioning_points_at_the_mounts() -> None:
    source = load_yaml(DATASOURCE)["datasources"][0]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    provider = load_yaml(PROVIDER)["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert provider["options"]["path"] in mounts("grafana")
