"""Points in time as the CLI reads them: ``now``, ``-15m`` / ``-2h`` / ``-1d``, epoch milliseconds,
or ISO 8601 (UTC when naive). Shared by ``rescore``, ``report`` and ``gate``."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from shadowlane.cli.exit_codes import usage_error

RELATIVE_TIME = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
"""A time relative to now: ``-15m``, ``-2h``, ``-1.5d``, ``-30s``."""
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, *, now_ms: int | None = None) -> int:
    """Epoch ms from ``now``, ``-15m`` / ``-2h`` / ``-1d``, epoch milliseconds, or ISO 8601 (UTC if naive)."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    text = text.strip()
    if text == "now":
        return now
    rel = RELATIVE_TIME.match(text)
    if rel:
        return now - int(float(rel.group(1)) * _UNIT_S[rel.group(2)] * 1000)
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise usage_error(
            f"shadowlane: cannot read time {text!r}: use now, -15m, epoch ms or ISO 8601"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def add_time_range(cmd: Any, *, start_default: str | None = None) -> None:
    """``--from`` (``args.start``) and ``--to`` (``args.end``, default now, exclusive) on ``cmd``:
    a range of record times. ``start_default`` describes what a missing ``--from`` means; without
    it ``--from`` is required."""
    required = start_default is None
    cmd.add_argument(
        "--from",
        dest="start",
        required=required,
        metavar="TIME",
        help="range start: now, -15m, epoch ms or ISO 8601"
        + ("" if required else f" (default: {start_default})"),
    )
    cmd.add_argument("--to", dest="end", default="now", metavar="TIME", help="range end, exclusive")
