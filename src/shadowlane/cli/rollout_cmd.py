"""``shadowlane rollout --manifest FILE --flag NAME``: drive a flag through its stages, gated.

Shadow → 5 % → 25 % → 50 % → 100 % (the flag's ``stages``): each stage's signed route config goes
on the control topic (every hook and prod router picks it up live), the stage is held for its
evaluation window, and the gates judge everything the stage served so far. PASS graduates, a hard
stop or a FAIL rolls back to the baseline at once, INCONCLUSIVE holds (and after ``--max-looks``
holds the rollout stops where it is). Peeking at every window is paid for with alpha spending:
each look gets the O'Brien-Fleming-type Lan-DeMets increment of α over the stage's planned
samples (``--planned-samples``, default 5 × ``min_samples``). Every decision and step goes to the
audit topic. Exit code: 0 completed, 1 rolled back, 2 stalled or a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from shadowlane.cli.control_cmds import default_who
from shadowlane.cli.exit_codes import NO, OK, OPERATIONAL, UNDECIDED
from shadowlane.contracts.flag_manifest import FlagSpec
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.rollout.audit import AuditLog
from shadowlane.rollout.control_plane import ControlWatcher
from shadowlane.rollout.control_publisher import ControlPublisher
from shadowlane.rollout.driver import Evaluate, Targets, drive
from shadowlane.rollout.gates import Decision, evaluate
from shadowlane.rollout.looks import look_alpha_for
from shadowlane.rollout.manifest import ManifestError, load_manifest
from shadowlane.rollout.signing import SigningKeyError, active_signing_key
from shadowlane.rollout.staging import StagedRollout, Step
from shadowlane.rollout.summaries import KafkaSummarySource
from shadowlane.settings import Settings

EXIT = {"complete": OK, "rollback": NO, "stalled": UNDECIDED}


def add_parsers(sub: Any) -> None:
    cmd = sub.add_parser("rollout", help="drive a staged rollout (shadow → 5 → 25 → 50 → 100 %%), gated")
    cmd.add_argument("--manifest", type=Path, required=True, help="flag manifest (YAML or JSON)")
    cmd.add_argument("--flag", required=True, help="the flag to roll out")
    cmd.add_argument("--window-s", type=float, help="evaluation window (default: the flag's)")
    cmd.add_argument("--max-looks", type=int, default=12, help="holds per stage before it stalls")
    cmd.add_argument("--planned-samples", type=int, help="samples a stage plans for (alpha spending)")
    cmd.add_argument("--epoch", type=int, default=1, help="the router's epoch (a new one reshuffles)")
    cmd.add_argument("--salt", help="the router's salt (default: the flag name)")
    cmd.add_argument("--who", help="who runs the rollout (default: user@host)")
    cmd.add_argument("--json", action="store_true", help="one JSON line per step")
    cmd.set_defaults(handler=run)


class ControlSink:
    """Route configs go out signed on the control topic."""

    def __init__(self, publisher: ControlPublisher) -> None:
        self._publisher = publisher

    async def publish(self, config: RouteConfig, *, who: str, why: str) -> None:
        await self._publisher.publish("route_config", config.flag, config, who=who, why=why)


def spending_evaluator(flag: str, planned_samples: int) -> Evaluate:
    """The gate evaluator with each look's alpha spent over a stage's planned samples."""
    previous = {"n": 0}

    def judge(spec: FlagSpec, summary: WindowSummary | None, look: int) -> Decision:
        if look == 1:
            previous["n"] = 0
        n = summary.count if summary is not None else 0
        level = look_alpha_for(max(n, previous["n"]), planned_samples, n_prev=previous["n"], index=look)
        previous["n"] = max(n, previous["n"])
        return evaluate(spec, summary, look=level, flag=flag)

    return judge


async def execute(args: argparse.Namespace, settings: Settings) -> int:
    try:
        manifest = load_manifest(args.manifest)
    except ManifestError as exc:
        print(f"shadowlane rollout: {exc}", file=sys.stderr)
        return OPERATIONAL
    spec = manifest.flags.get(args.flag)
    if spec is None:
        print(f"shadowlane rollout: no flag {args.flag!r} in {args.manifest}", file=sys.stderr)
        return OPERATIONAL
    try:
        active_signing_key(settings.control)
    except SigningKeyError as exc:
        print(f"shadowlane rollout: {exc}", file=sys.stderr)
        return OPERATIONAL
    who = args.who or default_who()
    targets = Targets(
        baseline=spec.baseline or "baseline",
        candidate=manifest.candidate(args.flag),
        epoch=args.epoch,
        salt=args.salt or args.flag,
    )
    kwargs = client_kwargs(settings, resolve_bootstrap(settings))
    await ensure_topics(settings.topics, kwargs)
    producer = AIOKafkaProducer(**kwargs, acks="all")
    await producer.start()
    watcher = ControlWatcher(settings, kwargs, observer=f"rollout:{args.flag}")
    try:
        await watcher.start()
        await watcher.wait_ready(30.0)
        audit = AuditLog(producer, settings.topics.audit_topic)
        steps = await drive(
            StagedRollout(args.flag, spec, max_looks=args.max_looks),
            targets=targets,
            sink=ControlSink(ControlPublisher(settings, producer, watcher, audit=audit)),
            source=KafkaSummarySource(
                kwargs, settings.topics.summary_topic, grace_ms=int(settings.compare.summary_grace_s * 1000)
            ),
            evaluate=spending_evaluator(args.flag, args.planned_samples or 5 * spec.min_samples),
            audit=audit,
            window_s=args.window_s or spec.evaluation_window_s,
            who=who,
        )
    finally:
        await watcher.stop()
        await producer.stop()
    _print(steps, as_json=args.json)
    return EXIT.get(steps[-1].action, UNDECIDED)


def _print(steps: list[Step], *, as_json: bool) -> None:
    for step in steps:
        if as_json:
            row = {"action": step.action, "stage": step.stage, "weight": step.weight, "look": step.look}
            print(orjson.dumps({**row, "verdict": step.verdict, "reason": step.reason}).decode())
        else:
            verdict = step.verdict or ""
            print(f"{step.action:<9} {step.weight:>6.0%}  look {step.look:<3} {verdict:<13} {step.reason}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(execute(args, settings))
