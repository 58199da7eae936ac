"""The exit codes of every ``shadowlane`` command: one meaning each, never overloaded.

======  ==============================================================================
code    meaning
======  ==============================================================================
0       done; ``gate`` PASS; ``rollout`` complete
1       the command's answer is no: ``gate`` FAIL, ``rollout`` rolled back,
        ``rescore --verify`` found a difference
2       undecided: ``gate`` INCONCLUSIVE, ``rollout`` stalled
3       operational error: the broker unreachable or refusing, bad configuration (a setting,
        a manifest, a signing key), data that cannot be judged, a missing extra
64      usage: the command line itself is wrong (``EX_USAGE``)
70      a worker that did not stop in time after SIGTERM (``EX_SOFTWARE``, see
        :mod:`shadowlane.cli.signals`)
======  ==============================================================================
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from shadowlane.cli.help_format import HelpFormatter

OK = 0
NO = 1
UNDECIDED = 2
OPERATIONAL = 3
USAGE = 64


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error exiting :data:`USAGE` rather than 2 (which is ``gate``'s
    INCONCLUSIVE), and ``--help`` laid out by :class:`~shadowlane.cli.help_format.HelpFormatter`.
    Subcommand parsers inherit the class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


class CommandError(SystemExit):
    """A one-line failure of a command: the message is printed to stderr when it is made, and the
    process exits ``code`` (a ``SystemExit``, so it leaves through every ``finally``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code)
        self.message = message
        print(message, file=sys.stderr)

    def __str__(self) -> str:
        return self.message


def usage_error(message: str) -> CommandError:
    """The command line is wrong (exit :data:`USAGE`); raise what this returns."""
    return CommandError(USAGE, message)


def operational_error(message: str) -> CommandError:
    """The command could not do its work (exit :data:`OPERATIONAL`); raise what this returns."""
    return CommandError(OPERATIONAL, message)
