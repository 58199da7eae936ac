"""``shadowlane report --from TIME --to TIME --out DIR``: the promote / hold / retrain report.

Writes ``report.md``, a self-contained ``report.html`` (inline SVG plots) and ``manifest.json``
(range, topics, candidate, flag, pins seen per arm, the config that shaped the numbers, seeds and
salts, grader name and version, counts, generation time and Shadowlane version) for the shadow
comparisons of ``--candidate`` and the A/B exposures of ``--flag`` in ``[from, to)``, then a short
summary (``--json``: one JSON object). Exits 3 when the range mixes grader versions (see
:mod:`shadowlane.report.analysis`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from shadowlane.cli.exit_codes import OPERATIONAL, operational_error, usage_error
from shadowlane.cli.help_format import add_command
from shadowlane.cli.progress import Progress
from shadowlane.cli.times import add_time_range, parse_time
from shadowlane.contracts.flag_manifest import FlagManifest
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.report.analysis import build_report, embedder_mix, example_hashes
from shadowlane.report.blocks import iso
from shadowlane.report.collect import Collected, OnRecords, collect
from shadowlane.report.gates import judge_shadow
from shadowlane.report.model import GraderMixError, Report, ReportInput, ReportOptions
from shadowlane.report.render_html import render_html
from shadowlane.report.render_md import render_markdown
from shadowlane.report.rows import SettingsGrader
from shadowlane.rollout.manifest import ManifestError, load_manifest
from shadowlane.rollout.summaries import read_window_summaries
from shadowlane.settings import Settings
from shadowlane.stats.proportions import ProportionCI


def add_parsers(sub: Any) -> None:
    cmd = add_command(
        sub,
        "report",
        summary="write the promote / hold / retrain report: accuracy, latency, errors, SRM",
        details="Reads the shadow comparisons of --candidate (against prod and the noise floor) and "
        "the A/B / canary exposures of --flag in [--from, --to) and writes report.md, a "
        "self-contained report.html and manifest.json (what the numbers came from) to --out.",
        examples=[
            "shadowlane report --from -24h --out report/",
            "shadowlane report --from -7d --to now --out report/ --flag grammar_b --json",
            "shadowlane report --from -1d --out r/ --no-shadow --route-config route.yml",
        ],
        exit_codes="0 written, 3 operational (no broker, a bad route config, records mixing grader "
        "versions), 64 usage",
    )
    add_time_range(cmd)
    cmd.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="directory for report.md, report.html, manifest.json",
    )
    cmd.add_argument("--candidate", help="shadow candidate (default: the comparator's first candidate)")
    cmd.add_argument("--noise-floor", help="the noise-floor candidate (default: compare.baseline_candidate)")
    cmd.add_argument("--no-shadow", action="store_true", help="leave the compare topic out (A/B only)")
    cmd.add_argument(
        "--flag",
        help="rollout flag whose A/B / canary exposures to compare (default: the route config's, else none)",
    )
    cmd.add_argument(
        "--ab-weight",
        type=float,
        help="planned candidate share for the SRM test (default: the route config's, else 0.5)",
    )
    cmd.add_argument(
        "--route-config",
        type=Path,
        metavar="FILE",
        help="RouteConfig (JSON / YAML) giving the flag and weight (default: none)",
    )
    cmd.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="flag manifest whose gates judge the range (flag: --flag, or its only flag; default: the "
        "seed's gates)",
    )
    cmd.add_argument(
        "--grader",
        choices=("contains", "exact", "delta_s"),
        help="how answers are graded solved (default: compare.grader)",
    )
    cmd.add_argument("--allowed-regression", type=float, default=0.02, help="accuracy drop tolerated (δ)")
    cmd.add_argument("--latency-budget", type=float, default=0.15, help="p95 latency uplift tolerated")
    cmd.add_argument(
        "--min-samples", type=int, default=30, metavar="N", help="graded requests per arm for a verdict"
    )
    cmd.add_argument("--alpha", type=float, default=0.05, help="significance level")
    cmd.add_argument("--no-answers", action="store_true", help="do not look up answer texts for examples")
    cmd.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
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
        "gates": report.gates.decision.as_dict() | {"partials": report.gates.partials}
        if report.gates
        else None,
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


@dataclass(frozen=True, slots=True)
class ReportPlan:
    """What a ``report`` command line asks for, resolved against the settings (no I/O but the
    route config file)."""

    settings: Settings
    start: int
    end: int
    candidate: str | None
    noise_floor: str | None
    flag: str | None
    options: ReportOptions
    route_config: RouteConfig | None
    answers: bool
    gates: FlagManifest | None = None  # whose gates judge the range (None: the seed's)
    gate_flag: str | None = None


def plan(args: argparse.Namespace, settings: Settings, *, now_ms: int | None = None) -> ReportPlan:
    start, end = parse_time(args.start, now_ms=now_ms), parse_time(args.end, now_ms=now_ms)
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
    gates, gate_flag = _gate_manifest(args.manifest, flag) if args.manifest else (None, None)
    return ReportPlan(
        settings, start, end, candidate, floor, flag, options, config, not args.no_answers, gates, gate_flag
    )


def _gate_manifest(path: Path, flag: str | None) -> tuple[FlagManifest, str]:
    """The manifest and the flag whose gates judge the range: ``--flag``, else its only flag."""
    try:
        manifest = load_manifest(path)
    except ManifestError as exc:
        raise usage_error(f"shadowlane report: {exc}") from exc
    if flag is None and len(manifest.flags) == 1:
        flag = next(iter(manifest.flags))
    if flag is None or flag not in manifest.flags:
        known = ", ".join(sorted(manifest.flags))
        raise usage_error(
            f"shadowlane report: name the flag to judge with --flag (the manifest has: {known})"
        )
    return manifest, flag


async def execute(args: argparse.Namespace, settings: Settings) -> int:
    """The command without its event loop (tests await it)."""
    p = plan(args, settings)
    kwargs = client_kwargs(p.settings, resolve_bootstrap(p.settings))
    with Progress.for_command(as_json=args.json) as progress:
        try:
            report, manifest = await generate(
                p.settings, kwargs, p.start, p.end, out=args.out, candidate=p.candidate,
                noise_floor=p.noise_floor, flag=p.flag, options=p.options, answers=p.answers,
                route_config=p.route_config, on_records=_reading(progress), gates=p.gates,
                gate_flag=p.gate_flag,
            )  # fmt: skip
        except GraderMixError as exc:
            progress.close()
            print(f"shadowlane report: {exc}", file=sys.stderr)
            return OPERATIONAL
    if args.json:
        gates = report.gates.decision.verdict if report.gates else None
        print(orjson.dumps({"out": str(args.out), "decision": report.recommendation.decision,
                            "gates": gates, **manifest["counts"]}).decode())  # fmt: skip
    else:
        print(render_summary(report, args.out, manifest["counts"]))
    return 0


def _reading(progress: Progress) -> OnRecords:
    """Progress for collect(): one line per topic, counting its records."""
    current = {"topic": ""}

    def on_records(topic: str, n: int) -> None:
        if topic != current["topic"]:
            current["topic"] = topic
            progress.step(f"reading {topic}", unit="records")
        progress.advance(n)

    return on_records


def _pct(ci: ProportionCI | None) -> str:
    return "–" if ci is None else f"{ci.estimate:.1%}"


def render_summary(report: Report, out: Path, counts: dict[str, int]) -> str:
    """The human summary: the decision and why, the headline figures, where the files are."""
    who = report.candidate or "no shadow candidate"
    flag = f", flag {report.flag}" if report.flag else ""
    lines = [
        f"{report.recommendation.decision.upper()}: {who}{flag}, {iso(report.from_ms)} → {iso(report.to_ms)}",
        *(f"  - {reason}" for reason in report.recommendation.reasons),
    ]
    if report.gates is not None:
        d = report.gates.decision
        lines.append(f"gates ({d.flag}): {d.verdict}: {d.reason}")
    s = report.shadow
    if s is not None:
        acc, test = s.accuracy, s.accuracy.test
        diff = "" if test is None else f" (diff {test.diff:+.1%}, p = {test.p_value:.3g})"
        lines.append(
            f"shadow: {s.comparisons:,} comparisons, {s.joined:,} joined; solved prod "
            f"{_pct(acc.baseline)} → {s.candidate} {_pct(acc.candidate)}{diff}"
        )
        mix = embedder_mix(s.delta_s)
        if mix is not None:
            lines.append(f"shadow: {mix}")
    ab = report.ab
    if ab is not None:
        served = ", ".join(f"{arm} {n:,}" for arm, n in sorted(ab.counts.items()))
        srm = "MISMATCH" if ab.srm.mismatch else "ok"
        lines.append(
            f"A/B {ab.flag}: {served} requests; solved {_pct(ab.accuracy.baseline)} → "
            f"{_pct(ab.accuracy.candidate)}; sample ratio {srm} (p = {ab.srm.p_value:.3g})"
        )
    if s is None and ab is None:
        lines.append(f"no data in range ({counts.get('compare_records', 0):,} compare records read)")
    lines.append(f"written: {out / 'report.html'} (also report.md, manifest.json)")
    return "\n".join(lines)


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
    on_records: OnRecords | None = None,
    gates: FlagManifest | None = None,
    gate_flag: str | None = None,
) -> tuple[Report, dict[str, Any]]:
    """Collect, analyse and write ``out``/report.md, report.html and manifest.json; returns the
    report and its manifest. Raises :class:`GraderMixError` when the records mix grader versions."""

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
        on_records=on_records,
    )
    data = ReportInput(
        start, end, candidate, noise_floor, flag, shadow=got.shadow, ab=got.ab, answers=got.answers
    )
    report = build_report(data, SettingsGrader(settings.compare), options)
    if candidate is not None:
        records = await read_window_summaries(kwargs, settings.topics.summary_topic, start, end)
        report = replace(report, gates=judge_shadow(records, start, end, candidate, gates, gate_flag or flag))
    manifest = build_manifest(
        report, settings, topics=got.topics, counts=got.counts, route_config=route_config
    )
    write_report(out, report, manifest)
    return report, manifest


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(execute(args, settings))
