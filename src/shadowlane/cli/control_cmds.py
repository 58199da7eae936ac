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
every flag. Exit codes: 0 done, 1 published but not in force / broker trouble, 2 a clear error
(no signing key, an invalid config).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from shadowlane.cli.exit_codes import OPERATIONAL
from shadowlane.contracts.control import ALL_FLAGS, ControlKind, ControlRecord, KillSwitch
from shadowlane.contracts.route_config import RouteConfig, RouteRule, RouteScope
from shadowlane.errors import BrokerSetupError
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.rollout.audit import AuditLog
from shadowlane.rollout.control_plane import DEFAULT_FLAG, ControlWatcher
from shadowlane.rollout.control_publisher import ControlPublisher
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


def add_parsers(sub: Any) -> None:
    on = sub.add_parser("shadow-on", help="mirror an endpoint's traffic to a shadow target (signed)")
    on.add_argument("prod", help="the target that keeps serving (baseline)")
    on.add_argument("shadow", help="the target requests are mirrored to (candidate)")
    on.add_argument("--ratio", type=_ratio, default=1.0, help="share of requests mirrored, in [0, 1]")
    _common(on)
    on.set_defaults(handler=run_shadow_on)

    off = sub.add_parser("shadow-off", help="stop mirroring an endpoint (signed)")
    off.add_argument("--prod", help="baseline target, when the flag has no route config yet (default prod)")
    _common(off)
    off.set_defaults(handler=run_shadow_off)

    kill = sub.add_parser("kill", help="engage (or --release) a kill switch: everywhere within 2 s")
    kill.add_argument("--flag", default=ALL_FLAGS, help="flag (or endpoint) to kill; '*' (default) for all")
    kill.add_argument("--release", action="store_true", help="release the kill switch instead")
    _who_why(kill)
    kill.set_defaults(handler=run_kill)

    control = sub.add_parser("control", help="inspect the control plane")
    control_sub = control.add_subparsers(dest="control_command", required=True)
    show = control_sub.add_parser("show", help="print the verified configs in force, as JSON lines")
    show.set_defaults(handler=run_show)


def _common(parser: Any) -> None:
    parser.add_argument("--endpoint", help="endpoint path (default: the hook's first endpoint path)")
    parser.add_argument("--flag", default=DEFAULT_FLAG, help=f"route config flag (default {DEFAULT_FLAG})")
    _who_why(parser)


def _who_why(parser: Any) -> None:
    parser.add_argument("--who", help="who makes the change (default: user@host)")
    parser.add_argument("--why", help="why: ticket, incident, experiment (recorded in the audit)")


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"--ratio must be within [0, 1], got {value}")
    return value


def default_who() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


# ---------------------------------------------------------------------- route configs (pure)
def merge_rule(current: RouteConfig | None, *, flag: str, baseline: str, rule: RouteRule) -> RouteConfig:
    """``current`` with ``rule`` first; rules it covers are dropped, the flag's settings kept."""
    if current is None:
        return RouteConfig(flag=flag, epoch=0, salt=flag, baseline=baseline, rules=(rule,))
    kept = [r for r in current.rules if not rule.scope.covers(r.scope)]
    data = current.model_dump(mode="json")
    data["rules"] = [r.model_dump(mode="json") for r in (rule, *kept)]
    return RouteConfig.model_validate(data)  # validated again: the merged rules must hold together


def shadow_on_config(
    current: RouteConfig | None, *, flag: str, endpoint: str, prod: str, shadow: str, ratio: float
) -> RouteConfig:
    rule = RouteRule(
        scope=RouteScope(endpoints=(endpoint,)),
        strategy="shadow",
        baseline=prod,
        candidate=shadow,
        shadow_ratio=ratio,
    )
    return merge_rule(current, flag=flag, baseline=prod, rule=rule)


def shadow_off_config(current: RouteConfig | None, *, flag: str, endpoint: str, prod: str) -> RouteConfig:
    rule = RouteRule(scope=RouteScope(endpoints=(endpoint,)), strategy="off")
    return merge_rule(current, flag=flag, baseline=prod, rule=rule)


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
