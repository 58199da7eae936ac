"""deploy/prometheus: every alert is guarded, runbooked and unit-tested; promtool accepts the files.

The pure-Python checks read ``alerts.yml`` and the promtool test files under ``tests/``: every
alert has a minimum-sample guard (``>= alert_min_samples``, the comparator's own floor), a ``for``,
a severity, a summary, a description and a runbook link to its section of
``docs/metrics-and-alerts.md``, and a promtool test where it fires and one where it stays quiet.
The promtool checks run the real binary (``make tools`` builds it into ``.venv/bin``): the config
and the rules load from a checkout, and the rule unit tests pass.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shadowlane.settings import CompareSettings
from tests.support.operator_tools import operator_tool

ROOT = Path(__file__).resolve().parents[3]
PROM_DIR = ROOT / "deploy/prometheus"
CONFIG = PROM_DIR / "prometheus.yml"
ALERTS = PROM_DIR / "alerts.yml"
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))
RUNBOOK = ROOT / "docs/metrics-and-alerts.md"
MIN_SAMPLES = CompareSettings().alert_min_samples
SEVERITIES = ("info", "warning", "critical")
_GUARD = re.compile(r">=\s*(\d+)\b")
_RECORDED = re.compile(r"\bshadowlane:[a-z0-9_:]+")
_COUNT_WINDOW = re.compile(r"count_over_time\([^\[]*\[(\d+[smh])\]\)")
_UNITS = {"s": 1, "m": 60, "h": 3600}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load(ALERTS)["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * _UNITS[duration[-1]]


def _rule_test_cases() -> list[tuple[Path, str, bool]]:
    """(file, alertname, fires) of every alert_rule_test in the promtool test files."""
    cases = []
    for path in RULE_TESTS:
        for group in _load(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.append((path, case["alertname"], bool(case.get("exp_alerts"))))
    return cases


def test_there_are_alerts_and_rule_tests() -> None:
    assert len(_alerts()) >= 13
    assert RULE_TESTS, "no promtool test files under deploy/prometheus/tests"


@pytest.mark.parametrize("rule", _alerts(), ids=lambda r: str(r["alert"]))
def test_every_alert_has_a_guard_a_for_a_severity_and_a_runbook(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    guards = [int(n) for n in _GUARD.findall(str(rule["expr"]))]
    assert MIN_SAMPLES in guards, f"{name}: no `>= {MIN_SAMPLES}` minimum-sample guard"
    assert _seconds(str(rule["for"])) >= 60, f"{name}: `for` under a minute"
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    page, _, anchor = str(annotations["runbook_url"]).partition("#")
    assert (ROOT / page).resolve() == RUNBOOK
    assert anchor == name.lower()
    assert re.search(rf"^#+ {re.escape(name)}$", RUNBOOK.read_text(encoding="utf-8"), re.MULTILINE), (
        f"{RUNBOOK.name} has no section for {name}"
    )


def test_alert_names_are_unique_and_recording_rules_are_read() -> None:
    names = [rule["alert"] for rule in _alerts()]
    assert len(names) == len(set(names))
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    read = {name for rule in _alerts() for name in _RECORDED.findall(str(rule["expr"]))}
    assert read <= recorded, read - recorded
    assert recorded <= read, f"recording rules no alert reads: {recorded - read}"


def test_state_guards_fit_the_scrape_interval() -> None:
    """A state guard counts scrapes (``count_over_time(...[10m]) >= 20``): every job must be
    scraped often enough to reach it, or the alert could never fire."""
    config = _load(CONFIG)
    default = str(config["global"]["scrape_interval"])
    intervals = [_seconds(str(job.get("scrape_interval", default))) for job in config["scrape_configs"]]
    windows = [_seconds(w) for rule in _alerts() for w in _COUNT_WINDOW.findall(str(rule["expr"]))]
    assert windows
    for window in windows:
        assert max(intervals) * MIN_SAMPLES <= window


def test_every_alert_has_a_firing_and_a_quiet_promtool_test() -> None:
    cases = _rule_test_cases()
    names = {rule["alert"] for rule in _alerts()}
    firing = {name for _path, name, fires in cases if fires}
    quiet = {name for _path, name, fires in cases if not fires}
    assert names - firing == set(), "alerts without a firing test"
    assert names - quiet == set(), "alerts without a non-firing test"
    assert {name for _path, name, _fires in cases} <= names, "tests of alerts that do not exist"
    for path in RULE_TESTS:
        assert [(path.parent / f).resolve() for f in _load(path)["rule_files"]] == [ALERTS]


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", str(CONFIG)),
        ("check", "rules", str(ALERTS)),
        ("test", "rules", *map(str, RULE_TESTS)),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool_accepts_the_shipped_files(args: tuple[str, ...]) -> None:
    promtool = operator_tool("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (`make tools` builds it into .venv/bin)")
    # from another directory: no path may depend on where promtool runs
    done = subprocess.run(
        [promtool, *args], cwd=ROOT / "tests", capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
