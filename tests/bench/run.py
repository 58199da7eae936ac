"""``python -m tests.bench.run [--quick] [--json] [--only NAME ...]``: the benchmark suite.

Runs each benchmark module against the local broker (or ``KAFKA_BOOTSTRAP_SERVERS``), prints a
table of baseline vs Shadowlane with the ratio and the target, and with ``--json`` one JSON object
per result on stdout (the table then goes to stderr). Exits 0 whatever the verdicts: these are
measurements on a shared, noisy machine, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import time

import orjson

from shadowlane.gc_tuning import tune_for_workers
from tests.bench.common import BenchResult

MODULES = {
    "hook_import": "tests.bench.bench_import",
    "hook_overhead": "tests.bench.bench_hook_overhead",
    "hook_overhead_host_gc": "tests.bench.bench_hook_overhead",
    "hook_throughput": "tests.bench.bench_hook_throughput",
    "hook_outage": "tests.bench.bench_hook_outage",
    "sanitizer": "tests.bench.bench_sanitizer",
    "shadow": "tests.bench.bench_shadow",
    "compare": "tests.bench.bench_compare",
    "compare_delta_s": "tests.bench.bench_compare_delta_s",
    "embedder": "tests.bench.bench_embedder",
    "embedder_quality": "tests.bench.bench_embedder_quality",
    "gates": "tests.bench.bench_gates",
}


def _fmt(value: float) -> str:
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def table(results: list[BenchResult]) -> str:
    rows = [("benchmark", "unit", "baseline", "shadowlane", "ratio", "target", "verdict")]
    for r in results:
        rows.append(
            (
                r.name,
                r.unit,
                f"{r.baseline_name} {_fmt(r.baseline)}",
                f"{r.variant_name} {_fmt(r.variant)}",
                f"{r.ratio:.3f}",
                r.target,
                "PASS" if r.passed else "miss",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.bench.run")
    parser.add_argument("--quick", action="store_true", help="smoke sizes: the whole suite in under a minute")
    parser.add_argument("--json", action="store_true", help="one JSON object per result on stdout")
    parser.add_argument("--only", nargs="*", choices=sorted(MODULES), help="run only these benchmarks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    out = sys.stderr if args.json else sys.stdout
    results: list[BenchResult] = []
    started = time.monotonic()
    for name in args.only or list(MODULES):
        if name == "hook_overhead_host_gc":
            if args.quick and not args.only:
                continue  # the full run repeats the hook benchmark in a GC-tuned host; quick skips it
            tune_for_workers()  # what we recommend prod hosts do at start-up (README, performance)
        module = importlib.import_module(MODULES[name])
        t0 = time.monotonic()
        got: list[BenchResult] = await module.run(args.quick)
        if name == "hook_overhead_host_gc":
            for result in got:
                result.name = result.name.replace("hook_overhead", "hook_overhead.host_gc_tuned", 1)
        print(f"# {name}: {len(got)} results in {time.monotonic() - t0:.1f}s", file=out, flush=True)
        results.extend(got)
        if args.json:
            for result in got:
                print(orjson.dumps(result.as_dict()).decode(), flush=True)
    print(table(results), file=out)
    print(f"# total {time.monotonic() - started:.1f}s ({'quick' if args.quick else 'full'})", file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
