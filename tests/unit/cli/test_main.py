"""The console script's own rules: relative times after an option read as values; ``--version``
and ``--verbose``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shadowlane import __version__
from shadowlane.cli.main import build_parser, joined_negative_values, main
from shadowlane.cli.times import parse_time


def test_a_relative_time_after_a_long_option_is_its_value() -> None:
    argv = ["rescore", "--from", "-15m", "--to", "now"]
    assert joined_negative_values(argv) == ["rescore", "--from=-15m", "--to", "now"]
    assert joined_negative_values(["report", "--from", "-1.5d", "--to", "-30s"]) == [
        "report",
        "--from=-1.5d",
        "--to=-30s",
    ]
    # only relative times: options and values that are not are left to argparse
    assert joined_negative_values(["-v", "tail", "--max", "-1"]) == ["-v", "tail", "--max", "-1"]
    assert joined_negative_values(["gate", "--from=-2h"]) == ["gate", "--from=-2h"]


@pytest.mark.parametrize("command", ["rescore", "report", "gate"])
def test_every_command_with_a_time_range_reads_the_form_its_help_shows(command: str) -> None:
    required = {"report": ["--out", "x"], "gate": ["--manifest", "m.yml", "--flag", "f"]}.get(command, [])
    argv = [command, "--from", "-15m", "--to", "now", *required]
    args = build_parser().parse_args(joined_negative_values(argv))
    assert args.start == "-15m"
    assert parse_time(args.start, now_ms=1_000_000) == 1_000_000 - 15 * 60_000
    with pytest.raises(SystemExit):  # what argparse alone does with it
        build_parser().parse_args(argv)


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"shadowlane {__version__}"


def _run(*argv: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``shadowlane ARGV`` in a process of its own (logging is configured once per process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOWLANE_", "KAFKA_"))}
    env["SHADOWLANE_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "shadowlane.cli.main", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_verbose_turns_on_debug_logging(tmp_path: Path) -> None:
    # rescore with no broker configured: it gets as far as its event loop, then stops (exit 3)
    quiet = _run("rescore", "--from", "-1m", home=tmp_path)
    loud = _run("--verbose", "rescore", "--from", "-1m", home=tmp_path)
    assert quiet.returncode == loud.returncode == 3
    assert "DEBUG" not in quiet.stderr
    assert re.search(r"^\S+ \S+ DEBUG asyncio: Using selector", loud.stderr, re.MULTILINE)
    assert "no Kafka bootstrap servers configured" in loud.stderr
