"""``shadowlane gate --manifest FILE --flag NAME``: judge a flag's candidate on its window summaries.

Reads the ``compare.summary`` records of the flag's candidate (``--candidate``, else the manifest's)
whose window starts in ``[from, to)`` (``--window 10m`` ending now by default: the flag's
``evaluation_window_s``), keeps those in the flag's scope (endpoints and tenants; summaries carry
no region), drops duplicate partials (same ``summary_id``), merges the rest into one exact summary
(:func:`~shadowlane.windows.accumulator.merge_summaries`; across endpoints and tenants too: the gate
judges the flag's whole scope) and evaluates it (:func:`shadowlane.rollout.gates.evaluate`). It prints
per gate the value, threshold, direction, statistic, interval, n and verdict (``--json``: one JSON
object); an INCONCLUSIVE names the gates that block and, per gate and overall, the estimated further
requests to a verdict (median and 5th–95th percentile range), where it is heading and the time
at the window's request rate (:mod:`shadowlane.rollout.forecast`). It writes a ``gate_decision``
audit event with all of it (``--no-audit`` to skip), and exits 0 PASS, 1 FAIL,
2 INCONCLUSIVE (no data in range is INCONCLUSIVE too), 3 for an operational error (a bad manifest,
an unknown flag, no broker) and 64 for a bad command line. A PASS that cannot be audited exits 3:
nothing graduates without a record.

One run is one look, at the level of ``--look-rule``: by default an always-valid confidence
sequence tightest at ``--planned-samples`` (default 15 × ``min_samples``), valid however often a
pipeline reruns the gate on the stage's cumulative range (``--from`` fixed at the stage's start:
the sequence holds over one growing sample, not over disjoint windows); or ``alpha_spending``
over ``--planned-samples`` with ``--previous-samples`` (``n`` of its previous run in the stage),
and without ``--planned-samples`` a fixed-sample test at ``--alpha``
(``shadowlane.rollout.looks.look_for``).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from shadowlane.cli.exit_codes import OPERATIONAL
from shadowlane.cli.help_format import add_command
from shadowlane.cli.times import add_time_range, parse_time
from shadowlane.contracts.audit import AuditEvent
from shadowlane.contracts.flag_manifest import FlagManifest, FlagSpec
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.errors import BrokerSetupError
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.rollout.audit import AuditLog, default_who, event
from shadowlane.rollout.gates import Decision
from shadowlane.rollout.looks import (
    LOOK_RULES,
    SEQUENCE_PLANNED_PER_MIN_SAMPLES,
    LookAlpha,
    fixed_look,
    look_for,
)
from shadowlane.rollout.manifest import ManifestError, load_manifest
from shadowlane.rollout.summaries import judge_flag, read_window_summaries, select
from shadowlane.settings import Settings

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class GateInputError(Exception):
    """A run that cannot be judged for a reason the operator fixes (exit 3)."""


def add_parsers(sub: Any) -> None:
    cmd = add_command(
        sub,
        "gate",
        summary="judge a flag's candidate on its window summaries: PASS, FAIL or INCONCLUSIVE",
        details="Merges the candidate's compare.summary partials in the flag's scope over the range "
        "(--window ending at --to, by default the flag's evaluation window), evaluates every gate "
        "and abort of the manifest, prints one row per gate, and writes a gate_decision audit "
        "event. An INCONCLUSIVE says which gates block and about how many more requests (and how "
        "long, at the window's request rate) a verdict needs. One run is one look; by default its "
        "bounds are an always-valid confidence sequence, so a pipeline may rerun the gate every "
        "window on the stage's cumulative range (--from fixed at the stage's start; disjoint windows "
        "are separate tests).",
        examples=[
            "shadowlane gate --manifest deploy/flags/feature_flags.yml --flag grammar_b",
            "shadowlane gate --manifest flags.yml --flag grammar_b --from 2026-12-07T09:00:00Z --json",
            "shadowlane gate --manifest flags.yml --flag grammar_b --look-rule alpha_spending "
            "--planned-samples 5000 --previous-samples 1200",
        ],
        exit_codes="0 PASS, 1 FAIL, 2 INCONCLUSIVE (also: no data in range), 3 operational (a bad "
        "manifest, an unknown flag, no broker, a PASS that could not be audited), 64 usage",
    )
    cmd.add_argument("--manifest", type=Path, required=True, help="flag manifest (YAML or JSON)")
    cmd.add_argument("--flag", required=True, help="flag name in the manifest")
    cmd.add_argument("--candidate", help="candidate name (default: the flag's candidate, else its name)")
    add_time_range(cmd, start_default="--window before --to")
    cmd.add_argument(
        "--window",
        type=_duration_ms,
        metavar="DURATION",
        help="range length ending at --to: 600, 600s, 10m, 1h (default: the flag's evaluation_window_s)",
    )
    cmd.add_argument("--alpha", type=float, default=0.05, help="one-sided false-FAIL level")
    cmd.add_argument(
        "--look-rule",
        choices=LOOK_RULES,
        default="confidence_sequence",
        help="confidence_sequence: always-valid bounds, any number of looks; alpha_spending: "
        "O'Brien-Fleming spending over --planned-samples (a fixed-sample test without it)",
    )
    cmd.add_argument(
        "--planned-samples",
        type=int,
        metavar="N",
        help="confidence_sequence: where its bounds are tightest (default: "
        f"{SEQUENCE_PLANNED_PER_MIN_SAMPLES} × the flag's min_samples); alpha_spending: the stage's "
        "planned comparisons to spend alpha over (default: none, a fixed-sample test at --alpha)",
    )
    cmd.add_argument(
        "--previous-samples",
        type=int,
        default=0,
        metavar="N",
        help="n at the previous look of the stage (alpha spending's increment; for both rules, the "
        "look spacing the way forward projects with)",
    )
    cmd.add_argument(
        "--fail-rule",
        choices=("worse_than_reference", "ci_beyond_threshold"),
        default="worse_than_reference",
        help="worse_than_reference: FAIL when the estimate is past the threshold and significantly "
        "worse than prod (or the noise floor); ci_beyond_threshold: only when the whole interval is "
        "past it",
    )
    cmd.add_argument(
        "--multiplicity",
        choices=("bonferroni", "per_gate"),
        default="bonferroni",
        help="FAIL tests at alpha / gates (bonferroni, default: family-wise) or at alpha each (per_gate)",
    )
    cmd.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    cmd.add_argument("--no-audit", action="store_true", help="do not write the gate_decision audit event")
    cmd.add_argument("--who", help="who asks, for the audit (default: user@host)")
    cmd.set_defaults(handler=run)


def _duration_ms(text: str) -> int:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"cannot read duration {text!r}: use 600, 600s, 10m, 1h")
    return int(float(match.group(1)) * _UNIT_S[match.group(2)] * 1000)


# ---------------------------------------------------------------------- pure part
def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def render(decision: Decision, candidate: str, partials: int) -> str:
    """The human table: one row per gate, then the aborts, the statistics and the verdict."""
    look = decision.look
    when = "no data"
    if decision.window_start_ms is not None and decision.window_end_ms is not None:
        fmt = [datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
               for t in (decision.window_start_ms, decision.window_end_ms)]  # fmt: skip
        when = f"{fmt[0]} → {fmt[1]}"
    lines = [
        f"flag {decision.flag} · candidate {candidate} · {when} · {partials} partials · "
        f"n = {decision.n} (min {decision.min_samples})",
        f"look {look.index}: one-sided α = {look.alpha:.3g} ({look.rule}, t = {look.fraction:.2f}) · "
        f"FAIL rule {decision.fail_rule}, {decision.multiplicity}",
    ]
    rows = [("gate", "metric", "value", "threshold", "dir", "CI", "n", "verdict")]
    for g in decision.gates:
        ci = "–" if g.ci_low is None else f"{g.confidence:.1%} [{_num(g.ci_low)}, {_num(g.ci_high)}]"
        rows.append(
            (g.name, g.metric, _num(g.value), f"{g.threshold:g}", g.direction, ci, str(g.n), g.verdict)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for a in decision.aborts:
        lines.append(f"abort {a.severity:4s} {a.kind}: {'FIRED' if a.fired else 'quiet'} — {a.reason}")
    lines += [f"  {g.name}: {g.statistic or '(skipped)'} — {g.reason}" for g in decision.gates]
    lines += [f"  way forward {g.name}: {g.forward.reason}" for g in decision.gates if g.forward]
    lines.append(f"{decision.verdict}: {decision.reason}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- I/O
async def _audit(settings: Settings, kwargs: dict[str, Any], record: Any) -> None:
    await ensure_topics(settings.topics, kwargs)
    producer = AIOKafkaProducer(**kwargs, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await AuditLog(producer, settings.topics.audit_topic).write(record)
    finally:
        await producer.stop()


def gate_range(args: argparse.Namespace, spec: FlagSpec, *, now_ms: int | None = None) -> tuple[int, int]:
    """``[from, to)`` in epoch ms: ``--from`` / ``--to``, else ``--window`` (or the flag's
    evaluation window) ending at ``--to``."""
    end = parse_time(args.end, now_ms=now_ms)
    window = args.window or int(spec.evaluation_window_s * 1000)
    start = parse_time(args.start, now_ms=now_ms) if args.start else end - window
    if end <= start:
        raise GateInputError("the range is empty: --to must be after --from")
    return start, end


def judge(
    args: argparse.Namespace, manifest: FlagManifest, records: Sequence[WindowSummary], start: int, end: int
) -> tuple[Decision, dict[str, Any]]:
    """The decision on ``records`` as the command line asks for it (candidate, alpha and its
    spending, FAIL rule, multiplicity), and its details (what ``--json`` prints and the audit keeps)."""
    spec = manifest.flags[args.flag]
    name = args.candidate or manifest.candidate(args.flag)
    n = sum(s.count for s in select(records, name, spec.scope, start, end))
    look = look_level(args, spec, n)
    decision, candidate, partials = judge_flag(
        manifest, args.flag, records, start_ms=start, end_ms=end, candidate=args.candidate, look=look,
        fail_rule=args.fail_rule, multiplicity=args.multiplicity,
    )  # fmt: skip
    details = {"candidate": candidate, "range_ms": [start, end], "partials": partials, **decision.as_dict()}
    return decision, details


def look_level(args: argparse.Namespace, spec: FlagSpec, n: int) -> LookAlpha:
    """This run's look under ``--look-rule`` (``--planned-samples``, ``--previous-samples``, ``--alpha``)."""
    prev = args.previous_samples
    if args.look_rule == "alpha_spending":
        if not args.planned_samples:
            return fixed_look(args.alpha)
        return look_for("alpha_spending", n, args.planned_samples, n_prev=prev, alpha=args.alpha)
    planned = args.planned_samples or SEQUENCE_PLANNED_PER_MIN_SAMPLES * spec.min_samples
    look = look_for("confidence_sequence", n, planned, alpha=args.alpha)
    return replace(look, fraction_prev=prev / planned) if 0 < prev < n else look


