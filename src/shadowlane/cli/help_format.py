"""How every ``shadowlane`` command explains itself in ``--help``.

One mechanism for the whole CLI: :class:`HelpFormatter` (the formatter of every
:class:`~shadowlane.cli.exit_codes.Parser`, subcommands included) shows each option's default
unless the help already says what it is, keeps descriptions and the ``Examples:`` epilog as
written, and reads a ``%`` in help text as a percent sign (argparse would otherwise take it for a
format and crash). :func:`add_command` registers a subcommand with its one-line summary, its
description, its examples and, where it has its own, its exit codes.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Sequence
from typing import Any

EXAMPLES = "Examples:"
"""The heading of every command's examples in ``--help``."""

WIDTH = 78
"""Descriptions are kept as written (for the layout of lists), so they are wrapped here."""

_PERCENT = re.compile(r"%%|%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]|%")
"""``%%``, a ``%(name)s`` format, or a lone ``%`` (a percent sign, to be escaped)."""


def _escape_percent(text: str) -> str:
    return _PERCENT.sub(lambda m: m.group(0) if len(m.group(0)) > 1 else "%%", text)


def shows_default(action: argparse.Action) -> bool:
    """Whether ``--help`` should state ``action``'s default: it has one worth saying (not None,
    False, an empty list or suppressed) and the option is not required."""
    default = action.default
    if action.required or default is None or default is False or default is argparse.SUPPRESS:
        return False
    return not (isinstance(default, list | tuple) and not default)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; every option's default shown once."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = _escape_percent(action.help or "")
        if shows_default(action) and "default" not in text.lower():
            text += " (default: %(default)s)"
        return text


def wrap(text: str) -> str:
    """``text`` filled to :data:`WIDTH`, paragraph by paragraph; a paragraph with indented or
    ``-`` lines (a list, a table) is kept as written."""
    out = []
    for paragraph in text.strip().split("\n\n"):
        lines = paragraph.splitlines()
        if any(line.startswith((" ", "-")) for line in lines):
            out.append(paragraph)
        else:
            out.append(textwrap.fill(" ".join(line.strip() for line in lines), WIDTH))
    return "\n\n".join(out)


def setting_default(env: str, default: object) -> str:
    """The help text of an option that overrides a setting: where its default comes from."""
    return f"(default: ${env}, else {default})"


def examples_epilog(examples: Sequence[str], exit_codes: str | None = None) -> str:
    """The ``Examples:`` section (one invocation a line, ``# comment`` allowed), then the exit codes."""
    lines = [EXAMPLES, *(f"  {example}" for example in examples)]
    if exit_codes:
        lines += ["", wrap(f"Exit codes: {exit_codes}")]
    return "\n".join(lines)


def add_command(
    sub: Any,
    name: str,
    *,
    summary: str,
    examples: Sequence[str],
    details: str | None = None,
    exit_codes: str | None = None,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """Add subcommand ``name``: ``summary`` is its line in the parent's list and the first line of
    its description (``details`` follows it), ``examples`` real invocations (``shadowlane ...``)."""
    description = wrap(summary[:1].upper() + summary[1:] + ".")
    if details:
        description += "\n\n" + wrap(details)
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=examples_epilog(examples, exit_codes),
        **kwargs,
    )
    return parser
