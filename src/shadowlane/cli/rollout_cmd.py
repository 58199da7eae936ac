"""``shadowlane rollout --manifest FILE --flag NAME``: drive a flag through its stages, gated.

Shadow → 5 % → 25 % → 50 % → 100 % (the flag's ``stages``): each stage's signed route config goes
on the control topic (every hook and prod router picks it up live), the stage is held for its
evaluation window, and the gates judge everything the stage served so far. PASS graduates, a hard
stop or a FAIL rolls back to the baseline at once, INCONCLUSIVE holds (and after ``--max-looks``
holds the rollout stops where it is: an operator's limit; every hold and the stall say how far the
stage is from a verdict, its way forward). Peeking at every window is paid for by the look rule
(``--look-rule``): an always-valid confidence sequence (default), tightest at ``--planned-samples``
(default 15 × ``min_samples``), under which a gate that has passed in a stage stays passed unless
it fails; or alpha spending, the O'Brien-Fleming-type Lan-DeMets increment of α over the stage's
planned samples (default 5 × ``min_samples``), after which no α is left. Every decision and step
goes to the audit topic. Exit code: 0 completed, 1 rolled back, 2 stalled, 3 operational, 64 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import orjson
from aiokafka import AIOKafkaProducer

from shadowlane.cli.exit_codes import NO, OK, OPERATIONAL, UNDECIDED
from shadowlane.cli.help_format import add_command
from shadowlane.cli.progress import Progress
from shadowlane.contracts.flag_manifest import FlagManifest, FlagSpec
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.rollout.audit import AuditLog, default_who
from shadowlane.rollout.control_plane import ControlWatcher
from shadowlane.rollout.control_publisher import ControlPublisher
from shadowlane.rollout.driver import Evaluate, RouteSink, SummarySource, Targets, drive
from shadowlane.rollout.forecast import describe
from shadowlane.rollout.gates import Decision, cleared, evaluate
from shadowlane.rollout.looks import LOOK_RULES, SEQUENCE_PLANNED_PER_MIN_SAMPLES, LookRule, look_for
from shadowlane.rollout.manifest import ManifestError, load_manifest
from shadowlane.rollout.signing import SigningKeyError, active_signing_key
from shadowlane.rollout.staging import StagedRollout, Step
from shadowlane.rollout.summaries import KafkaSummarySource
from shadowlane.settings import Settings

EXIT = {"complete": OK, "rollback": NO, "stalled": UNDECIDED}
SPENDING_PLANNED_PER_MIN_SAMPLES = 5  # alpha spending's default planned samples: 5 × min_samples


def add_parsers(sub: Any) -> None:
    cmd = add_command(
        sub,
        "rollout",
        summary="drive a flag through its stages (shadow → 5 → 25 → 50 → 100 %), gated every window",
        details="Each stage's signed route config goes on the control topic, the stage is held for "
        "its evaluation window and the gates judge what it served: PASS graduates, FAIL or a hard "
        "abort rolls back to the baseline at once, INCONCLUSIVE holds (after --max-looks holds the "
        "rollout stalls where it is) and says which gates block and about how many more requests "
        "(and how long) a verdict needs. Every decision and step is audited. Needs the signing key "
        "(SHADOWLANE_CONTROL__SIGNING_KEYS).",
        examples=[
            "shadowlane rollout --manifest deploy/flags/feature_flags.yml --flag grammar_b",
            "shadowlane rollout --manifest flags.yml --flag grammar_b --window-s 300 --max-looks 6 --json",
            "shadowlane rollout --manifest flags.yml --flag grammar_b --look-rule alpha_spending "
            "--planned-samples 1000",
        ],
        exit_codes="0 complete at 100 %, 1 rolled back, 2 stalled, 3 operational (a bad manifest, "
        "an unknown flag, no signing key, no broker), 64 usage",
    )
    cmd.add_argument(
        "--manifest", type=Path, required=True, metavar="FILE", help="flag manifest (YAML or JSON)"
    )
    cmd.add_argument("--flag", required=True, help="the flag to roll out")
    cmd.add_argument(
        "--window-s",
        type=float,
        metavar="S",
        help="evaluation window (default: the flag's evaluation_window_s)",
    )
    cmd.add_argument(
        "--max-looks",
        type=int,
        default=12,
        metavar="N",
        help="holds per stage before it stalls (an operator's limit: a confidence sequence never runs "
        "out of alpha; the stall reports the last way forward)",
    )
    cmd.add_argument(
        "--look-rule",
        choices=LOOK_RULES,
        default="confidence_sequence",
        help="how looks at every window keep false verdicts at alpha: confidence_sequence (always-valid "
        "bounds, any number of looks) or alpha_spending (O'Brien-Fleming over --planned-samples)",
    )
    cmd.add_argument(
        "--planned-samples",
        type=int,
        metavar="N",
        help="confidence_sequence: the sample size where its bounds are tightest (default: "
        f"{SEQUENCE_PLANNED_PER_MIN_SAMPLES} × the flag's min_samples); alpha_spending: the samples a "
        f"stage spends alpha over (default: {SPENDING_PLANNED_PER_MIN_SAMPLES} × min_samples)",
    )
    cmd.add_argument("--epoch", type=int, default=1, help="the router's epoch (a new one reshuffles users)")
    cmd.add_argument("--salt", help="the router's salt (default: the flag name)")
    cmd.add_argument("--who", help="who runs the rollout, for the audit (default: user@host)")
    cmd.add_argument(
        "--json", action="store_true", help="print one JSON object at the end instead of the steps"
    )
    cmd.set_defaults(handler=run)


class ControlSink:
    """Route configs go out signed on the control topic."""

    def __init__(self, publisher: ControlPublisher) -> None:
        self._publisher = publisher

    async def publish(self, config: RouteConfig, *, who: str, why: str) -> None:
        await self._publisher.publish("route_config", config.flag, config, who=who, why=why)


def look_evaluator(flag: str, rule: LookRule, planned_samples: int) -> Evaluate:
    """The gate evaluator with each look's level from ``rule`` (:func:`look_for`): alpha spent over a
    stage's planned samples, or a confidence sequence tightest there. Under the sequence a gate that
    passed at an earlier look of the stage stays passed (``evaluate``'s ``held``: its bounds hold at
    every look at once). Each look knows the previous one's n, so a forecast spaces future looks
    like the windows so far."""
    previous, held = {"n": 0}, set[str]()

    def judge(spec: FlagSpec, summary: WindowSummary | None, look: int) -> Decision:
        if look == 1:
            previous["n"] = 0
            held.clear()
        n, n_prev = summary.count if summary is not None else 0, previous["n"]
        level = look_for(rule, max(n, n_prev), planned_samples, n_prev=n_prev, index=look)
        if rule == "confidence_sequence" and 0 < n_prev < n:  # the spacing, for the way forward
            level = replace(level, fraction_prev=n_prev / planned_samples)
        previous["n"] = max(n, n_prev)
        decision = evaluate(spec, summary, look=level, flag=flag, held=frozenset(held))
        if rule == "confidence_sequence":
            held.update(cleared(decision))
        return decision

    return judge


def planned_default(rule: LookRule, min_samples: int) -> int:
    """``--planned-samples`` when not given: where a sequence is tightest, or what α is spent over."""
    per = (
        SEQUENCE_PLANNED_PER_MIN_SAMPLES
        if rule == "confidence_sequence"
        else SPENDING_PLANNED_PER_MIN_SAMPLES
    )
    return per * min_samples


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    """What a ``rollout`` command line asks for: the staged rollout, who serves what, the window,
    the look rule and the samples each stage plans for, and who runs it."""

    rollout: StagedRollout
    targets: Targets
    window_s: float
    planned_samples: int
    who: str
    look_rule: LookRule = "confidence_sequence"


def plan(args: argparse.Namespace, manifest: FlagManifest) -> RolloutPlan:
    spec = manifest.flags[args.flag]
    targets = Targets(
        baseline=spec.baseline or "baseline",
        candidate=manifest.candidate(args.flag),
        epoch=args.epoch,
        salt=args.salt or args.flag,
    )
    return RolloutPlan(
        rollout=StagedRollout(args.flag, spec, max_looks=args.max_looks),
        targets=targets,
        window_s=args.window_s or spec.evaluation_window_s,
        planned_samples=args.planned_samples or planned_default(args.look_rule, spec.min_samples),
        who=args.who or default_who(),
        look_rule=args.look_rule,
    )


async def run_plan(
    p: RolloutPlan,
    *,
    sink: RouteSink,
    source: SummarySource,
    audit: AuditLog | None,
    progress: Progress,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
) -> list[Step]:
    """Drive the planned rollout to its end; the steps."""
    evaluate = look_evaluator(p.rollout.flag, p.look_rule, p.planned_samples)
    return await drive(
        p.rollout,
        targets=p.targets,
        sink=sink,
        source=source,
        evaluate=noted(evaluate, p.rollout, progress),
        audit=audit,
        window_s=p.window_s,
        who=p.who,
        sleep=sleep or windowed_sleep(p.rollout, progress),
    )


def windowed_sleep(rollout: StagedRollout, progress: Progress) -> Callable[[float], Awaitable[None]]:
    """The driver's wait for a window, counting its seconds down on the progress line."""

    async def sleep(seconds: float) -> None:
        stage = f"stage {rollout.stage + 1}/{len(rollout.spec.stages)} ({_weight(rollout.weight)})"
        progress.step(
            f"{rollout.flag}: {stage}, look {rollout.looks + 1}: window", total=round(seconds), unit="s"
        )
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(1.0, left))
            progress.advance(min(1.0, left))

    return sleep


