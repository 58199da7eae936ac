"""``--help`` of the root and of every command and sub-command (found by walking the parser): it
exits 0 and shows a description, examples that the real parser accepts, and every default; and a
``%`` in help text is a percent sign, not a crash."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from shadowlane.cli.exit_codes import Parser
from shadowlane.cli.help_format import EXAMPLES, HelpFormatter, add_command, shows_default
from shadowlane.cli.main import build_parser, joined_negative_values, main
from tests.unit.cli.parser_tree import Command, commands, flag_name, own_actions

_INVOCATION = re.compile(r"shadowlane\s+([^)#>|]*)")


def _flat(text: str) -> str:
    return " ".join(text.split())


def _help(path: Command, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def examples(text: str) -> list[str]:
    """The lines of the ``Examples:`` section of a help text."""
    lines = text.split(f"\n{EXAMPLES}\n", 1)[1].splitlines()
    out = []
    for line in lines:
        if not line.strip():
            break
        out.append(line.strip())
    return out


def example_argv(line: str) -> list[str]:
    """The arguments of the ``shadowlane ...`` invocation in an example line (``$(...)``, a
    redirection or a ``# comment`` around it left out)."""
    match = _INVOCATION.search(line)
    assert match, f"example {line!r} does not run shadowlane"
    return shlex.split(match.group(1))


def required(parser: argparse.ArgumentParser, action: argparse.Action) -> bool:
    """Required itself, or one of a required either-or group."""
    groups = parser._mutually_exclusive_groups
    return action.required or any(g.required and action in g._group_actions for g in groups)


PATHS = [path for path, _ in commands()]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "<root>")
def test_help_describes_the_command_and_its_examples_parse(
    path: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = dict(commands())[path]
    out = _help(path, capsys)
    assert out.startswith(f"usage: shadowlane {' '.join(path)}".rstrip())
    description = parser.description or ""
    assert len(description.split()) >= 3, f"{path}: no description"
    assert _flat(description.splitlines()[0]) in _flat(out)
    found = examples(out)
    assert found, f"{path}: no examples"
    for line in found:
        argv = example_argv(line)
        assert argv[: len(path)] == list(path), f"{line!r} is not an example of {path}"
        try:
            build_parser().parse_args(joined_negative_values(argv))
        except SystemExit as exc:  # pragma: no cover - the assertion explains
            raise AssertionError(f"example {line!r} of {path} does not parse (exit {exc.code})") from None


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "<root>")
def test_every_flag_is_explained_and_shows_its_default(
    path: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = dict(commands())[path]
    out = _flat(_help(path, capsys))
    formatter = parser._get_formatter()
    for action in own_actions(parser):
        if isinstance(action, argparse._VersionAction):
            continue
        name = flag_name(action)
        assert action.help, f"{path} {name}: no help"
        shown = _flat(formatter._expand_help(action))
        assert shown in out, f"{path} {name}: its help is not in --help"
        if shows_default(action):
            assert str(action.default) in shown, f"{path} {name}: default {action.default!r} not shown"
        elif action.option_strings and action.nargs != 0 and not required(parser, action):
            # no default value: the help says what happens without it (or the setting it falls back to)
            assert "default" in shown or "$SHADOWLANE_" in shown, f"{path} {name}: no word on its default"
        if action.choices is not None:
            assert all(str(c) in _flat(parser.format_help()) for c in action.choices)


def test_a_percent_sign_in_help_is_text_and_formats_still_expand(capsys: pytest.CaptureFixture[str]) -> None:
    root = Parser(prog="demo")
    sub = root.add_subparsers(dest="command")
    cmd = add_command(sub, "ramp", summary="ramp to 100 % of traffic", examples=["demo ramp"])
    cmd.add_argument("--share", type=float, default=0.05, help="5 % of requests")
    cmd.add_argument("--cap", type=float, default=2.0, help="at most %(default)s per second (50%% of it)")
    cmd.add_argument("--seed", type=int, default=None, help="random seed")
    with pytest.raises(SystemExit):
        root.parse_args(["ramp", "--help"])
    out = capsys.readouterr().out
    assert "5 % of requests (default: 0.05)" in out
    assert "at most 2.0 per second (50% of it)" in out  # an explicit default is not repeated
    assert "random seed\n" in out  # no default to show
    with pytest.raises(SystemExit):
        root.parse_args(["--help"])
    assert "ramp to 100 % of traffic" in capsys.readouterr().out


def test_every_parser_lays_out_help_the_same_way() -> None:
    for path, parser in commands():
        assert isinstance(parser, Parser), path
        assert parser.formatter_class is HelpFormatter, path
