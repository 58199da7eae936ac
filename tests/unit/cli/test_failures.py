"""An operational failure is one line with its cause and a hint; a bug keeps its traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from shadowlane.cli.exit_codes import OPERATIONAL
from shadowlane.cli.failures import explain
from shadowlane.cli.main import main


@pytest.mark.parametrize(
    ("exc", "hint"),
    [
        (KafkaConnectionError("Unable to bootstrap"), "shadowlane kafka start"),
        (SaslAuthenticationFailed("bad password"), "SASL_PASSWORD"),
        (TopicAuthorizationFailedError("requests"), "shadowlane kafka acls"),
        (UnknownTopicOrPartitionError("requests"), "shadowlane topics"),
        (FileNotFoundError(2, "No such file", "flags.yml"), "flags.yml"),
    ],
)
def test_what_an_operator_can_fix_is_one_line_naming_the_fix(exc: BaseException, hint: str) -> None:
    line = explain(exc)
    assert line is not None
    assert hint in line
    assert "\n" not in line


def test_a_bug_is_not_explained_away() -> None:
    assert explain(ValueError("oops")) is None


@pytest.fixture
def dead_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens on port 1
    monkeypatch.setenv("SHADOWLANE_HOME", str(tmp_path))


@pytest.mark.usefixtures("dead_broker")
def test_an_unreachable_broker_exits_3_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tail", "requests", "--idle-exit", "1"]) == OPERATIONAL
    err = capsys.readouterr().err.strip()
    assert err.startswith("shadowlane tail: cannot reach the Kafka broker")
    assert "\n" not in err


@pytest.mark.usefixtures("dead_broker")
def test_debug_shows_the_traceback() -> None:
    with pytest.raises(KafkaConnectionError):
        main(["--debug", "tail", "requests", "--idle-exit", "1"])
