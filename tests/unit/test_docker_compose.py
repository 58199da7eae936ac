"""docker-compose.yml: valid for Compose itself, its defaults can never replay into prod, and every
long-running Shadowlane container has a healthcheck on the port it serves."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shadowlane import health_probe
from tests.support.operator_tools import operator_tool

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
DEFAULTED = re.compile(r"\$\{(\w+):?-([^}]*)\}")
ONE_SHOT = ("topics", "tail")


def services() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return loaded


def with_defaults(value: object) -> str:
    """``value`` as Compose reads it with no variable set: ``${X:-d}`` is ``d``."""
    return DEFAULTED.sub(lambda m: m.group(2), str(value))


def command(service: str) -> list[str]:
    return [with_defaults(part) for part in services()[service].get("command", [])]


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None, url
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def prod_targets() -> set[tuple[str, int]]:
    """The (host, port) Prometheus scrapes as the prod service."""
    out: set[tuple[str, int]] = set()
    for job in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]:
        for static in job.get("static_configs", []):
            if static.get("labels", {}).get("service") == "prod":
                for target in static["targets"]:
                    host, _, port = target.rpartition(":")
                    out.add((host, int(port)))
    return out


def replay_urls() -> dict[str, str]:
    """Every shadow worker's ``--url`` as Compose starts it with no variable set."""
    out: dict[str, str] = {}
    for name in services():
        argv = command(name)
        if argv[:1] == ["shadow"] and "--url" in argv:
            out[name] = argv[argv.index("--url") + 1]
    return out


def test_no_default_replays_into_the_prod_service() -> None:
    prod = prod_targets()
    assert prod, "prometheus.yml labels no target service=prod"
    urls = replay_urls()
    assert set(urls) >= {"shadow", "baseline"}
    for service, url in urls.items():
        assert host_port(url) not in prod, f"{service} replays to {url}: the prod service (a loop)"
    # the candidate is not the baseline's model either: a shadow that compares prod with itself
    assert host_port(urls["shadow"]) != host_port(urls["baseline"])


def test_no_variable_default_anywhere_is_the_prod_service() -> None:
    prod = prod_targets()
    for match in DEFAULTED.finditer(COMPOSE.read_text()):
        default = match.group(2)
        if "://" in default:
            assert host_port(default) not in prod, f"${{{match.group(1)}}} defaults to prod ({default})"


def served_port(argv: list[str]) -> str | None:
    """The port a Shadowlane container serves /healthz on, from its command line."""
    for flag in ("--metrics-port", "--serve"):
        if flag in argv:
            return argv[argv.index(flag) + 1]
    return None


def test_every_long_running_container_has_a_healthcheck_on_the_port_it_serves() -> None:
    checked = 0
    for name, service in services().items():
        if service.get("image") != "shadowlane:dev":
            continue
        check = service.get("healthcheck", {})
        if name in ONE_SHOT:
            assert check.get("disable") is True, f"{name} runs once: its healthcheck is disabled"
            continue
        port = served_port(command(name))
        assert port is not None, f"{name} serves no /healthz: give it --metrics-port"
        test = check["test"]
        assert test[:4] == ["CMD", "python", "-m", "shadowlane.health_probe"], name
        assert test[test.index("--port") + 1] == port, name
        assert int(port) == health_probe.DEFAULT_PORT  # the image's own HEALTHCHECK port
        argv = command(name)
        if "--metrics-host" in argv:
            assert argv[argv.index("--metrics-host") + 1] == "0.0.0.0"  # Prometheus scrapes from outside
        checked += 1
    assert checked >= 4  # shadow, baseline, compare, lag


def test_the_lag_exporter_runs_from_the_same_image() -> None:
    assert command("lag")[:2] == ["lag", "--serve"]
    assert command("lag")[command("lag").index("--host") + 1] == "0.0.0.0"


def compose_cli() -> list[str] | None:
    """``docker-compose`` (built into .venv/bin by ``make tools``, or on PATH), else the Docker CLI's
    compose plugin, else None."""
    standalone = operator_tool("docker-compose")
    if standalone is not None:
        return [standalone]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def test_compose_itself_accepts_the_file() -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither docker-compose (make tools) nor the docker compose plugin is installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOW_", "PROD_"))}  # the defaults
    result = subprocess.run(
        [*cli, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
