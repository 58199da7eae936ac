"""report.md: the report as headings, paragraphs, lists and tables.

:func:`blocks` lays the report out once as a list of :class:`Block` (plain text, no markup);
:func:`render_markdown` prints them as Markdown and ``render_html`` as HTML, adding the plots
where a ``figure`` block stands (Markdown points to report.html there). Blocks and the number
formatting both print with are in :mod:`shadowlane.report.blocks`.
"""

from __future__ import annotations

from shadowlane.report.blocks import (
    Block,
    diff,
    iso,
    labels,
    num,
    p_value,
    quantile,
    rate,
    short,
)
from shadowlane.report.gates import gate_blocks
from shadowlane.report.model import (
    AbSection,
    Accuracy,
    BucketRow,
    Disagreements,
    Errors,
    Latency,
    Report,
    ShadowSection,
)
from shadowlane.report.recommend import rule_text
from shadowlane.report.render_behaviour import first_divergences, pins_verified, retrieval_drift


def _accuracy(a: Accuracy, names: tuple[str, str]) -> list[Block]:
    t = a.test
    text = "Not enough graded requests for a verdict." if not a.enough_data else ""
    if t is not None:
        text = (
            f"Two-proportion z-test (candidate − baseline): Δ = {100 * t.diff:+.2f} pp, 95 % CI "
            f"[{100 * t.ci_low:+.2f}, {100 * t.ci_high:+.2f}] pp (Newcombe), z = {t.z:.3f}, "
            f"p = {p_value(t.p_value)}. {text}"
        )
    return [
        Block("h3", "Accuracy against gold"),
        Block(
            "table",
            header=("arm", "accuracy (solved/graded) [95 % CI]"),
            rows=((names[0], rate(a.baseline)), (names[1], rate(a.candidate))),
        ),
        Block("p", text.strip()),
    ]


def _buckets(rows: tuple[BucketRow, ...], source: str) -> list[Block]:
    if not rows:
        return [
            Block("h3", "Per-bucket breakdown"),
            Block("p", "No breakdown labels on the graded requests."),
        ]
    out = [Block("h3", "Per-bucket breakdown")]
    for key in sorted({r.key for r in rows}):
        mine = [r for r in rows if r.key == key]
        out.append(
            Block(
                "table",
                text=key,
                header=(key, "baseline", "candidate", "Δ [95 % CI]", "p"),
                rows=tuple(
                    (
                        r.value,
                        rate(r.baseline),
                        rate(r.candidate),
                        diff(r.test),
                        p_value(r.test.p_value if r.test else None),
                    )
                    for r in mine
                ),
            )
        )
        out.append(Block("figure", f"buckets:{source}:{key}"))
    return out


def _latency(lat: Latency, names: tuple[str, str], source: str) -> list[Block]:
    rows = []
    for name, arm in zip(names, (lat.baseline, lat.candidate), strict=True):
        if arm is not None:
            rows.append((name, str(arm.n), quantile(arm.p50), quantile(arm.p95), quantile(arm.p99)))
    out = [
        Block("h3", "Latency (ms, successful answers)"),
        Block(
            "table", header=("arm", "n", "p50 [95 % CI]", "p95 [95 % CI]", "p99 [95 % CI]"), rows=tuple(rows)
        ),
    ]
    if lat.mwu is not None:
        m = lat.mwu
        text = (
            f"Mann-Whitney U (candidate vs baseline, two-sided): U = {m.u:g}, p = {p_value(m.p_value)}, "
            f"P(candidate slower) = {m.effect:.3f}."
        )
        if lat.p95_ratio is not None:
            r = lat.p95_ratio
            text += f" p95 ratio candidate / baseline = {r.estimate:.3f} [{num(r.ci_low)}, {num(r.ci_high)}]."
        if not lat.enough_data:
            text += " Too few samples for a verdict."
        out.append(Block("p", text))
    out.append(Block("figure", f"latency:{source}"))
    return out


def _errors(e: Errors, names: tuple[str, str]) -> list[Block]:
    return [
        Block("h3", "Error rate"),
        Block(
            "table",
            header=("arm", "errors (errors/requests) [95 % CI]"),
            rows=((names[0], rate(e.baseline)), (names[1], rate(e.candidate))),
        ),
        Block("p", f"Δ = {diff(e.test)}, p = {p_value(e.test.p_value if e.test else None)}."),
    ]


def _disagreements(d: Disagreements) -> list[Block]:
    out = [
        Block("h3", "Disagreements"),
        Block(
            "p",
            f"Prod and the candidate disagreed on {d.total} of {d.joined} joined requests: improved "
            f"{d.improved} (candidate solved, prod not), regressed {d.regressed} (prod solved, candidate "
            f"not), neutral {d.neutral} (same solved state; {d.ungraded} ungraded). Exact McNemar "
            f"test of improved vs regressed: p = {p_value(d.mcnemar_p)}.",
        ),
    ]
    for kind in ("improved", "regressed", "neutral"):
        examples = d.examples.get(kind, ())
        if examples:
            out.append(
                Block(
                    "table",
                    text=f"{kind} examples",
                    header=("req_id", "labels", "ΔS", "floor", "prod answer", "candidate answer", "gold"),
                    rows=tuple(
                        (
                            e.req_id or e.req_hash,
                            labels(e.buckets),
                            num(e.delta_s),
                            num(e.delta_s_floor),
                            short(e.text.prod if e.text else None),
                            short(e.text.shadow if e.text else None),
                            short(e.text.gold if e.text else None),
                        )
                        for e in examples
                    ),
                )
            )
    return out


