"""The console script's settings: ``--config FILE`` and the environment, and what a mistake in them
does (exit 3, one line per problem, no traceback unless ``--debug``). Runs the installed script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("shadowlane")


def _run(*argv: str, home: Path | None, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(("SHADOWLANE_", "KAFKA_"))}
    if home is not None:
        clean["SHADOWLANE_HOME"] = str(home)
    return subprocess.run(
        [str(SCRIPT), *argv],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bad_config_file_is_one_line_and_exit_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("shadow:\n  rate_capp: 5\n")
    done = _run("--config", str(bad), "topics", home=tmp_path)
    assert done.returncode == 3
    why = "shadow.rate_capp: unknown setting; did you mean shadow.rate_cap?"
    assert done.stderr.splitlines() == [f"shadowlane topics: config file {bad}: {why}"]
    assert done.stdout == ""


def test_a_misspelt_variable_is_one_line_and_exit_3(tmp_path: Path) -> None:
    done = _run("topics", home=tmp_path, SHADOWLANE_RATE_CAP="5")
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        "shadowlane topics: SHADOWLANE_RATE_CAP: unknown setting; did you mean SHADOWLANE_SHADOW__RATE_CAP?"
    ]


def test_every_problem_is_a_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[hook]\nsample_ratio = 2\n")
    done = _run("--config", str(bad), "tail", "requests", home=tmp_path, SHADOWLANE_SHADOW__RATE_CAP="x")
    assert done.returncode == 3
    assert sorted(done.stderr.splitlines()) == [
        f"shadowlane tail: hook.sample_ratio: must be ≤ 1 (got 2); set in config file {bad}",
        "shadowlane tail: shadow.rate_cap: must be a number (got 'x'); set by SHADOWLANE_SHADOW__RATE_CAP",
    ]
    debug = _run("--debug", "--config", str(bad), "tail", "requests", home=tmp_path)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ConfigError: hook.sample_ratio: must be ≤ 1 (got 2)" in debug.stderr


def test_the_config_file_reaches_the_command_under_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "shadowlane.toml"
    config.write_text(f'state_dir = "{tmp_path / "from-file"}"\n')
    via_option = _run("--config", str(config), "kafka", "status", home=None)
    via_variable = _run("kafka", "status", home=None, SHADOWLANE_CONFIG=str(config))
    for done in (via_option, via_variable):
        assert done.returncode == 0, done.stderr
        assert f'"data_dir": "{tmp_path / "from-file"}/' in done.stdout
    overridden = _run("--config", str(config), "kafka", "status", home=tmp_path / "from-env")
    assert f'"data_dir": "{tmp_path / "from-env"}/' in overridden.stdout  # the environment wins
