"""``shadowlane shadow-on`` / ``shadow-off`` / ``kill`` / ``control show``: signed, audited changes.

Each change command reads the control topic (verified, :class:`ControlWatcher`), builds the new
config, signs it with the active key (``SHADOWLANE_CONTROL__SIGNING_KEYS`` and, with several keys,
``SHADOWLANE_CONTROL__ACTIVE_KEY_ID``), produces it, writes the audit event (who / what / why), and
waits until it sees its own record in force: a record refused by the watchers (a concurrent change
took the same version) is reported, not assumed applied.

``shadow-on PROD SHADOW`` puts a shadow rule for one endpoint (serve PROD, mirror ``--ratio`` of
requests to SHADOW) first in the flag's route config; ``shadow-off`` puts an ``off`` rule there.
Rules of the flag that the new rule's scope covers are dropped (they could never match again);
other rules stay. ``kill`` engages (``--release``: releases) the kill switch of a flag, ``*`` for
every flag. Exit codes: 0 in force; 3 not in force, refused, or not published (no signing key, an
invalid config, broker trouble); 64 a wrong command line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from shadowlane.cli.exit_codes import OPERATIONAL
from shadowlane.cli.help_format import add_command
from shadowlane.contracts.control import ALL_FLAGS, ControlKind, ControlRecord, KillSwitch
from shadowlane.errors import BrokerSetupError
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.rollout.audit import AuditLog, default_who
from shadowlane.rollout.control_plane import DEFAULT_FLAG, ControlWatcher
from shadowlane.rollout.control_publisher import ControlPublisher
from shadowlane.rollout.route_changes import shadow_off_config, shadow_on_config
from shadowlane.rollout.signing import Applied, SigningKeyError, active_signing_key
from shadowlane.settings import Settings

READY_TIMEOUT_S = 30.0
CONFIRM_TIMEOUT_S = 10.0
NO_KEYS = (
    "no signing key configured, so no control record can be verified: set "
    'SHADOWLANE_CONTROL__SIGNING_KEYS=\'{"<key id>": "<key>"}\''
)


class ControlCommandError(Exception):
    """A control command that cannot go on (exit :data:`~shadowlane.cli.exit_codes.OPERATIONAL`)."""

    def __init__(self, message: str, code: int = OPERATIONAL) -> None:
        super().__init__(message)
        self.code = code


SIGNED = (
    "Signed with the active key (SHADOWLANE_CONTROL__SIGNING_KEYS), audited (who, why), and "
    "confirmed: the command returns once it reads its own record back in force."
)
CONTROL_EXIT = (
    "0 in force, 3 not in force or could not be published (no signing key, broker trouble), 64 usage"
)


def add_parsers(sub: Any) -> None:
    on = add_command(
        sub,
        "shadow-on",
        summary="mirror an endpoint's traffic to a shadow target (signed, audited)",
        details="Puts a shadow rule for one endpoint first in the flag's route config: PROD keeps "
        "serving, --ratio of its requests are mirrored to SHADOW. " + SIGNED,
        examples=[
            "shadowlane shadow-on grammar-a grammar-b --why 'INC-42 canary prep'",
            "shadowlane shadow-on grammar-a grammar-b --ratio 0.1 --endpoint /v1/chat/completions",
        ],
        exit_codes=CONTROL_EXIT,
    )
    on.add_argument("prod", help="the target that keeps serving (baseline)")
    on.add_argument("shadow", help="the target requests are mirrored to (candidate)")
    on.add_argument("--ratio", type=_ratio, default=1.0, help="share of requests mirrored, in [0, 1]")
    _common(on)
    on.set_defaults(handler=run_shadow_on)

    off = add_command(
        sub,
        "shadow-off",
        summary="stop mirroring an endpoint (signed, audited)",
        details="Puts an off rule for the endpoint first in the flag's route config. " + SIGNED,
        examples=["shadowlane shadow-off --why 'shadow done'", "shadowlane shadow-off --flag grammar_b"],
        exit_codes=CONTROL_EXIT,
    )
    off.add_argument(
        "--prod",
        help="baseline target when the flag has no route config yet (default: the config's, else prod)",
    )
    _common(off)
    off.set_defaults(handler=run_shadow_off)

    kill = add_command(
        sub,
        "kill",
        summary="engage (or --release) a kill switch: every hook and worker stops within 2 s",
        details="A killed flag mirrors nothing and its shadow workers pause; '*' kills every flag. " + SIGNED,
        examples=[
            "shadowlane kill --why 'INC-7 candidate melting down'",
            "shadowlane kill --flag grammar_b",
            "shadowlane kill --flag grammar_b --release --why 'fixed'",
        ],
        exit_codes=CONTROL_EXIT,
    )
    kill.add_argument("--flag", default=ALL_FLAGS, help="flag (or endpoint) to kill; '*' for all")
    kill.add_argument("--release", action="store_true", help="release the kill switch instead")
    _who_why(kill)
    kill.set_defaults(handler=run_kill)

    control = add_command(
        sub,
        "control",
        summary="inspect the control plane",
        examples=["shadowlane control show"],
    )
    control_sub = control.add_subparsers(dest="control_command", metavar="ACTION", required=True)
    show = add_command(
        control_sub,
        "show",
        summary="print the verified configs in force as JSON lines, then a summary line",
        details="Reads the control topic and verifies every record; the last line counts the "
        "applied and rejected records and says whether '*' is killed.",
        examples=["shadowlane control show"],
        exit_codes="0 read, 3 no signing key or the topic could not be read",
    )
    show.set_defaults(handler=run_show)


def _common(parser: Any) -> None:
    parser.add_argument("--endpoint", help="endpoint path (default: the hook's first endpoint path)")
    parser.add_argument("--flag", default=DEFAULT_FLAG, help="route config flag")
    _who_why(parser)


def _who_why(parser: Any) -> None:
    parser.add_argument("--who", help="who makes the change, for the audit (default: user@host)")
    parser.add_argument(
        "--why",
        help="why: ticket, incident, experiment, for the audit "
        "(default: 'shadowlane COMMAND (no reason given)')",
    )


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"--ratio must be within [0, 1], got {value}")
    return value


# ---------------------------------------------------------------------- async cores
Build = Callable[[ControlWatcher], BaseModel]


async def publish_change(
    settings: Settings,
    kwargs: dict[str, Any],
    kind: ControlKind,
    name: str,
    build: Build,
    *,
    who: str,
    why: str,
    confirm_timeout_s: float = CONFIRM_TIMEOUT_S,
) -> ControlRecord:
    """Read what is in force, build, sign, produce and audit one change; wait to see it in force."""
    try:
        active_signing_key(settings.control)
    except SigningKeyError as exc:
        raise ControlCommandError(str(exc)) from None
    await ensure_topics(settings.topics, kwargs)
    watcher = ControlWatcher(settings, kwargs, observer=f"cli:{who}")
    await watcher.start()
    producer = AIOKafkaProducer(**kwargs, acks="all", enable_idempotence=True)
    try:
        if not await watcher.wait_ready(READY_TIMEOUT_S):
            raise ControlCommandError(f"could not read {settings.topics.control_topic} within 30 s")
        try:
            payload = build(watcher)
        except ValueError as exc:
            raise ControlCommandError(f"invalid {kind} for {name!r}: {exc}") from None
        await producer.start()
        audit = AuditLog(producer, settings.topics.audit_topic)
        publisher = ControlPublisher(settings, producer, watcher, audit=audit)
        try:
            record = await publisher.publish(kind, name, payload, who=who, why=why)
        except ValueError as exc:  # PayloadError, SigningKeyError
            raise ControlCommandError(str(exc)) from None
        deadline = time.monotonic() + confirm_timeout_s
        while time.monotonic() < deadline:
            outcome = watcher.outcome(kind, name)
            if outcome is not None and outcome.record == record:
                if isinstance(outcome, Applied):
                    return record
                raise ControlCommandError(
                    f"{record.key} v{record.version} was published but refused: {outcome.reason}: "
                    f"{outcome.detail}"
                )
            await asyncio.sleep(0.05)
        raise ControlCommandError(f"{record.key} v{record.version} published but not seen in force yet")
    finally:
        await producer.stop()
        await watcher.stop()


async def shadow_on(
    settings: Settings,
    kwargs: dict[str, Any],
    *,
    prod: str,
    shadow: str,
    endpoint: str,
    ratio: float = 1.0,
    flag: str = DEFAULT_FLAG,
    who: str,
    why: str,
) -> ControlRecord:
    def build(view: ControlWatcher) -> BaseModel:
        current = view.route_config(flag)
        return shadow_on_config(current, flag=flag, endpoint=endpoint, prod=prod, shadow=shadow, ratio=ratio)

    return await publish_change(settings, kwargs, "route_config", flag, build, who=who, why=why)


async def shadow_off(
    settings: Settings,
    kwargs: dict[str, Any],
    *,
    endpoint: str,
    flag: str = DEFAULT_FLAG,
    prod: str | None = None,
    who: str,
    why: str,
) -> ControlRecord:
    def build(view: ControlWatcher) -> BaseModel:
        current = view.route_config(flag)
        baseline = prod or (current.baseline if current is not None else "prod")
        return shadow_off_config(current, flag=flag, endpoint=endpoint, prod=baseline)

    return await publish_change(settings, kwargs, "route_config", flag, build, who=who, why=why)


async def kill(
    settings: Settings,
    kwargs: dict[str, Any],
    *,
    flag: str = ALL_FLAGS,
    engaged: bool = True,
    who: str,
    why: str,
) -> ControlRecord:
    def build(_view: ControlWatcher) -> BaseModel:
        return KillSwitch(engaged=engaged)

    return await publish_change(settings, kwargs, "kill_switch", flag, build, who=who, why=why)


async def show(settings: Settings, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """The verified records in force, then one summary line (rejections by reason, kill state)."""
    if not settings.control.signing_keys:
        raise ControlCommandError(NO_KEYS)
    watcher = ControlWatcher(settings, kwargs, observer="cli:show")
    await watcher.start()
    try:
        if not await watcher.wait_ready(READY_TIMEOUT_S):
            raise ControlCommandError(f"could not read {settings.topics.control_topic} within 30 s")
    finally:
        await watcher.stop()
    lines: list[dict[str, Any]] = [
        {
            "key": r.key,
            "version": r.version,
            "signed_by": r.signed_by,
            "reason": r.reason,
            "signed_at_ms": r.signed_at_ms,
            "key_id": r.key_id,
            "payload": r.payload,
        }
        for r in watcher.in_force()
    ]
    lines.append(
        {
            "event": "summary",
            "in_force": len(lines),
            "applied": watcher.stats.applied,
            "rejected": watcher.state.rejections,
            "killed_all": watcher.killed(ALL_FLAGS),
        }
    )
    return lines


# ---------------------------------------------------------------------- handlers
def _run(
    settings: Settings, core: Callable[[dict[str, Any]], Coroutine[Any, Any, list[dict[str, Any]]]]
) -> int:
    """Run ``core`` against the configured cluster (or the running local broker, never started here)."""
    try:
        bootstrap = resolve_bootstrap(settings)
    except BrokerSetupError as exc:
        print(f"shadowlane: {exc}", file=sys.stderr)
        return OPERATIONAL
    try:
        lines = asyncio.run(core(client_kwargs(settings, bootstrap)))
    except ControlCommandError as exc:
        print(f"shadowlane: {exc}", file=sys.stderr)
        return exc.code
    for line in lines:
        print(orjson.dumps(line).decode(), flush=True)
    return 0


def _published(record: ControlRecord, settings: Settings) -> list[dict[str, Any]]:
    return [
        {
            "event": "published",
            "key": record.key,
            "version": record.version,
            "who": record.signed_by,
            "why": record.reason,
            "key_id": record.key_id,
            "in_force": True,
            "topic": settings.topics.control_topic,
            "payload": record.payload,
        }
    ]


def _who(args: argparse.Namespace) -> str:
    return str(args.who or default_who())


def _why(args: argparse.Namespace, command: str) -> str:
    return str(args.why or f"shadowlane {command} (no reason given)")


def _fail_fast(settings: Settings) -> int | None:
    """Exit code 2 when nothing can be signed (checked before any connection)."""
    try:
        active_signing_key(settings.control)
    except SigningKeyError as exc:
        print(f"shadowlane: {exc}", file=sys.stderr)
        return OPERATIONAL
    return None


def run_shadow_on(args: argparse.Namespace, settings: Settings) -> int:
    if (code := _fail_fast(settings)) is not None:
        return code
    endpoint = args.endpoint or settings.hook.endpoint_paths[0]

    async def core(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        record = await shadow_on(
            settings,
            kwargs,
            prod=args.prod,
            shadow=args.shadow,
            endpoint=endpoint,
            ratio=args.ratio,
            flag=args.flag,
            who=_who(args),
            why=_why(args, "shadow-on"),
        )
        return _published(record, settings)

    return _run(settings, core)


def run_shadow_off(args: argparse.Namespace, settings: Settings) -> int:
    if (code := _fail_fast(settings)) is not None:
        return code
    endpoint = args.endpoint or settings.hook.endpoint_paths[0]

    async def core(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        record = await shadow_off(
            settings,
            kwargs,
            endpoint=endpoint,
            flag=args.flag,
            prod=args.prod,
            who=_who(args),
            why=_why(args, "shadow-off"),
        )
        return _published(record, settings)

    return _run(settings, core)


def run_kill(args: argparse.Namespace, settings: Settings) -> int:
    if (code := _fail_fast(settings)) is not None:
        return code

    async def core(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        command = "kill --release" if args.release else "kill"
        record = await kill(
            settings,
            kwargs,
            flag=args.flag,
            engaged=not args.release,
            who=_who(args),
            why=_why(args, command),
        )
        return _published(record, settings)

    return _run(settings, core)


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.control.signing_keys:
        print(f"shadowlane: {NO_KEYS}", file=sys.stderr)
        return OPERATIONAL

    async def core(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        await ensure_topics(settings.topics, kwargs)
        return await show(settings, kwargs)

    return _run(settings, core)
