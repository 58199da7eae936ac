"""The ``shadowlane`` console script: builds the settings once and dispatches to a subcommand.

Each subcommand lives in its own module, imported when the parser is built. A command whose
dependencies come with an extra that is not installed (``pip install shadowlane`` gives only the
hook, the contracts, ``kafka`` and ``tail``) still shows in ``--help``; running it says which extra
to install, and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shadowlane import __version__
from shadowlane.cli.exit_codes import OPERATIONAL, Parser
from shadowlane.cli.failures import explain, quiet_unclosed_clients
from shadowlane.cli.help_format import examples_epilog, wrap
from shadowlane.cli.times import RELATIVE_TIME
from shadowlane.errors import BrokerSetupError, ConfigError
from shadowlane.settings import load_settings

MISSING_EXTRA = OPERATIONAL
"""Exit code of a command whose extra is not installed."""


@dataclass(frozen=True, slots=True)
class CommandGroup:
    """A module of ``shadowlane.cli`` and the subcommands its ``add_parsers`` registers."""

    module: str
    commands: tuple[str, ...]
    extra: str | None
    """The extra that brings its dependencies (None: the core install has them)."""


GROUPS: tuple[CommandGroup, ...] = (
    CommandGroup("kafka_cmd", ("kafka",), None),
    CommandGroup("worker_cmds", ("topics", "shadow", "compare"), "workers"),
    CommandGroup("demo_cmd", ("demo",), "demo"),
    CommandGroup("tail_cmd", ("tail",), None),
    CommandGroup("lag_cmd", ("lag",), None),
    CommandGroup("watch_cmd", ("watch",), "workers"),
    CommandGroup("rescore_cmd", ("rescore",), "workers"),
    CommandGroup("report_cmd", ("report",), "rollout"),
    CommandGroup("control_cmds", ("shadow-on", "shadow-off", "kill", "control"), None),
    CommandGroup("rollout_cmd", ("rollout",), "rollout"),
    CommandGroup("gate_cmd", ("gate",), "rollout"),
    CommandGroup("simulate_cmd", ("simulate-gates",), "rollout"),
)


def _add_group(sub: Any, group: CommandGroup) -> None:
    """Register the group's subcommands, or stand-ins that name the missing extra."""
    try:
        module = importlib.import_module(f"shadowlane.cli.{group.module}")
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "shadowlane" or group.extra is None:
            raise  # our own module is missing, or a core dependency: a broken install, not an extra
        hint = f"pip install 'shadowlane[{group.extra}]'"
        why = f"needs the {group.extra} extra ({exc.name} is not installed): {hint}"
        for name in group.commands:
            stub = sub.add_parser(
                name, help=f"(needs the {group.extra} extra: {hint})", description=f"shadowlane {name}: {why}"
            )
            stub.set_defaults(handler=_missing_extra(f"shadowlane {name}: {why}"))
        return
    module.add_parsers(sub)


def _missing_extra(message: str) -> Callable[[argparse.Namespace, object], int]:
    def handler(_args: argparse.Namespace, _settings: object) -> int:
        print(message, file=sys.stderr)
        return MISSING_EXTRA

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="shadowlane",
        description=wrap(
            "Shadow traffic for LLM services, over Kafka.\n\nSettings come from --config FILE and the "
            "environment (SHADOWLANE_*, KAFKA_BOOTSTRAP_SERVERS); `shadowlane COMMAND --help` explains a "
            "command, its defaults and its exit codes."
        ),
        epilog=examples_epilog(
            ["shadowlane kafka start", "shadowlane demo", "shadowlane watch --duration 60"],
            exit_codes="0 done / PASS, 1 FAIL or rolled back, 2 INCONCLUSIVE or stalled, "
            "3 operational error, 64 usage",
        ),
    )
    parser.add_argument("--version", action="version", version=f"shadowlane {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--debug", action="store_true", help="debug logging, and a traceback with every operational error"
    )
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help="read settings from this YAML or TOML file (also $SHADOWLANE_CONFIG); the environment "
        "overrides it, a command's flags override both",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        _add_group(sub, group)
    return parser


def joined_negative_values(argv: list[str]) -> list[str]:
    """``--from -15m`` as ``--from=-15m``: argparse takes a value that starts with ``-`` (and is
    not a number) for an option, so the form the help shows would be refused. Only a relative
    time (``-15m``, ``-2h``, ``-1.5d``, ``-30s``) right after a long option is joined."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and RELATIVE_TIME.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(joined_negative_values(sys.argv[1:] if argv is None else argv))
    verbose = args.verbose or args.debug
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # a worker runs for days: aiokafka's errors are worth a line in its log; any other command
        # ends in one line of its own (an explained failure, or its result)
        worker = args.command in ("shadow", "compare")
        logging.getLogger("aiokafka").setLevel(logging.ERROR if worker else logging.CRITICAL)
    try:
        settings = load_settings(config_file=args.config_file)
    except ConfigError as exc:  # a name that is not a setting, a value that does not validate
        if args.debug:
            raise
        for problem in str(exc).splitlines():
            print(f"shadowlane {args.command}: {problem}", file=sys.stderr)
        return OPERATIONAL
    try:
        code: int = args.handler(args, settings)
    except ConfigError as exc:  # a setting that cannot work
        print(f"shadowlane {args.command}: {exc}", file=sys.stderr)
        return OPERATIONAL
    except BrokerSetupError as exc:  # no broker to talk to, or the local one failed to start
        print(f"shadowlane {args.command}: {exc}", file=sys.stderr)
        return OPERATIONAL
    except Exception as exc:
        line = None if args.debug else explain(exc)
        if line is None:
            raise  # a bug (or --debug): the traceback is what helps
        print(f"shadowlane {args.command}: {line}", file=sys.stderr)
        quiet_unclosed_clients()
        return OPERATIONAL
    return code


if __name__ == "__main__":
    raise SystemExit(main())
