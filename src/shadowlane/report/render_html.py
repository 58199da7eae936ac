"""report.html: the same blocks as report.md, as one self-contained page with inline SVG plots.

No script, no stylesheet link, no image or font from the network: the CSS is inline and the
plots (:mod:`shadowlane.report.svg`) are drawn in Python. Every text is HTML-escaped (request ids,
bucket labels and answers come from traffic).
"""

from __future__ import annotations

from html import escape

from shadowlane.report import svg
from shadowlane.report.blocks import Block
from shadowlane.report.model import AbSection, BucketRow, Latency, Report, ShadowSection
from shadowlane.report.render_md import blocks

CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
caption { text-align: left; font-style: italic; padding-bottom: 2px; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 3px; margin-top: 1.6em; }
.decision { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff; }
.promote { background: #2e7d32; } .hold { background: #b26a00; } .retrain { background: #c62828; }
figure { margin: 0.5em 0 1.2em; }
"""


def _latency_svg(lat: Latency, names: tuple[str, str], title: str) -> str | None:
    series = [
        (name, arm.cdf)
        for name, arm in zip(names, (lat.baseline, lat.candidate), strict=True)
        if arm is not None
    ]
    return svg.cdf_chart(series, title, "latency (ms)") if series else None


def _bucket_svg(rows: tuple[BucketRow, ...], key: str, names: tuple[str, str], title: str) -> str | None:
    mine = [r for r in rows if r.key == key]
    if not mine:
        return None
    groups = [
        (
            r.value,
            [
                None if ci is None else (ci.estimate, ci.ci_low, ci.ci_high)
                for ci in (r.baseline, r.candidate)
            ],
        )
        for r in mine
    ]
    return svg.bar_chart(groups, names, title, "accuracy")


def _section(report: Report, source: str) -> ShadowSection | AbSection | None:
    return report.shadow if source == "shadow" else report.ab


def figure(report: Report, key: str) -> str | None:
    """The SVG of a figure block (``latency:<source>``, ``buckets:<source>:<label>``, ``delta_s``)."""
    kind, _, rest = key.partition(":")
    if kind == "delta_s" and report.shadow is not None:
        ds = report.shadow.delta_s
        if not ds.n and not ds.n_floor:
            return None
        return svg.histogram_chart(
            ds.edges,
            [("noise floor", ds.floor_hist), ("candidate", ds.hist)],
            "ΔS distribution vs the noise floor",
            "ΔS",
        )
    source, _, label = rest.partition(":")
    section = _section(report, source)
    if section is None:
        return None
    names = ("prod", "candidate") if source == "shadow" else ("baseline arm", "candidate arm")
    if kind == "latency":
        return _latency_svg(section.latency, names, f"Latency CDF per arm ({source})")
    if kind == "buckets":
        return _bucket_svg(section.buckets, label, names, f"Accuracy by {label} ({source}, 95 % CI)")
    return None


def _table(b: Block) -> str:
    caption = f"<caption>{escape(b.text)}</caption>" if b.text and b.text not in b.header else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in b.header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in b.rows)
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> str:
    parts: list[str] = []
    decision = report.recommendation.decision
    for b in blocks(report):
        if b.kind in ("h1", "h2", "h3"):
            text = escape(b.text)
            if b.kind == "h2" and b.text.startswith("Recommendation:"):
                text = f'Recommendation: <span class="decision {decision}">{escape(decision.upper())}</span>'
            parts.append(f"<{b.kind}>{text}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{escape(b.text)}</p>")
        elif b.kind == "list":
            parts.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table":
            parts.append(_table(b))
        elif b.kind == "figure":
            drawing = figure(report, b.text)
            if drawing is not None:
                parts.append(f"<figure>{drawing}</figure>")
    title = escape(next((b.text for b in blocks(report) if b.kind == "h1"), "Shadowlane report"))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
