"""The console script's own rules: relative times after an option read as values."""

from __future__ import annotations

import pytest

from shadowlane.cli.main import build_parser, joined_negative_values
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
