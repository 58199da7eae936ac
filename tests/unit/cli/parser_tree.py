"""The ``shadowlane`` parser as a tree: every command and sub-command, and every flag of each.

Walked from :func:`shadowlane.cli.main.build_parser` (never a hand-kept list), so a command or
flag someone adds is seen by the help test and the flag-coverage test at once.
"""

from __future__ import annotations

import argparse
from functools import cache

from shadowlane.cli.main import build_parser

Command = tuple[str, ...]
"""A command's path below ``shadowlane``: ``()`` the root, ``("kafka", "start")``."""


def _walk(parser: argparse.ArgumentParser, path: Command) -> list[tuple[Command, argparse.ArgumentParser]]:
    out = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _walk(sub, (*path, name))
    return out


@cache
def commands() -> tuple[tuple[Command, argparse.ArgumentParser], ...]:
    """Every parser: the root first, then each command and its sub-commands."""
    return tuple(_walk(build_parser(), ()))


def flag_name(action: argparse.Action) -> str:
    """``--long-form`` of an option, the ``dest`` of a positional."""
    if not action.option_strings:
        return action.dest
    return max(action.option_strings, key=len)


def own_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The flags a parser takes itself (not ``--help``, not its sub-commands)."""
    return [
        a for a in parser._actions if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def flags() -> list[tuple[str, str]]:
    """Every ``("kafka start", "--timeout")`` of the CLI (the root's command is ``""``)."""
    return [(" ".join(path), flag_name(a)) for path, parser in commands() for a in own_actions(parser)]