def _shadow(s: ShadowSection) -> list[Block]:
    names = ("prod (baseline)", f"{s.candidate} (candidate)")
    ds = s.delta_s
    return [
        Block("h2", f"Shadow: {s.candidate} vs prod"),
        Block(
            "p",
            f"{s.comparisons} comparisons: {s.joined} joined, {s.timeouts} shadow timeouts, {s.missing} "
            f"without their request. Noise floor: {s.noise_floor or 'none'}.",
        ),
        *_accuracy(s.accuracy, names),
        *_buckets(s.buckets, "shadow"),
        *_latency(s.latency, names, "shadow"),
        *_errors(s.errors, names),
        Block("h3", "ΔS vs the noise floor"),
        Block(
            "table",
            header=("", "n", "median", "p95"),
            rows=(
                ("ΔS(prod, candidate)", str(ds.n), num(ds.median), num(ds.p95)),
                ("ΔS(prod, baseline replay)", str(ds.n_floor), num(ds.floor_median), num(ds.floor_p95)),
                ("excess ΔS: q(ΔS) − q(floor)", str(ds.n_paired), num(ds.excess_median), num(ds.excess_p95)),
            ),
        ),
        Block(
            "p",
            f"Mann-Whitney U (ΔS vs floor, two-sided): p = {p_value(ds.mwu.p_value if ds.mwu else None)}.",
        ),
        Block("figure", "delta_s"),
        *_disagreements(s.disagreements),
        *(first_divergences(s.agent) if s.agent is not None else []),
        *(retrieval_drift(s.retrieval) if s.retrieval is not None else []),
        *pins_verified(s),
    ]


def _ab(a: AbSection) -> list[Block]:
    names = ("baseline arm", "candidate arm")
    s = a.srm
    served = "; ".join(f"{arm}: {', '.join(v) or '–'}" for arm, v in a.served_by.items())
    return [
        Block("h2", f"A/B: flag {a.flag}"),
        Block(
            "p",
            f"{a.counts['baseline']} requests on the baseline arm, {a.counts['candidate']} on the candidate "
            f"arm (served by {served}; epochs {', '.join(map(str, a.epochs))}).",
        ),
        Block("h3", "Sample ratio mismatch"),
        Block(
            "p",
            f"Planned {a.weights[0]:g} / {a.weights[1]:g}, observed {s.observed[0]} / {s.observed[1]}: "
            f"χ² = {s.chi2:.3f} (dof {s.dof}), p = {p_value(s.p_value)} → "
            + ("MISMATCH" if s.mismatch else "ok" if s.enough_data else "too few to test"),
        ),
        *_accuracy(a.accuracy, names),
        *_buckets(a.buckets, "ab"),
        *_latency(a.latency, names, "ab"),
        *_errors(a.errors, names),
    ]


def blocks(report: Report) -> list[Block]:
    title = " · ".join(
        x
        for x in (report.candidate and f"candidate {report.candidate}", report.flag and f"flag {report.flag}")
        if x
    )
    rec = report.recommendation
    out = [
        Block("h1", f"Shadowlane report: {title or 'no source'}"),
        Block(
            "p",
            f"Range [{iso(report.from_ms)}, {iso(report.to_ms)}) · grader {report.grader or 'none'} · "
            f"confidence {report.options.confidence:g}",
        ),
        Block("h2", f"Recommendation: {rec.decision.upper()}"),
        Block("list", items=rec.reasons),
    ]
    if rec.notes:
        out += [Block("p", "Also:"), Block("list", items=rec.notes)]
    out += [Block("h3", "How the recommendation is decided"), Block("list", items=rule_text(report.options))]
    if report.gates is not None:
        out += gate_blocks(report.gates.decision, report.gates.partials)
    if report.shadow is not None:
        out += _shadow(report.shadow)
    if report.ab is not None:
        out += _ab(report.ab)
    if report.notes:
        out += [Block("h2", "Notes"), Block("list", items=report.notes)]
    return out


def _cell(text: str) -> str:
    """A table cell: traffic text (ids, labels, answers) must not become Markdown or raw HTML."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    lines: list[str] = []
    for b in blocks(report):
        if b.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(b.kind[1]) + " " + b.text, ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "list":
            lines += [f"- {item}" for item in b.items] + [""]
        elif b.kind == "table":
            if b.text and b.text not in b.header:
                lines += [f"*{_cell(b.text)}*", ""]
            lines.append("| " + " | ".join(map(_cell, b.header)) + " |")
            lines.append("|" + "---|" * len(b.header))
            lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in b.rows] + [""]
        elif b.kind == "figure":
            lines += [f"*Plot: see report.html ({b.text}).*", ""]
    return "\n".join(lines)
