"""``shadowlane report --from TIME --to TIME --out DIR``: the promote / hold / retrain report.

Writes ``report.md``, a self-contained ``report.html`` (inline SVG plots) and ``manifest.json``
(range, topics, candidate, flag, pins seen per arm, the config that shaped the numbers, seeds and
salts, grader name and version, counts, generation time and Shadowlane version) for the shadow
comparisons of ``--candidate`` and the A/B exposures of ``--flag`` in ``[from, to)``. Exits 2
when the range mixes grader versions (see :mod:`shadowlane.report.analysis`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from shadowlane.cli.exit_codes import OPERATIONAL, operational_error, usage_error
from shadowlane.cli.times import parse_time
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.report.analysis import build_report, example_hashes
from shadowlane.report.collect import Collected, collect
from shadowlane.report.model import GraderMixError, Report, ReportInput, ReportOptions
from shadowlane.report.render_html import render_html
from shadowlane.report.render_md import iso, render_markdown
from shadowlane.report.rows import SettingsGrader
from shadowlane.settings import Settings


def add_parsers(sub: Any) -> None:
    cmd = sub.add_parser(
        "report", help="shadow + A/B report: accuracy, latency, SRM, promote / hold / retrain"
    )
    cmd.add_argument("--from", dest="start", required=True, help="now, -15m, epoch ms or ISO 8601")
    cmd.add_argument("--to", dest="end", default="now", help="end of the range (exclusive)")
    cmd.add_argument(
        "--out", type=Path, required=True, help="directory for report.md, report.html, manifest.json"
    )
    cmd.add_argument("--candidate", help="shadow candidate (default: the comparator's first candidate)")
    cmd.add_argument("--noise-floor", help="the noise-floor candidate (default: compare.baseline_candidate)")
    cmd.add_argument("--no-shadow", action="store_true", help="leave the compare topic out")
    cmd.add_argument("--flag", help="rollout flag whose A/B / canary exposures to compare")
    cmd.add_argument("--ab-weight", type=float, help="planned candidate share for SRM (default 0.5)")
    cmd.add_argument("--route-config", type=Path, help="RouteConfig (JSON / YAML) giving the flag and weight")
    cmd.add_argument("--grader", choices=("contains", "exact", "delta_s"), help="default: compare.grader")
    cmd.add_argument("--allowed-regression", type=float, default=0.02, help="accuracy δ (default 0.02)")
    cmd.add_argument("--latency-budget", type=float, default=0.15, help="p95 uplift budget (default 0.15)")
    cmd.add_argument("--min-samples", type=int, default=30, help="graded requests per arm for a verdict")
    cmd.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    cmd.add_argument("--no-answers", action="store_true", help="do not look up answer texts for examples")
    cmd.set_defaults(handler=run)


def load_route_config(path: Path) -> RouteConfig:
    try:
        return RouteConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise operational_error(f"shadowlane report: cannot use route config {path}: {exc}") from None


def planned_weight(config: RouteConfig | None, explicit: float | None) -> float:
    """The candidate share SRM tests against: ``--ab-weight``, else the config's ab / canary rules."""
    if explicit is not None:
        weight = explicit
    elif config is None:
        weight = 0.5
    else:
        weights = sorted({r.candidate_weight for r in config.rules if r.strategy in ("ab", "canary")})
        if len(weights) != 1:
            raise usage_error(
                f"shadowlane report: route config {config.flag}: {len(weights)} distinct ab / canary "
                f"weights {weights}; pass --ab-weight"
            )
        weight = weights[0]
    if not 0.0 < weight < 1.0:
        raise usage_error(f"shadowlane report: the planned candidate weight must be in (0, 1), got {weight}")
    return weight


