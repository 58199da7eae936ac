"""The report's blocks on how the candidate reached its answers, beside what it answered: the first
divergent step of its agent runs (:mod:`shadowlane.report.divergence`), what it retrieved
(:mod:`shadowlane.report.retrieval`) and the pins each side served with (:mod:`shadowlane.report.pins`)."""

from __future__ import annotations

from shadowlane.report.blocks import Block, num, short
from shadowlane.report.model import FirstDivergences, ShadowSection
from shadowlane.report.retrieval import RetrievalDrift


def first_divergences(a: FirstDivergences) -> list[Block]:
    share = a.diverged / a.runs
    out = [
        Block("h3", "First divergences of agent runs"),
        Block(
            "p",
            f"{a.diverged} of {a.runs} agent runs ({share:.1%}) left prod's run at some step: a tool "
            "step (a call, in order) with another tool (tool_name) or other canonical arguments "
            "(tool_args), a call where prod had answered (extra_step), an answer where prod still "
            "called a tool (missing_step), or, after the same tool steps, an answer beyond the λ "
            "threshold from prod's (answer). Each run counts once, at its first divergent step.",
        ),
    ]
    if a.groups:
        rows = []
        for g in a.groups:
            shown = "; ".join(
                f"{e.req_id or e.req_hash}: prod {short(e.prod)} → candidate {short(e.candidate)}"
                for e in g.examples
            )
            rows.append(
                (g.tool or "(final answer)", g.kind, str(g.step), str(g.count), f"{g.share:.1%}", shown)
            )
        out.append(
            Block(
                "table",
                text="most common first divergences",
                header=("tool", "kind", "step", "runs", "share", "examples"),
                rows=tuple(rows),
            )
        )
    if a.other_groups:
        out.append(Block("p", f"{a.other_count} more in {a.other_groups} other (tool, kind, step) groups."))
    return out


def retrieval_drift(r: RetrievalDrift) -> list[Block]:
    rows = tuple(
        (a.arm, str(a.n), num(a.median), num(a.p95), num(a.beyond), num(a.overlap), num(a.coverage))
        for a in r.arms
    )
    worst = "; ".join(
        f"{e.req_id or e.req_hash}: ΔS {num(e.delta_s)} (prod {num(e.prod_delta_s)}), overlap "
        f"{num(e.overlap)}, coverage {num(e.coverage)}"
        for e in r.worst
    )
    return [
        Block("h3", "Retrieval drift"),
        Block(
            "p",
            "What each arm retrieved for the question, apart from what it answered: ΔS(question, "
            "retrieved) embeds the question against the arm's passages (the candidate's and the "
            "baseline's: each request's worst over it and its λ paraphrases); overlap is the Jaccard "
            "of the retrieved ids with prod's; coverage the share of the gold label's cited ids (the "
            f"expected section) retrieved. Manifest defaults: ΔS ≤ {r.delta_s_max:g} (gate on the p95), "
            f"coverage ≥ {r.coverage_min:g}.",
        ),
        Block(
            "table",
            header=("arm", "n", "ΔS median", "ΔS p95", f"over {r.delta_s_max:g}", "overlap", "coverage"),
            rows=rows,
        ),
        *([Block("p", f"Highest retrieval ΔS: {worst}.")] if worst else []),
    ]


def pins_verified(s: ShadowSection) -> list[Block]:
    """Pins verified: each side's served pins against the ones it claimed (compare.pins)."""
    rows = []
    for side, checks in (("candidate", s.pin_checks), ("prod", s.prod_pin_checks)):
        if checks is not None:
            keys = ", ".join(f"{key} ({n})" for key, n in checks.keys) or "–"
            rows.append((side, str(checks.checked), str(checks.mismatched), num(checks.rate), keys))
    if not rows:
        return []
    examples = [*(c.examples for c in (s.pin_checks, s.prod_pin_checks) if c is not None)]
    named = ", ".join(ident for found in examples for ident in found)
    blocks = [
        Block("h3", "Pins verified"),
        Block("table", header=("side", "checked", "mismatched", "rate", "differing keys"), rows=tuple(rows)),
    ]
    if named:
        blocks.append(Block("p", f"Served with other pins than claimed, e.g.: {named}."))
    return blocks