def _weight(weight: float) -> str:
    return "shadow" if weight == 0.0 else f"{weight:.0%}"


def noted(evaluate: Evaluate, rollout: StagedRollout, progress: Progress) -> Evaluate:
    """``evaluate``, with each look's verdict shown above the progress line."""

    def judge(spec: FlagSpec, summary: WindowSummary | None, look: int) -> Decision:
        decision = evaluate(spec, summary, look)
        n = summary.count if summary is not None else 0
        way = describe(getattr(decision, "forward", None), getattr(decision, "blocking", ()))
        progress.note(
            f"{rollout.flag}: stage {_weight(rollout.weight)}, look {look}: {decision.verdict} (n = {n})"
            + (f": {way}" if way else "")
        )
        return cast(Decision, decision)

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
    planned = plan(args, manifest)
    kwargs = client_kwargs(settings, resolve_bootstrap(settings))
    await ensure_topics(settings.topics, kwargs)
    producer = AIOKafkaProducer(**kwargs, acks="all")
    await producer.start()
    watcher = ControlWatcher(settings, kwargs, observer=f"rollout:{args.flag}")
    with Progress.for_command(as_json=args.json) as progress:
        try:
            progress.step("reading the control topic")
            await watcher.start()
            await watcher.wait_ready(30.0)
            audit = AuditLog(producer, settings.topics.audit_topic)
            grace_ms = int(settings.compare.summary_grace_s * 1000)
            steps = await run_plan(
                planned,
                sink=ControlSink(ControlPublisher(settings, producer, watcher, audit=audit)),
                source=KafkaSummarySource(kwargs, settings.topics.summary_topic, grace_ms=grace_ms),
                audit=audit,
                progress=progress,
            )
        finally:
            await watcher.stop()
            await producer.stop()
    print(output(args, steps))
    return EXIT.get(steps[-1].action, UNDECIDED)


