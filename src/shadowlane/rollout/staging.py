"""The staged-rollout state machine: shadow → 5 % → 25 % → 50 % → 100 %, pure (no I/O, no clock).

:class:`StagedRollout` walks a flag's ``stages`` (``FlagSpec.stages``; weight 0 is the shadow
stage) one gate decision at a time and says what to do next:

* ``advance`` on PASS (``complete`` when the last stage, 100 %, passes);
* ``rollback`` on a hard stop or a FAIL: the candidate has measurably stopped holding up, so the
  baseline serves everything again at once and the rollout ends;
* ``hold`` on INCONCLUSIVE (too little data, a soft abort rule, a gate whose interval still
  straddles its threshold): the stage stays in force and the next window is evaluated;
* ``stalled`` after ``max_looks`` holds in one stage: the rollout ends where it is (the current
  weight stays in force) and the operator decides. Never an advance on a guess. Under a confidence
  sequence no α runs out, so this is an operator's limit, not a statistical one: the step says how
  far the last decision was from a verdict (its way forward, :mod:`shadowlane.rollout.forecast`).

A hold or a stall carries the decision's way forward (the blocking gates and the estimated further
requests to a verdict) in its reason and in ``forward`` / ``blocking``.

:meth:`StagedRollout.route_config` turns the current stage into the signed-config payload the
router reads: the shadow stage mirrors ``traffic.shadow_ratio`` of requests and serves the
baseline; a canary stage serves the candidate to ``weight`` of sticky keys (the router's hash is
monotone, so each graduation only moves keys from baseline to candidate); a rollback turns the
flag off. Looks inside a stage count from 1, so the gate evaluator can spend its alpha.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from shadowlane.contracts.flag_manifest import FlagSpec
from shadowlane.contracts.route_config import RouteConfig, RouteRule
from shadowlane.rollout.forecast import Forward, describe

Action = Literal["start", "hold", "advance", "rollback", "complete", "stalled"]
FINAL: frozenset[str] = frozenset({"rollback", "complete", "stalled"})


class DecisionLike(Protocol):
    @property
    def verdict(self) -> str: ...

    @property
    def hard_stop(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    stage: int
    weight: float
    look: int
    verdict: str | None
    reason: str
    forward: Forward | None = None  # hold / stalled: the decision's way forward to a verdict
    blocking: tuple[str, ...] = ()

    @property
    def final(self) -> bool:
        return self.action in FINAL

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the step, and its way forward when it has one."""
        out: dict[str, Any] = {
            "action": self.action, "stage": self.stage, "weight": self.weight, "look": self.look,
            "verdict": self.verdict, "reason": self.reason,
        }  # fmt: skip
        if self.forward is not None:
            out |= {"forward": self.forward.as_dict(), "blocking": list(self.blocking)}
        return out


@dataclass(slots=True)
class StagedRollout:
    flag: str
    spec: FlagSpec
    max_looks: int = 12
    stage: int = 0
    looks: int = 0
    history: list[Step] = field(default_factory=list)

    @property
    def weight(self) -> float:
        return self.spec.stages[self.stage]

    @property
    def done(self) -> bool:
        return bool(self.history) and self.history[-1].final

    def start(self) -> Step:
        if self.history:
            raise RuntimeError(f"rollout of {self.flag} already started")
        return self._step("start", None, f"stage 1 of {len(self.spec.stages)}: {_describe(self.weight)}")

    def on_decision(self, decision: DecisionLike) -> Step:
        if not self.history:
            raise RuntimeError("start() the rollout before feeding it decisions")
        if self.done:
            raise RuntimeError(f"rollout of {self.flag} has ended ({self.history[-1].action})")
        self.looks += 1
        verdict = decision.verdict
        if decision.hard_stop:
            return self._step("rollback", verdict, "hard abort rule fired: baseline serves everything")
        if verdict == "FAIL":
            return self._step("rollback", verdict, "a gate failed: baseline serves everything")
        if verdict == "PASS":
            if self.stage + 1 >= len(self.spec.stages):
                return self._step("complete", verdict, "all gates green at full rollout")
            decided_at = self.looks
            self.stage += 1
            self.looks = 0
            reason = f"gates green: graduating to {_describe(self.weight)}"
            return self._step("advance", verdict, reason, look=decided_at)
        forward: Forward | None = getattr(decision, "forward", None)
        blocking: tuple[str, ...] = tuple(getattr(decision, "blocking", ()))
        way = describe(forward, blocking)
        if self.looks >= self.max_looks:
            reason = f"no decision after {self.looks} looks (--max-looks): stage stays"
            reason += f"; last way forward: {way}" if way else ""
            return self._step("stalled", verdict, reason, forward=forward, blocking=blocking)
        reason = f"{verdict}: holding {_describe(self.weight)}" + (f"; {way}" if way else "")
        return self._step("hold", verdict, reason, forward=forward, blocking=blocking)

    def _step(
        self, action: Action, verdict: str | None, reason: str, *, look: int | None = None,
        forward: Forward | None = None, blocking: tuple[str, ...] = (),
    ) -> Step:  # fmt: skip
        """The step taken (``look``: the look that decided it, when the stage has moved on)."""
        looked = self.looks if look is None else look
        step = Step(action, self.stage, self.weight, looked, verdict, reason, forward, blocking)
        self.history.append(step)
        return step

    def route_config(self, *, epoch: int, salt: str, baseline: str, candidate: str) -> RouteConfig:
        """The route config in force after the last step (its ``kill`` is never set here)."""
        scope = self.spec.scope
        last = self.history[-1] if self.history else None
        if last is not None and last.action == "rollback":
            rule = RouteRule(scope=scope, strategy="off", candidate=candidate)
        elif self.weight == 0.0:
            ratio = self.spec.traffic.shadow_ratio
            rule = RouteRule(scope=scope, strategy="shadow", candidate=candidate, shadow_ratio=ratio)
        else:
            rule = RouteRule(
                scope=scope, strategy="canary", candidate=candidate, candidate_weight=self.weight
            )
        return RouteConfig(flag=self.flag, epoch=epoch, salt=salt, baseline=baseline, rules=(rule,))


def _describe(weight: float) -> str:
    return "shadow" if weight == 0.0 else f"canary {weight:.0%}"
