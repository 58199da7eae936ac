"""Inline SVG plots for report.html, generated in Python: no JavaScript, no network, no fonts.

Three charts: an empirical CDF per arm (latency), overlaid histograms as shares (ΔS vs the noise
floor) and grouped bars with confidence whiskers (accuracy per bucket value). Every label is
escaped; the markup carries no ``xmlns`` (HTML5 inline SVG needs none) so the file holds no URL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 30, 44
COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759")


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


class _Frame:
    """Maps data to pixels inside the plot area and draws the axes."""

    def __init__(self, x: tuple[float, float], y: tuple[float, float]) -> None:
        self.x0, self.x1 = x if x[1] > x[0] else (x[0] - 0.5, x[0] + 0.5)
        self.y0, self.y1 = y if y[1] > y[0] else (y[0] - 0.5, y[0] + 0.5)
        self.w, self.h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(self, x: float) -> float:
        return LEFT + (x - self.x0) / (self.x1 - self.x0) * self.w

    def py(self, y: float) -> float:
        return TOP + self.h - (y - self.y0) / (self.y1 - self.y0) * self.h

    def axes(self, title: str, x_label: str, y_label: str, x_ticks: bool = True) -> list[str]:
        out = [
            f'<text x="{WIDTH / 2 - RIGHT / 2:.0f}" y="18" text-anchor="middle" font-size="13" '
            f'font-weight="bold">{escape(title)}</text>',
            f'<line x1="{LEFT}" y1="{TOP + self.h}" x2="{LEFT + self.w}" y2="{TOP + self.h}" stroke="#333"/>',
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + self.h}" stroke="#333"/>',
            f'<text x="{LEFT + self.w / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="11">'
            f"{escape(x_label)}</text>",
            f'<text x="12" y="{TOP + self.h / 2:.0f}" text-anchor="middle" font-size="11" '
            f'transform="rotate(-90 12 {TOP + self.h / 2:.0f})">{escape(y_label)}</text>',
        ]
        for t in _ticks(self.y0, self.y1):
            y = self.py(t)
            out.append(
                f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{LEFT + self.w}" y2="{y:.1f}" stroke="#eee"/>'
            )
            out.append(
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{_label(t)}</text>'
            )
        if x_ticks:
            for t in _ticks(self.x0, self.x1):
                x = self.px(t)
                out.append(
                    f'<text x="{x:.1f}" y="{TOP + self.h + 16}" text-anchor="middle" font-size="10">'
                    f"{_label(t)}</text>"
                )
        return out

    def legend(self, names: Sequence[str]) -> list[str]:
        out = []
        for i, name in enumerate(names):
            y = TOP + 10 + 18 * i
            x = LEFT + self.w + 12
            color = COLORS[i % len(COLORS)]
            out.append(f'<rect x="{x}" y="{y - 9}" width="12" height="10" fill="{color}"/>')
            out.append(f'<text x="{x + 16}" y="{y}" font-size="11">{escape(name)}</text>')
        return out


def _svg(parts: list[str], title: str) -> str:
    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif">' + "".join(parts) + "</svg>"
    )


def cdf_chart(series: Sequence[tuple[str, Sequence[float]]], title: str, x_label: str) -> str:
    """Empirical CDFs from evenly spaced quantiles (``values[i]`` is the i/(len−1) quantile)."""
    finite = [v for _, values in series for v in values if math.isfinite(v)]
    frame = _Frame((min(finite, default=0.0), max(finite, default=1.0)), (0.0, 1.0))
    parts = frame.axes(title, x_label, "cumulative share")
    for i, (_, values) in enumerate(series):
        if len(values) < 2:
            continue
        points = []
        for k, v in enumerate(values):
            q = k / (len(values) - 1)
            points.append(f"{frame.px(v):.1f},{frame.py(q):.1f}")
        color = COLORS[i % len(COLORS)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(points)}"/>')
    parts += frame.legend([name for name, _ in series])
    return _svg(parts, title)


def histogram_chart(
    edges: Sequence[float], series: Sequence[tuple[str, Sequence[int]]], title: str, x_label: str
) -> str:
    """Side-by-side bars per bin, each series as shares of its own total."""
    shares = []
    for _, counts in series:
        total = sum(counts)
        shares.append([c / total if total else 0.0 for c in counts])
    top = max((s for row in shares for s in row), default=1.0) or 1.0
    frame = _Frame((edges[0], edges[-1]), (0.0, top * 1.05))
    parts = frame.axes(title, x_label, "share of requests")
    width = len(series) or 1
    for i, row in enumerate(shares):
        color = COLORS[i % len(COLORS)]
        for b, share in enumerate(row):
            if share <= 0:
                continue
            left, right = frame.px(edges[b]), frame.px(edges[b + 1])
            bar = (right - left) / width
            x = left + i * bar
            y = frame.py(share)
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar - 1, 1):.1f}" '
                f'height="{frame.py(0) - y:.1f}" fill="{color}" opacity="0.85"/>'
            )
    parts += frame.legend([name for name, _ in series])
    return _svg(parts, title)


def bar_chart(
    groups: Sequence[tuple[str, Sequence[tuple[float, float, float] | None]]],
    names: Sequence[str],
    title: str,
    y_label: str,
) -> str:
    """Grouped bars (one per series) with [low, high] whiskers, y in [0, 1]; None leaves a gap."""
    frame = _Frame((0.0, float(max(len(groups), 1))), (0.0, 1.0))
    parts = frame.axes(title, "", y_label, x_ticks=False)
    slot = frame.w / max(len(groups), 1)
    bar = slot * 0.8 / max(len(names), 1)
    for g, (label, values) in enumerate(groups):
        base_x = LEFT + g * slot + slot * 0.1
        for i, value in enumerate(values):
            if value is None:
                continue
            estimate, low, high = value
            x = base_x + i * bar
            y = frame.py(estimate)
            color = COLORS[i % len(COLORS)]
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar - 2, 1):.1f}" '
                f'height="{frame.py(0) - y:.1f}" fill="{color}"/>'
            )
            mid = x + (bar - 2) / 2
            parts.append(
                f'<line x1="{mid:.1f}" y1="{frame.py(low):.1f}" x2="{mid:.1f}" y2="{frame.py(high):.1f}" '
                'stroke="#222" stroke-width="1.2"/>'
            )
        parts.append(
            f'<text x="{LEFT + (g + 0.5) * slot:.1f}" y="{TOP + frame.h + 16}" text-anchor="middle" '
            f'font-size="10">{escape(label)}</text>'
        )
    parts += frame.legend(names)
    return _svg(parts, title)
