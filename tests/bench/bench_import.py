"""Cold import of the hook: what a prod service pays at start-up for ``import shadowlane.hook``.

Each sample is a fresh interpreter run with ``-X importtime``; its figure is the sum of the
top-level imports' cumulative times (the interpreter's own start-up is not in it). Two rows, each
alternated with its baseline (A B A B, five each), so both see the same machine:

- ``hook_import``: ``import shadowlane.hook`` against ``import asyncio, logging, json``. Target:
  the hook's median ≤ 250 ms. The hook loads its contracts (pydantic) and aiokafka in
  ``start()``, not at import.
- ``hook_import.fastapi_service``: what the README quickstart adds to a FastAPI service's own
  imports (``shadowlane.hook`` and ``shadowlane.settings``, i.e. pydantic-settings and the
  settings models), against ``import fastapi``. Reported, no target.
"""

from __future__ import annotations

import asyncio
import statistics
import sys

from tests.bench.common import BenchResult

TARGET_MS = 250.0
BASELINE = "import asyncio, logging, json"
HOOK = "import shadowlane.hook"
SERVICE = "import fastapi"
SERVICE_WITH_HOOK = "import fastapi, shadowlane.hook, shadowlane.settings"


async def import_ms(code: str) -> float:
    """Milliseconds of imports for ``code`` in a fresh interpreter, from ``-X importtime``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-c", code,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    total_us = 0
    for line in err.decode().splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if cumulative.strip().isdigit() and not name.startswith("  "):  # top level: one space
            total_us += int(cumulative)
    return total_us / 1000.0


async def _medians(a: str, b: str, rounds: int) -> tuple[float, float, list[float], list[float]]:
    first: list[float] = []
    second: list[float] = []
    for _ in range(rounds):
        first.append(await import_ms(a))
        second.append(await import_ms(b))
    return statistics.median(first), statistics.median(second), first, second


async def run(quick: bool) -> list[BenchResult]:
    rounds = 3 if quick else 5
    b, h, base, hook = await _medians(BASELINE, HOOK, rounds)
    s, sh, service, with_hook = await _medians(SERVICE, SERVICE_WITH_HOOK, rounds)
    return [
        BenchResult(
            name="hook_import",
            unit="ms (cold import, -X importtime)",
            baseline_name="asyncio+logging+json",
            baseline=round(b, 1),
            variant_name="shadowlane.hook",
            variant=round(h, 1),
            ratio=h / b,
            target=f"≤ {TARGET_MS:.0f} ms",
            passed=h <= TARGET_MS,
            higher_is_better=False,
            extra={"samples_ms": {"baseline": base, "hook": hook}},
        ),
        BenchResult(
            name="hook_import.fastapi_service",
            unit="ms (cold import, -X importtime)",
            baseline_name="fastapi",
            baseline=round(s, 1),
            variant_name="fastapi+hook+settings",
            variant=round(sh, 1),
            ratio=sh / s,
            target="reported",
            passed=True,
            higher_is_better=False,
            extra={"added_ms": round(sh - s, 1), "samples_ms": {"baseline": service, "hook": with_hook}},
        ),
    ]
