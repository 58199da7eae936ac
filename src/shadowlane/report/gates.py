"""The report's "Rollout gates" section: the flag's gates on the report's range, as ``shadowlane
gate`` judges them, with the way forward of an INCONCLUSIVE (its reason names the blocking gates and
the further requests and time to a verdict; each undecided gate's row has its own).

:func:`judge_shadow` judges the candidate's window summaries of the range (the comparator's own
aggregates) with :func:`shadowlane.rollout.summaries.judge_flag`, as the gate command does, at the
stage's default look; :func:`gate_blocks` lays the decision out for report.md and report.html.
"""

from __future__ import annotations

from collections.abc import Sequence

from shadowlane.contracts.flag_manifest import FlagManifest
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.report.blocks import Block
from shadowlane.report.model import GateSection
from shadowlane.rollout.gates import Decision, GateResult
from shadowlane.rollout.manifest import seed_spec
from shadowlane.rollout.summaries import judge_flag


def judge_shadow(
    records: Sequence[WindowSummary], start: int, end: int, candidate: str, manifest: FlagManifest | None,
    flag: str | None,
) -> GateSection:  # fmt: skip
    """The report's section: the manifest's flag on the candidate's summaries of the range, or the
    seed's gates (:func:`shadowlane.rollout.manifest.seed_spec`) without a manifest."""
    if manifest is None or flag is None:
        flag = flag or "shadow"
        manifest = FlagManifest(flags={flag: seed_spec(candidate)})
    decision, _, partials = judge_flag(
        manifest, flag, records, start_ms=start, end_ms=end, candidate=candidate
    )
    return GateSection(decision, partials)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _row(g: GateResult) -> tuple[str, ...]:
    interval = "–" if g.ci_low is None else f"[{_num(g.ci_low)}, {_num(g.ci_high)}]"
    way = "" if g.forward is None else g.forward.reason
    return (g.name, g.metric, _num(g.value), f"{g.threshold:g}", interval, f"{g.n:,}", g.verdict, way)


def gate_blocks(decision: Decision, partials: int) -> list[Block]:
    """The section: verdict and reason, one row per gate, the way forward of an INCONCLUSIVE."""
    look = decision.look
    out = [
        Block("h2", f"Rollout gates: {decision.verdict}"),
        Block(
            "p",
            f"Flag {decision.flag}: the gates of its manifest on the range's window summaries ({partials}) "
            f"(n = {decision.n:,}, min_samples {decision.min_samples:,}), judged as `shadowlane gate` "
            f"judges them: one-sided α = {look.total_alpha:g} ({look.rule.replace('_', ' ')}).",
        ),
        Block("p", f"{decision.verdict}: {decision.reason}"),
    ]
    rows = tuple(_row(g) for g in decision.gates)
    header = ("gate", "metric", "value", "threshold", "interval", "n", "verdict", "way forward")
    out.append(Block("table", header=header, rows=rows))
    fired = [f"{a.kind} ({a.severity}): {a.reason}" for a in decision.aborts if a.fired]
    if fired:
        out += [Block("p", "Abort rules that fired:"), Block("list", items=tuple(fired))]
    return out
