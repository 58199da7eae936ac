"""Every flag of the CLI has a test that proves it does what its help says: the map in
flag_coverage.py covers every flag of the parser (walked, not listed), names only tests that exist,
and each named test's source mentions its flag (an option by its ``--name``, a positional by its
command)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from tests.unit.cli.flag_coverage import FLAGS
from tests.unit.cli.parser_tree import flags

ROOT = Path(__file__).resolve().parents[3]


@cache
def _sources(path: str) -> dict[str, str]:
    """``{test name: its source, decorators included}`` of a test module."""
    text = (ROOT / path).read_text(encoding="utf-8")
    lines = text.splitlines()
    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            out[node.name] = "\n".join(lines[first - 1 : node.end_lineno])
    return out


def test_every_flag_of_the_parser_has_a_test() -> None:
    missing = [flag for flag in flags() if flag not in FLAGS]
    assert not missing, f"flags with no test in tests/unit/cli/flag_coverage.py: {missing}"


def test_the_map_names_only_flags_the_parser_has() -> None:
    stale = sorted(set(FLAGS) - set(flags()))
    assert not stale, f"flag_coverage.py names flags the CLI does not have: {stale}"


@pytest.mark.parametrize(("command", "flag"), sorted(FLAGS), ids=lambda v: v or "<root>")
def test_each_named_test_exists_and_exercises_its_flag(command: str, flag: str) -> None:
    path, _, name = FLAGS[(command, flag)].partition("::")
    assert (ROOT / path).is_file(), f"{command} {flag}: no file {path}"
    sources = _sources(path)
    assert name in sources, f"{command} {flag}: no test {name} in {path}"
    mention = flag if flag.startswith("-") else command.split()[-1]
    assert f'"{mention}' in sources[name] or f"'{mention}" in sources[name], (
        f"{command} {flag}: {name} never mentions {mention}"
    )
