"""shadowlane/cli/kafka_cmd.py: every ``shadowlane kafka`` action answers ``--help``; ``--secure``
is offered where it applies; ``env --secure`` without a running secured broker says how to start it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowlane.cli.main import main


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
