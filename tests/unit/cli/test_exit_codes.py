"""Exit codes have one meaning each: usage 64, operational 3, and 0/1/2 only for answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowlane.cli import exit_codes
from shadowlane.cli.main import build_parser, main
from shadowlane.rollout.gates import EXIT_CODES


def test_the_codes_are_distinct_and_the_gate_answers_use_only_0_1_2() -> None:
    codes = [exit_codes.OK, exit_codes.NO, exit_codes.UNDECIDED, exit_codes.OPERATIONAL, exit_codes.USAGE]
    assert len(set(codes)) == len(codes)
    assert EXIT_CODES == {"PASS": exit_codes.OK, "FAIL": exit_codes.NO, "INCONCLUSIVE": exit_codes.UNDECIDED}


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["gate", "--flag", "f"],  # --manifest missing
        ["tail", "requests", "--max", "many"],
        ["rescore", "--from", "yesterday-ish", "--to", "now"],  # not a time
    ],
)
def test_a_wrong_command_line_exits_64_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == exit_codes.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err
    assert "Traceback" not in "\n".join(err)


def test_an_unreadable_manifest_is_operational_not_inconclusive(tmp_path: Path) -> None:
    manifest = tmp_path / "flags.yml"
    manifest.write_text("flags: [not, a, mapping]\n")
    assert main(["gate", "--manifest", str(manifest), "--flag", "f", "--no-audit"]) == exit_codes.OPERATIONAL


def test_the_root_help_lists_the_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--help"])
    assert exc.value.code == 0
    assert "3 operational error, 64 usage" in " ".join(capsys.readouterr().out.split())