def output(args: argparse.Namespace, steps: list[Step]) -> str:
    """What the command prints at the end: one JSON object with ``--json``, else the summary."""
    return orjson.dumps(as_json(args.flag, steps)).decode() if args.json else render(args.flag, steps)


def as_json(flag: str, steps: list[Step]) -> dict[str, Any]:
    """The ``--json`` object: the outcome, the last way forward (a stall's), then every step."""
    last = steps[-1]
    out: dict[str, Any] = {"flag": flag, "outcome": last.action, "weight": last.weight}
    if last.forward is not None:
        out |= {"forward": last.forward.as_dict(), "blocking": list(last.blocking)}
    return out | {"steps": [s.as_dict() for s in steps]}


def render(flag: str, steps: list[Step]) -> str:
    """The human summary: one line per step, then the outcome."""
    lines = [f"{'step':<9} {'traffic':>7}  {'look':<4} {'verdict':<13} reason"]
    for step in steps:
        verdict = step.verdict or ""
        lines.append(
            f"{step.action:<9} {_weight(step.weight):>7}  {step.look:<4} {verdict:<13} {step.reason}"
        )
    last = steps[-1]
    outcome = {
        "complete": "complete: the candidate serves 100 %",
        "rollback": f"ROLLED BACK at {_weight(last.weight)}: the baseline serves everything",
        "stalled": f"STALLED at {_weight(last.weight)}: no decision; the stage's config stays in force",
    }.get(last.action, last.action)
    lines.append(f"rollout {flag}: {outcome}")
    if last.action == "stalled" and last.forward is not None:
        lines.append(f"way forward: {describe(last.forward, last.blocking)}")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(execute(args, settings))
