"""shadowlane/cli/simulate_cmd.py: each flag changes the simulation as its help says; progress is
drawn on a terminal (a pseudo-terminal here) and never with ``--json`` or when stderr is not one,
so stdout stays exactly the result."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from typing import Any

import orjson
import pytest

from shadowlane.cli.main import main
from shadowlane.rollout import simulate
from shadowlane.rollout.synthetic import scenarios

SMALL = ["simulate-gates", "--experiments", "4", "--requests", "120", "--looks", "2"]


def _json(capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, Any]:
    main(["simulate-gates", *flags, "--json"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object, one line
    result: dict[str, Any] = orjson.loads(out)
    return result


def test_experiments_requests_looks_and_seed_shape_the_simulation(capsys: pytest.CaptureFixture[str]) -> None:
    got = _json(capsys, "--experiments", "4", "--requests", "120", "--looks", "2", "--seed", "7")
    assert (got["experiments"], got["requests"], got["looks"], got["seed"]) == (4, 120, [60, 120], 7)
    assert len(got["rows"]) == len(scenarios())  # the default variant only
    for row in got["rows"]:  # 4 experiments each: rates in quarters that add up
        rates = (row["fail_rate"], row["pass_rate"], row["inconclusive_rate"])
        assert all(round(r * 4, 3).is_integer() for r in rates)
        assert sum(rates) == pytest.approx(1.0)
    bigger = ["--experiments", "10", "--requests", "400", "--looks", "2"]
    seven = _json(capsys, "--seed", "7", *bigger)
    assert _json(capsys, "--seed", "7", *bigger)["rows"] == seven["rows"]  # seeded: the same table
    assert _json(capsys, "--seed", "8", *bigger)["rows"] != seven["rows"]


def test_compare_adds_the_other_variants_and_exact_changes_the_levels(
    capsys: pytest.CaptureFixture[str],
) -> None:
    compared = _json(capsys, *SMALL[1:], "--compare")
    assert len(compared["rows"]) == len(scenarios()) * len(simulate.ALL_VARIANTS)
    assert "union bound" in compared["spending"]
    assert "exact group-sequential levels" in _json(capsys, *SMALL[1:], "--exact")["spending"]


def test_without_json_it_prints_the_table_and_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(SMALL)
    out = capsys.readouterr().out
    assert out.startswith("| scenario | definition |")
    assert out.rstrip().splitlines()[-1].startswith("targets (default variant): ")
    assert code in (0, 1)
    assert ("all met" in out) == (code == 0)


def test_impossible_sizes_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate-gates", "--requests", "3", "--looks", "5"])
    assert exc.value.code == 64
    assert "--requests ≥ --looks" in capsys.readouterr().err


def _run(*extra: str, tty: bool) -> tuple[str, str]:
    """(stdout, stderr) of ``shadowlane simulate-gates``, its stderr a pseudo-terminal or a pipe."""
    argv = [sys.executable, "-m", "shadowlane.cli.main", *SMALL, "--experiments", "10", *extra]
    if not tty:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        return done.stdout, done.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's last writer has gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    out, _ = proc.communicate(timeout=120)
    return out.decode(), seen.decode(errors="replace")


def test_progress_is_drawn_on_a_terminal_only_and_never_with_json() -> None:
    out, terminal = _run(tty=True)
    assert f"simulating {len(scenarios())} scenarios" in terminal
    assert f"{10 * len(scenarios())}/{10 * len(scenarios())}" in terminal  # the bar reached its end
    assert "experiments/s" in terminal
    assert out.startswith("| scenario |")  # the result is on stdout, untouched
    out, terminal = _run("--json", tty=True)
    assert "simulating" not in terminal
    assert orjson.loads(out)["experiments"] == 10
    out, piped = _run(tty=False)
    assert piped == ""  # not a terminal: not a byte of progress
    assert out.startswith("| scenario |")
