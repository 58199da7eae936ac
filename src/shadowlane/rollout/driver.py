"""Drives a staged rollout: publish the stage's route config, wait a window, judge, act, audit.

The loop around :class:`~shadowlane.rollout.staging.StagedRollout` and nothing else: where configs
go (:class:`RouteSink`, the signed control topic in production), where a stage's merged summary
comes from (:class:`SummarySource`), how a summary is judged (an ``evaluate`` callable: the gate
evaluator) and the clock are all passed in, so the same driver runs the CLI, the integration
test on the real broker and the demo. Each look judges everything the stage has served so far
(its windows since the stage's config went out); ``look`` counts from 1 within a stage so the
evaluator can spend its alpha. Every decision and every step is written to the audit log; an
INCONCLUSIVE decision's record carries its way forward (the blocking gates, the estimated further
requests and time to a verdict: :mod:`shadowlane.rollout.forecast`), and so do the hold and stall
steps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from shadowlane.contracts.flag_manifest import FlagSpec
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.rollout.audit import AuditLog, event
from shadowlane.rollout.forecast import Forward, describe
from shadowlane.rollout.staging import DecisionLike, StagedRollout, Step

log = logging.getLogger(__name__)


class RouteSink(Protocol):
    async def publish(self, config: RouteConfig, *, who: str, why: str) -> None: ...


class SummarySource(Protocol):
    async def summary(self, candidate: str, start_ms: int, end_ms: int) -> WindowSummary | None: ...


Evaluate = Callable[[FlagSpec, WindowSummary | None, int], DecisionLike]
"""(spec, merged summary of the stage so far or None, look number in the stage) → decision."""


@dataclass(frozen=True, slots=True)
class Targets:
    baseline: str
    candidate: str
    epoch: int
    salt: str


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def drive(
    rollout: StagedRollout,
    *,
    targets: Targets,
    sink: RouteSink,
    source: SummarySource,
    evaluate: Evaluate,
    audit: AuditLog | None,
    window_s: float,
    who: str,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    clock: Callable[[], int] = _now_ms,
) -> list[Step]:
    """Run ``rollout`` to its end (complete, rollback or stalled); returns every step."""
    flag = rollout.flag
    step = rollout.start()
    stage_start = await _apply(rollout, step, targets, sink, audit, who, clock)
    while not rollout.done:
        await sleep(window_s)
        now = clock()
        summary = await source.summary(targets.candidate, stage_start, now)
        decision = evaluate(rollout.spec, summary, rollout.looks + 1)
        if audit is not None:
            why = f"{decision.verdict} at stage {rollout.stage + 1}, look {rollout.looks + 1}"
            way = describe(getattr(decision, "forward", None), getattr(decision, "blocking", ()))
            await audit.write(
                event(
                    "gate_decision",
                    who=who,
                    why=f"{why}: {way}" if way else why,
                    name=flag,
                    details=_details(decision, summary, stage_start, now),
                )
            )
        step = rollout.on_decision(decision)
        log.info("rollout %s: %s (%s)", flag, step.action, step.reason)
        if step.action in ("advance", "rollback"):
            stage_start = await _apply(rollout, step, targets, sink, audit, who, clock)
        elif audit is not None:
            await audit.write(_step_event(flag, step, who))
    return list(rollout.history)


async def _apply(
    rollout: StagedRollout,
    step: Step,
    targets: Targets,
    sink: RouteSink,
    audit: AuditLog | None,
    who: str,
    clock: Callable[[], int],
) -> int:
    """Publish the config the step calls for, audit it, and return when the stage began."""
    config = rollout.route_config(
        epoch=targets.epoch, salt=targets.salt, baseline=targets.baseline, candidate=targets.candidate
    )
    await sink.publish(config, who=who, why=f"rollout {step.action}: {step.reason}")
    if audit is not None:
        await audit.write(_step_event(rollout.flag, step, who))
    return clock()


def _step_event(flag: str, step: Step, who: str) -> Any:
    return event(
        "rollback" if step.action == "rollback" else "rollout_step",
        who=who,
        why=step.reason,
        name=flag,
        details={
            "action": step.action,
            "stage": step.stage,
            "weight": step.weight,
            "look": step.look,
            "verdict": step.verdict,
            **_forward(step.forward, step.blocking),
        },
    )


def _forward(forward: Forward | None, blocking: Any) -> dict[str, Any]:
    """The way forward for an audit record's details (nothing when the decision had none)."""
    if not isinstance(forward, Forward):
        return {}
    return {"forward": forward.as_dict(), "blocking": list(blocking)}


def _details(
    decision: DecisionLike, summary: WindowSummary | None, start_ms: int, end_ms: int
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "verdict": decision.verdict,
        "hard_stop": decision.hard_stop,
        "range_ms": [start_ms, end_ms],
        "count": summary.count if summary is not None else 0,
    }
    details |= _forward(getattr(decision, "forward", None), getattr(decision, "blocking", ()))
    as_dict = getattr(decision, "as_dict", None)
    if callable(as_dict):
        details["decision"] = as_dict()
    return details
