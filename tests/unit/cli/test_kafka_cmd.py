"""shadowlane/cli/kafka_cmd.py without a broker: every action answers ``--help``; ``--secure``,
``--brokers``, ``--timeout`` and ``--principal`` act on what their help says, shown on stand-in
broker processes (a sleeping process whose argv is a broker's on the data folder) and on folders
that no Maven or Java ever fills."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shadowlane.cli.main import main
from shadowlane.kafka import procs
from shadowlane.kafka.secure import Secrets


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder of our own, no configured cluster, and no Maven or Java on PATH (nothing
    installs or starts)."""
    for name in list(os.environ):
        if name.startswith(("SHADOWLANE_", "KAFKA_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SHADOWLANE_HOME", str(tmp_path / "state"))
    tools = tmp_path / "bin"
    tools.mkdir()
    openssl = shutil.which("openssl")  # the secured broker's CA is made with it
    if openssl:
        (tools / "openssl").symlink_to(openssl)
    monkeypatch.setenv("PATH", str(tools))
    return tmp_path / "state"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def broker_decoy(home: Path, folder: str = "kafka", *, deaf: bool = False) -> Iterator[int]:
    """A process the CLI takes for the broker recorded under ``home/folder`` (it answers nothing;
    ``deaf``: it ignores SIGTERM too). Yields its pid."""
    kafka_dir = (home / folder).resolve()
    code = (
        "import signal, time\n"
        + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if deaf else "")
        + "print('ready', flush=True)\ntime.sleep(120)\n"
    )
    argv = [sys.executable, "-c", code, procs.KAFKA_MAIN, f"{kafka_dir / 'data'}/server.properties"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    kafka_dir.mkdir(parents=True, exist_ok=True)
    if folder == "kafka-secure":
        Secrets(kafka_dir / "secrets").ensure()  # made by the secured broker's first start
    record = {"pid": proc.pid, "bootstrap": f"127.0.0.1:{_closed_port()}"}
    (kafka_dir / "broker.json").write_text(json.dumps(record))
    try:
        yield proc.pid
    finally:
        if procs.pid_alive(proc.pid):
            proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("action", ["install", "start", "stop", "status", "env", "acls"])
def test_every_action_answers_help(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["kafka", action, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: shadowlane kafka {action}")
    if action in ("start", "stop", "status", "acls", "env"):
        assert "--secure" in out


def test_env_needs_the_secured_broker_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHADOWLANE_HOME", str(tmp_path))
    assert main(["kafka", "env", "--secure", "--principal", "hook"]) == 3  # operational
    assert "shadowlane kafka start --secure" in capsys.readouterr().err
    assert not (tmp_path / "kafka").exists()  # the plain broker's folder is not touched


def test_env_prints_the_settings_of_the_principal_asked_for(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with broker_decoy(home, "kafka-secure"):
        assert main(["kafka", "env", "--secure", "--principal", "hook"]) == 0
        out = capsys.readouterr().out
        assert "export SHADOWLANE_KAFKA__SASL_USERNAME=hook\n" in out
        assert "export SHADOWLANE_KAFKA__SECURITY_PROTOCOL=SASL_SSL\n" in out
        users = json.loads((home / "kafka-secure" / "secrets" / "users.json").read_text())
        assert f"export SHADOWLANE_KAFKA__SASL_PASSWORD={users['hook']}\n" in out
        assert main(["kafka", "env", "--secure"]) == 0  # the default principal: the administrator
        assert "export SHADOWLANE_KAFKA__SASL_USERNAME=admin\n" in capsys.readouterr().out


def test_start_secure_works_in_the_secured_brokers_folder(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kafka", "start", "--secure"]) == 3  # gets as far as fetching the jars: no Maven here
    assert "Maven" in capsys.readouterr().err
    assert (home / "kafka-secure").is_dir()
    assert not (home / "kafka").exists()


def test_start_brokers_starts_a_cluster_not_the_single_broker(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kafka", "start", "--brokers", "2"]) == 3
    assert "Maven" in capsys.readouterr().err
    assert (home / "kafka-cluster").is_dir()
    assert main(["kafka", "start"]) == 3
    assert not (home / "kafka" / "broker.json").exists()


def test_start_timeout_bounds_the_wait_for_a_broker_that_does_not_answer(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with broker_decoy(home) as pid:
        began = time.monotonic()
        assert main(["kafka", "start", "--timeout", "1"]) == 3  # then replaced; no Maven to install one
        took = time.monotonic() - began
        assert not procs.pid_alive(pid)  # alive but deaf: stopped, as start's help promises a fresh one
    assert took < 20  # the default, 90 s, would have kept it waiting
    assert "Maven" in capsys.readouterr().err


def test_stop_timeout_is_the_grace_before_sigkill(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with broker_decoy(home, deaf=True) as pid:
        began = time.monotonic()
        assert main(["kafka", "stop", "--timeout", "1"]) == 0
        took = time.monotonic() - began
        assert not procs.pid_alive(pid)
    assert 1.0 <= took < 15  # SIGTERM ignored for the 1 s asked for, then SIGKILL (default: 30 s)
    assert capsys.readouterr().err.strip() == "stopped"


def test_stop_secure_and_stop_brokers_leave_the_single_broker_alone(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with broker_decoy(home) as plain, broker_decoy(home, "kafka-secure") as secured:
        assert main(["kafka", "stop", "--brokers", "3"]) == 0
        assert capsys.readouterr().err.strip() == "not running"  # no cluster was ever started
        assert main(["kafka", "stop", "--secure"]) == 0
        assert capsys.readouterr().err.strip() == "stopped"
        assert not procs.pid_alive(secured)
        assert procs.pid_alive(plain)


def test_status_secure_reports_the_secured_broker(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with broker_decoy(home, "kafka-secure") as pid:
        assert main(["kafka", "status", "--secure"]) == 0
        secured = json.loads(capsys.readouterr().out)
        assert main(["kafka", "status"]) == 0
        plain = json.loads(capsys.readouterr().out)
    assert (secured["secure"], secured["running"], secured["pid"]) == (True, True, pid)
    assert secured["data_dir"] == str((home / "kafka-secure" / "data").resolve())
    assert (plain["secure"], plain["running"]) == (False, False)
