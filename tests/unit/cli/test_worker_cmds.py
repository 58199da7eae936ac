"""shadowlane/cli/worker_cmds.py: a shadow worker that follows the control topic refuses to start
without a signing key (fail closed, before touching Kafka); running without control is explicit."""

from __future__ import annotations

import pytest

from shadowlane.cli.main import main
from shadowlane.rollout.control_plane import NO_CONTROL_KEYS

ARGS = ["shadow", "--candidate", "cand", "--url", "http://127.0.0.1:9/v1"]


@pytest.fixture(autouse=True)
def _no_keys_no_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in (
        "SHADOWLANE_CONTROL__SIGNING_KEYS",
        "SHADOWLANE_CONTROL__ENABLED",
        "KAFKA_BOOTSTRAP_SERVERS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHADOWLANE_HOME", str(tmp_path))


def test_without_a_signing_key_the_worker_refuses_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(ARGS) == 3  # operational: bad configuration
    err = capsys.readouterr().err.strip()
    assert err == f"shadowlane shadow: {NO_CONTROL_KEYS}"
    assert "\n" not in err  # one line


def test_running_without_control_is_an_explicit_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHADOWLANE_CONTROL__ENABLED", "false")
    assert main(ARGS) == 3  # gets past the control check, then stops: no broker is configured
    err = capsys.readouterr().err
    assert NO_CONTROL_KEYS not in err
    assert "no Kafka bootstrap servers configured" in err