def _version() -> str:
    try:
        return metadata.version("shadowlane")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_manifest(
    report: Report,
    settings: Settings,
    *,
    topics: list[str],
    counts: dict[str, int],
    route_config: RouteConfig | None = None,
    generated_ms: int | None = None,
) -> dict[str, Any]:
    """manifest.json: what the numbers came from (no secrets: only named, non-secret settings)."""
    c = settings.compare
    kind, _, version = (report.grader or f"{c.grader}@").partition("@")
    s, ab = report.shadow, report.ab
    pins: dict[str, Any] = {}
    if s is not None:
        pins["shadow"] = {
            "prod": list(s.prod_pins),
            "candidate": list(s.candidate_pins),
            "noise_floor": list(s.floor_pins),
        }
    if ab is not None:
        pins["ab"] = {
            arm: {"served_by": list(ab.served_by[arm]), "pins": list(ab.pins[arm])} for arm in ab.pins
        }
    return {
        "manifest_version": 1,
        "generated_at": iso(generated_ms if generated_ms is not None else time.time_ns() // 1_000_000),
        "shadowlane_version": _version(),
        "range": {
            "from_ms": report.from_ms,
            "to_ms": report.to_ms,
            "from": iso(report.from_ms),
            "to": iso(report.to_ms),
        },
        "topics": topics,
        "candidate": report.candidate,
        "noise_floor": s.noise_floor if s else None,
        "flag": report.flag,
        "grader": {"name": report.grader, "kind": kind or None, "version": version or None},
        "pins": pins,
        "config": {
            "compare": {
                "grader": c.grader,
                "solved_max_delta_s": c.solved_max_delta_s,
                "lambda_threshold": c.lambda_threshold,
                "window_s": c.window_s,
                "baseline_candidate": c.baseline_candidate,
                "candidates": list(c.candidates),
                "embedder": c.embedder,
                "embed_model": c.embed_model,
            },
            "report": asdict(report.options),
            "route_config": route_config.model_dump(mode="json") if route_config else None,
        },
        "seeds": {
            "sampling_salt": settings.hook.salt,
            "lambda_salt": settings.shadow.lambda_salt,
            "lambda_seeds": settings.shadow.lambda_seeds,
            "lambda_ratio": settings.shadow.lambda_ratio,
            "lambda_paraphrases": settings.shadow.lambda_paraphrases,
            "route_salt": route_config.salt if route_config else None,
            "epochs": list(ab.epochs) if ab else [],
        },
        "counts": {
            **counts,
            "shadow_comparisons": s.comparisons if s else 0,
            "shadow_joined": s.joined if s else 0,
            "ab_requests": sum(ab.counts.values()) if ab else 0,
        },
        "recommendation": {
            "decision": report.recommendation.decision,
            "reasons": list(report.recommendation.reasons),
        },
    }


def write_report(out: Path, report: Report, manifest: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (out / "report.html").write_text(render_html(report), encoding="utf-8")
    (out / "manifest.json").write_bytes(
        orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )


async def execute(args: argparse.Namespace, settings: Settings) -> int:
    """The command without its event loop (tests await it)."""
    start, end = parse_time(args.start), parse_time(args.end)
    if end <= start:
        raise usage_error("shadowlane report: --to must be after --from")
    c = settings.compare
    if args.grader:
        settings = settings.model_copy(update={"compare": c.model_copy(update={"grader": args.grader})})
    config = load_route_config(args.route_config) if args.route_config else None
    flag = args.flag or (config.flag if config else None)
    if config is not None and flag != config.flag:
        raise usage_error(f"shadowlane report: --flag {flag} is not the route config's flag {config.flag}")
    options = ReportOptions(
        alpha=args.alpha,
        allowed_regression=args.allowed_regression,
        latency_budget=args.latency_budget,
        min_samples=args.min_samples,
        ab_weight=planned_weight(config, args.ab_weight),
    )
    floor = args.noise_floor or c.baseline_candidate
    candidate = (
        None if args.no_shadow else args.candidate or next((x for x in c.candidates if x != floor), None)
    )

    kwargs = client_kwargs(settings, resolve_bootstrap(settings))
    try:
        await generate(
            settings, kwargs, start, end, out=args.out, candidate=candidate, noise_floor=floor, flag=flag,
            options=options, answers=not args.no_answers, route_config=config,
        )  # fmt: skip
    except GraderMixError as exc:
        print(f"shadowlane report: {exc}", file=sys.stderr)
        return OPERATIONAL
    return 0


async def generate(
    settings: Settings,
    kwargs: dict[str, Any],
    start: int,
    end: int,
    *,
    out: Path,
    candidate: str | None,
    noise_floor: str | None,
    flag: str | None,
    options: ReportOptions,
    answers: bool = True,
    route_config: RouteConfig | None = None,
) -> Report:
    """Collect, analyse and write ``out``/report.md, report.html and manifest.json; prints a one-line
    JSON summary. Raises :class:`GraderMixError` when the records mix grader versions."""

    def examples(rows: Any) -> set[str]:
        return example_hashes(ReportInput(start, end, candidate, noise_floor, flag, shadow=rows), options)

    got: Collected = await collect(
        settings,
        kwargs,
        start,
        end,
        candidate=candidate,
        noise_floor=noise_floor,
        flag=flag,
        example_hashes=examples if answers else None,
    )
    data = ReportInput(
        start, end, candidate, noise_floor, flag, shadow=got.shadow, ab=got.ab, answers=got.answers
    )
    report = build_report(data, SettingsGrader(settings.compare), options)
    manifest = build_manifest(
        report, settings, topics=got.topics, counts=got.counts, route_config=route_config
    )
    write_report(out, report, manifest)
    summary = {"out": str(out), "decision": report.recommendation.decision, **manifest["counts"]}
    print(orjson.dumps(summary).decode())
    return report


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(execute(args, settings))