def audit_record(args: argparse.Namespace, decision: Decision, details: dict[str, Any]) -> AuditEvent | None:
    """The ``gate_decision`` audit event (None with ``--no-audit``)."""
    if args.no_audit:
        return None
    why = f"{decision.verdict}: {decision.reason}"
    return event("gate_decision", who=args.who or default_who(), why=why, name=args.flag, details=details)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        manifest = load_manifest(args.manifest)
        spec = manifest.flags.get(args.flag)
        if spec is None:
            raise GateInputError(f"flag {args.flag!r} is not in {args.manifest}")
        start, end = gate_range(args, spec)
        kwargs = client_kwargs(settings, resolve_bootstrap(settings))
        records = asyncio.run(read_window_summaries(kwargs, settings.topics.summary_topic, start, end))
    except (ManifestError, GateInputError, BrokerSetupError) as exc:
        print(f"shadowlane gate: {exc}", file=sys.stderr)
        return OPERATIONAL
    decision, details = judge(args, manifest, records, start, end)
    candidate, partials = details["candidate"], details["partials"]
    print(orjson.dumps(details).decode() if args.json else render(decision, candidate, partials))
    if partials == 0:
        print(f"shadowlane gate: no window summaries of {candidate} in range: INCONCLUSIVE", file=sys.stderr)
    code = decision.exit_code
    record = audit_record(args, decision, details)
    if record is not None:
        try:
            asyncio.run(_audit(settings, kwargs, record))
        except Exception as exc:  # the decision stands, but nothing graduates unrecorded
            print(f"shadowlane gate: could not write the audit event: {exc}", file=sys.stderr)
            code = OPERATIONAL if code == 0 else code
    return code
