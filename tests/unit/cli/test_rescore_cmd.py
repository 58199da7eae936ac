"""shadowlane/cli/rescore_cmd.py without a broker: ``--candidates`` and ``--embedder`` replace the
comparator's settings for the rescore only, a range that ends before it starts is a usage error,
and the summary a person reads says what was read, written and verified, and which embedder
scored ΔS. (Reading Kafka, ``--out``,
``--verify`` and ``--json``: tests/integration/test_cli_commands.py.)"""

from __future__ import annotations

import argparse

import pytest

from shadowlane.cli import rescore_cmd
from shadowlane.cli.main import build_parser, joined_negative_values, main
from shadowlane.settings import CompareSettings, Settings

SETTINGS = Settings(compare=CompareSettings(candidates=("grammar-b", "baseline"), embedder="minilm"))


def _args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(joined_negative_values(["rescore", "--from", "-1h", *extra]))


def test_candidates_and_embedder_override_the_comparators_config() -> None:
    assert rescore_cmd.rescore_settings(_args(), SETTINGS).compare == SETTINGS.compare
    shaped = rescore_cmd.rescore_settings(_args("--candidates", "grammar-c", "--embedder", "none"), SETTINGS)
    assert shaped.compare.candidates == ("grammar-c",)
    assert shaped.compare.embedder == "none"
    assert shaped.compare.window_s == SETTINGS.compare.window_s  # nothing else changes


def test_to_before_from_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["rescore", "--from", "-1h", "--to", "-2h"])
    assert exc.value.code == 64
    assert "--to must be after --from" in capsys.readouterr().err


def test_the_summary_says_what_was_read_written_and_verified() -> None:
    summary = {
        "from_ms": 0, "to_ms": 3_600_000, "records": 12_345, "undecodable": 2, "comparisons": 4_000,
        "summaries": 60, "alerts": 1, "out": "rescored",
        "verify": {"checked": 4_000, "identical": 3_998, "different": 2, "missing_live": 0,
                   "missing_rescored": 0, "examples": ["c-1", "c-2"]},
    }  # fmt: skip
    lines = rescore_cmd.render(summary).splitlines()
    assert lines[0] == "rescored 1970-01-01T00:00:00Z → 1970-01-01T01:00:00Z"
    assert lines[1].split() == ["records", "read", "12,345", "(2", "undecodable)"]
    assert "  written to        rescored/ (comparisons.jsonl, summaries.jsonl, alerts.jsonl)" in lines
    assert lines[-2].startswith("verify: 4,000 checked, 3,998 identical, 2 different")
    assert lines[-2].endswith(": DIFFERENT")
    assert lines[-1] == "  e.g. c-1, c-2"
    del summary["verify"], summary["out"]
    assert rescore_cmd.render(summary).splitlines()[-1].split() == ["drift", "alerts", "1"]
    summary["embedder"] = "static-minilm-l6-v1"
    assert "  ΔS embedder       static-minilm-l6-v1" in rescore_cmd.render(summary).splitlines()
    summary["embedder"] = None
    assert "  ΔS embedder       none (ΔS off)" in rescore_cmd.render(summary).splitlines()
