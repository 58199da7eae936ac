"""The report's building blocks: :class:`Block` (a heading, paragraph, list, table or figure, as
plain text) and the number formatting both report.md and report.html print with."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from shadowlane.stats.proportions import ProportionCI, TwoProportionTest
from shadowlane.stats.quantiles import QuantileCI

Kind = Literal["h1", "h2", "h3", "p", "list", "table", "figure"]
MAX_TEXT = 160


@dataclass(frozen=True, slots=True)
class Block:
    kind: Kind
    text: str = ""  # heading / paragraph text; for a figure, its key (e.g. "latency:shadow")
    items: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}f}"


def p_value(p: float | None) -> str:
    return "–" if p is None else f"{p:.3g}"


def rate(ci: ProportionCI | None) -> str:
    if ci is None:
        return "–"
    return (
        f"{100 * ci.estimate:.1f} % ({ci.successes}/{ci.n}) [{100 * ci.ci_low:.1f}, {100 * ci.ci_high:.1f}]"
    )


def diff(t: TwoProportionTest | None) -> str:
    if t is None:
        return "–"
    return f"{100 * t.diff:+.1f} pp [{100 * t.ci_low:+.1f}, {100 * t.ci_high:+.1f}]"


def quantile(q: QuantileCI | None) -> str:
    return "–" if q is None else f"{num(q.estimate, 1)} [{num(q.ci_low, 1)}, {num(q.ci_high, 1)}]"


def short(text: str | None) -> str:
    if text is None:
        return "–"
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_TEXT else flat[: MAX_TEXT - 1] + "…"


def labels(buckets: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(buckets.items())) or "–"
