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

SMALL = ["simulate-gates", "--experiments", "4", "--requests", "600", "--look-every", "300"]


def _json(capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, Any]:
    main(["simulate-gates", *flags, "--json"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object, one line
    result: dict[str, Any] = orjson.loads(out)
    return result


def test_experiments_requests_look_every_and_seed_shape_the_simulation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    got = _json(capsys, "--experiments", "4", "--requests", "1000", "--look-every", "400", "--seed", "7")
    shape = (got["experiments"], got["horizon"], got["look_every"], got["looks"], got["seed"])
    assert shape == (4, 1_000, 400, [400, 800, 1_000], 7)  # the last look at the horizon
    assert [(r["scenario"], r["rule"]) for r in got["rows"]] == [
        (s.name, rule.name) for s in scenarios() for rule in simulate.DEFAULT_RULES
    ]
    for row in got["rows"]:  # 4 experiments each: rates in quarters that add up
        wrong = row["false_pass" if row["correct"] == "FAIL" else "false_fail"]
        rates = (row["correct_by_horizon"]["rate"], wrong["rate"], row["inconclusive"]["rate"])
        assert all(round(r * 4, 3).is_integer() for r in rates)
        assert sum(rates) == pytest.approx(1.0)
        assert row["horizon"] == 1_000
        assert row["milestone"] == 1_000  # "by 2,000" is by the horizon when it comes first
    bigger = ["--experiments", "10", "--requests", "800", "--look-every", "400"]
    seven = _json(capsys, "--seed", "7", *bigger)
    assert _json(capsys, "--seed", "7", *bigger)["rows"] == seven["rows"]  # seeded: the same table
    assert _json(capsys, "--seed", "8", *bigger)["rows"] != seven["rows"]


def test_compare_adds_the_ablations_and_exact_changes_the_levels(
    capsys: pytest.CaptureFixture[str],
) -> None:
    compared = _json(capsys, *SMALL[1:], "--compare")
    assert len(compared["rows"]) == len(scenarios()) * len(simulate.ALL_RULES)
    names = [r["name"] for r in compared["rules"]]
    assert names == ["today", "new", *(r.name for r in simulate.ABLATIONS)]
    assert {r["multiplicity"] for r in compared["rules"]} == {"per_gate", "bonferroni"}
    assert "union bound" in compared["rules"][0]["definition"]
    exact = _json(capsys, *SMALL[1:], "--exact")["rules"]
    assert "exact group-sequential levels" in exact[0]["definition"]
    assert "confidence sequence" in exact[1]["definition"]  # the new rule has no spending to make exact


def test_without_json_it_prints_the_tables_and_whether_each_target_is_met(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(SMALL)
    out = capsys.readouterr().out
    assert out.startswith("| scenario | rule | correct | median n |")
    assert "| PASS scenario | today: median n to PASS |" in out
    last = out.rstrip().splitlines()[-3:]
    assert last[0].startswith("error-rate targets (new rule): ")
    assert last[1].startswith("speed-up to a correct PASS on A/A (today / new median requests): ")
    assert last[2].startswith("speed-up to a correct PASS on better ")
    assert all("target ≥ 2×" in line for line in last[1:])
    assert code in (0, 1)
    assert ("all met" in last[0]) == (code == 0)


@pytest.mark.parametrize(
    "flags", [("--requests", "300", "--look-every", "400"), ("--look-every", "0"), ("--experiments", "0")]
)
def test_impossible_sizes_are_a_usage_error(
    flags: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate-gates", *flags])
    assert exc.value.code == 64
    assert "--requests ≥ --look-every" in capsys.readouterr().err


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
