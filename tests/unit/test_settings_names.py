"""settings_names: which environment variables and config-file keys are settings, and the closest
real names for one that is not. Every SHADOWLANE_* name the repository sets or documents is one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from shadowlane.settings import Settings
from shadowlane.settings_names import (
    env_name,
    env_resolution,
    explain_unknown,
    leaves,
    resolve,
    unknown_variables,
)

ROOT = Path(__file__).resolve().parents[2]
WHERE = ("src", "tests", "docs", "deploy", "workers", "README.md", "docker-compose.yml", "Makefile", ".ci")
SKIP_DIRS = {".venv", ".git", "build", "target", "node_modules", "__pycache__", ".mypy_cache"}
NOT_SETTINGS_ON_PURPOSE = {
    Path("tests/unit/test_settings.py"),  # misspelt on purpose
    Path("tests/unit/test_settings_names.py"),
}
DOCUMENTED_MISTAKE = "SHADOWLANE_RATE_CAP"  # docs/configuration.md shows the error it gets
NAME = re.compile(r"\b(?:SHADOWLANE_[A-Za-z0-9_]*[A-Za-z0-9]|KAFKA_BOOTSTRAP_SERVERS)\b")


def _files() -> list[Path]:
    found: list[Path] = []
    for where in WHERE:
        path = ROOT / where
        candidates = [path] if path.is_file() else path.rglob("*")
        for file in candidates:
            rel = file.relative_to(ROOT)
            if file.is_file() and not SKIP_DIRS & set(rel.parts) and rel not in NOT_SETTINGS_ON_PURPOSE:
                found.append(file)
    return found


def test_every_name_the_repository_uses_is_a_setting() -> None:
    used: dict[str, Path] = {}
    for file in _files():
        try:
            text = file.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for name in NAME.findall(text):
            used.setdefault(name, file.relative_to(ROOT))
    used.pop(DOCUMENTED_MISTAKE, None)
    assert len(used) > 40  # the search finds them: docs, runbooks, deploy, tests
    assert unknown_variables(Settings, dict.fromkeys(used, "x")) == []


def test_every_setting_is_reached_by_its_variable_and_its_key() -> None:
    paths = [path for path, _ in leaves(Settings)]
    assert ("shadow", "rate_cap") in paths
    assert ("compare", "prices") in paths
    for path in paths:
        by_env = env_resolution(Settings, env_name(Settings, path))
        assert by_env is not None, path
        assert (by_env.ok, by_env.path) == (True, path)
        assert resolve(Settings, path, "file").ok, path


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("SHADOWLANE_HOME", True),
        ("SHADOWLANE_STATE_DIR", True),
        ("KAFKA_BOOTSTRAP_SERVERS", True),
        ("SHADOWLANE_BOOTSTRAP_SERVERS", True),
        ("SHADOWLANE_CONFIG", True),
        ("shadowlane_shadow__rate_cap", True),  # the environment's names are not case-sensitive
        ("SHADOWLANE_SHADOW", True),  # a whole section, as JSON
        ("SHADOWLANE_SHADOW__PINS__MODEL_REV", True),  # one entry of a map
        ("SHADOWLANE_COMPARE__PRICES__GPT__INPUT_PER_MTOK", True),  # a field of a map's entry
        ("SHADOWLANE_CONFIG_FILE", False),  # an aliased field is reached by its alias only
        ("SHADOWLANE_SHADOW__RATE_CAP__X", False),  # nothing is below a plain value
        ("SHADOWLANE_COMPARE__PRICES__GPT__CACHED", False),
        ("SHADOWLANE_SHADOW__", False),
    ],
)
def test_which_variables_are_settings(name: str, ok: bool) -> None:
    found = env_resolution(Settings, name)
    assert found is not None
    assert found.ok is ok


def test_variables_that_are_not_ours_are_left_alone() -> None:
    assert env_resolution(Settings, "SHADOWLANE_TEST_KEEP_BROKER") is None
    assert env_resolution(Settings, "HOME") is None
    assert env_resolution(Settings, "STATE_DIR") is None


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("SHADOWLANE_RATE_CAP", "did you mean SHADOWLANE_SHADOW__RATE_CAP?"),  # the section forgotten
        ("SHADOWLANE_HOOK__RATE_CAP", "did you mean SHADOWLANE_SHADOW__RATE_CAP?"),  # the wrong section
        ("SHADOWLANE_KAFKA__PREFIX", "did you mean SHADOWLANE_TOPICS__PREFIX?"),
        (
            "SHADOWLANE_DRAIN_TIMEOUT_S",
            "did you mean SHADOWLANE_SHADOW__DRAIN_TIMEOUT_S or SHADOWLANE_COMPARE__DRAIN_TIMEOUT_S?",
        ),
        ("SHADOWLANE_SHADOW_RATE_CAP", "did you mean SHADOWLANE_SHADOW__RATE_CAP?"),  # _ for __
        ("SHADOWLANE_COMPARE__DRAIN_TIMEOUT", "did you mean SHADOWLANE_COMPARE__DRAIN_TIMEOUT_S"),
        ("SHADOWLANE_CONTROL__SIGNING_KEY", "did you mean SHADOWLANE_CONTROL__SIGNING_KEYS?"),
        ("SHADOWLANE_BOOTSTRAP", "did you mean SHADOWLANE_BOOTSTRAP_SERVERS?"),
        ("SHADOWLANE_CONFIG_FILE", "did you mean SHADOWLANE_CONFIG?"),
        (
            "SHADOWLANE_COMPARE__PRICES__GPT__INPUT",
            "did you mean SHADOWLANE_COMPARE__PRICES__GPT__INPUT_PER_MTOK?",
        ),
        ("SHADOWLANE_XYZZY", "(docs/settings-reference.md lists every one)"),  # nothing alike: no guess
        ("SHADOWLANE_HOOK__ZZZ", "(SHADOWLANE_HOOK takes sample_ratio, salt, queue_size,"),
    ],
)
def test_an_unknown_variable_gets_the_closest_names(name: str, hint: str) -> None:
    found = env_resolution(Settings, name)
    assert found is not None
    assert not found.ok
    assert hint in explain_unknown(Settings, found, "env")


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        (("rate_cap",), "did you mean shadow.rate_cap?"),
        (("shadw",), "did you mean shadow?"),
        (("shadow", "rate_capp"), "did you mean shadow.rate_cap?"),
        (("home",), "(docs/settings-reference.md lists every one)"),
    ],
)
def test_an_unknown_key_gets_the_closest_keys(path: tuple[str, ...], hint: str) -> None:
    found = resolve(Settings, path, "file")
    assert not found.ok
    assert hint in explain_unknown(Settings, found, "file")


STRIMZI_AND_OWN_SERVICES = [
    # a Service named shadowlane (its ports named, one of them "metrics")
    "SHADOWLANE_SERVICE_HOST",
    "SHADOWLANE_SERVICE_PORT",
    "SHADOWLANE_SERVICE_PORT_METRICS",
    "SHADOWLANE_PORT",
    "SHADOWLANE_PORT_9108_TCP",
    "SHADOWLANE_PORT_9108_TCP_PROTO",
    "SHADOWLANE_PORT_9108_TCP_PORT",
    "SHADOWLANE_PORT_9108_TCP_ADDR",
    # a Strimzi cluster named shadowlane: shadowlane-kafka-bootstrap
    "SHADOWLANE_KAFKA_BOOTSTRAP_SERVICE_HOST",
    "SHADOWLANE_KAFKA_BOOTSTRAP_SERVICE_PORT_TCP_CLIENTS",
    "SHADOWLANE_KAFKA_BOOTSTRAP_PORT_9092_TCP_PROTO",
    "SHADOWLANE_KAFKA_BOOTSTRAP_PORT_9092_UDP",
    "SHADOWLANE_KAFKA_BOOTSTRAP_PORT_9092_SCTP_ADDR",
    # the chart's own metrics Service of a release named shadowlane
    "SHADOWLANE_COMPARE_METRICS_SERVICE_HOST",
]


@pytest.mark.parametrize("name", STRIMZI_AND_OWN_SERVICES)
def test_kubernetes_service_links_are_not_settings(name: str) -> None:
    """Kubernetes gives every container <SERVICE>_SERVICE_HOST, <SERVICE>_PORT… for each Service
    in the namespace: a Service named shadowlane… is no reason to refuse to start."""
    assert env_resolution(Settings, name) is None
    assert unknown_variables(Settings, {name: "tcp://10.0.0.7:9092"}) == []


@pytest.mark.parametrize(
    "name",
    [
        "SHADOWLANE_SERVICE_HOSTS",
        "SHADOWLANE_SERVICE_PORT_",
        "SHADOWLANE_PORT_9092",  # no protocol
        "SHADOWLANE_PORT_9092_HTTP",
        "SHADOWLANE_PORT_HTTP_TCP",
        "SHADOWLANE_PORT_9092_TCP_HOST",
        "SHADOWLANE_PORT_9092_TCP_ADDR_X",
        "SHADOWLANE_SHADOW__X_SERVICE_HOST",  # a section's variable: a Service name has no "__"
        "shadowlane_service_host",  # Kubernetes' names are upper case
    ],
)
def test_names_only_like_a_service_link_are_unknown_settings(name: str) -> None:
    found = env_resolution(Settings, name)
    assert found is not None
    assert not found.ok
    assert len(unknown_variables(Settings, {name: "x"})) == 1


def test_a_setting_shaped_like_a_service_link_is_still_a_setting() -> None:
    class WithPort(BaseModel):
        metrics_port: int = 0

    found = env_resolution(WithPort, "SHADOWLANE_METRICS_PORT")
    assert found is not None
    assert (found.ok, found.path) == (True, ("metrics_port",))


def test_a_typo_among_service_links_still_gets_the_closest_name() -> None:
    environ = dict.fromkeys(STRIMZI_AND_OWN_SERVICES, "tcp://10.0.0.7:9092") | {"SHADOWLANE_RATE_CAP": "5"}
    assert unknown_variables(Settings, environ) == [
        "SHADOWLANE_RATE_CAP: unknown setting; did you mean SHADOWLANE_SHADOW__RATE_CAP?"
    ]
