"""Sanitizer cost per envelope: the rule set in this tree against the one of commit 47770d7.

Variant: ``Sanitizer().clean(body)`` plus ``mask_text(answer)`` for the ~1.1 KB and ~8 KB chat
envelopes of the hook benchmarks (what the envelope builder sanitizes per request), once per path:
``python`` (the slim install) and ``native`` (with the ``shadowlane_native`` extension, the
``native`` extra; skipped where it is not built). Baseline: the
same calls on the sanitizer as it was before the rule set grew from 8 key shapes to 30 rules
(commit ``BASELINE_COMMIT``, read from git in the same run and loaded as a module). Target: the
variant costs ≤ 1.3× the baseline. Without git history the row is skipped.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shadowlane.native_path import native_available
from shadowlane.sanitize import Sanitizer
from tests.bench.common import BenchResult
from tests.bench.payloads import chat_body, chat_response

BASELINE_COMMIT = "47770d7"
BASELINE_PATH = "src/shadowlane/sanitize.py"
TARGET = 1.3
ROOT = Path(__file__).resolve().parents[2]


def _baseline_sanitizer() -> Any | None:
    """The sanitizer class of ``BASELINE_COMMIT``, or None when git cannot show it."""
    try:
        source = subprocess.run(
            ["git", "show", f"{BASELINE_COMMIT}:{BASELINE_PATH}"],
            cwd=ROOT, capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(tempfile.mkdtemp()) / "baseline_sanitize.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_sanitize", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.Sanitizer


def _us_per_envelope(sanitizer: Any, items: list[tuple[dict[str, Any], str]]) -> float:
    started = time.perf_counter()
    for body, answer in items:
        sanitizer.clean(body)
        sanitizer.mask_text(answer)
    return (time.perf_counter() - started) / len(items) * 1e6


async def run(quick: bool) -> list[BenchResult]:
    baseline_type = _baseline_sanitizer()
    if baseline_type is None:
        return []
    n, rounds = (300, 3) if quick else (2_000, 7)
    paths = ["python", *(["native"] if native_available() else [])]
    results = []
    for size in ("1k", "8k"):
        items = [
            (chat_body(i, size), chat_response(i, size)["choices"][0]["message"]["content"]) for i in range(n)
        ]
        old = baseline_type()
        now = {path: Sanitizer(path=path) for path in paths}  # type: ignore[arg-type]
        base_samples: list[float] = []
        samples: dict[str, list[float]] = {path: [] for path in paths}
        for _ in range(rounds):  # A B C A B C: the machine's drift hits all
            base_samples.append(_us_per_envelope(old, items))
            for path in paths:
                samples[path].append(_us_per_envelope(now[path], items))
        base = statistics.median(base_samples)
        for path in paths:
            var = statistics.median(samples[path])
            results.append(
                BenchResult(
                    name=f"sanitizer_cost.{path}.{size}",
                    unit="µs per envelope",
                    baseline_name=f"rules of {BASELINE_COMMIT}",
                    baseline=round(base, 1),
                    variant_name=f"rules now ({path})",
                    variant=round(var, 1),
                    ratio=var / base,
                    target=f"≤ {TARGET:.1f}×",
                    passed=var / base <= TARGET,
                    higher_is_better=False,
                    extra={
                        "samples_us": {
                            "baseline": [round(x, 1) for x in base_samples],
                            "now": [round(x, 1) for x in samples[path]],
                        }
                    },
                )
            )
    return results
