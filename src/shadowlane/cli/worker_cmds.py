"""``shadowlane topics``, ``shadowlane shadow`` and ``shadowlane compare``: the long-lived workers."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from shadowlane.cli.exit_codes import usage_error
from shadowlane.cli.help_format import add_command, setting_default
from shadowlane.cli.worker_runtime import endpoints, run_worker, serve
from shadowlane.compare.embedder import build_embedder
from shadowlane.compare.native import use_native
from shadowlane.compare.pins import check_pin_headers
from shadowlane.compare.worker import Comparator
from shadowlane.errors import ConfigError
from shadowlane.gc_tuning import tune_for_workers
from shadowlane.health import Health
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.malloc_tuning import tune_allocator
from shadowlane.metrics import MetricsServer, StatsCollector
from shadowlane.rollout.control_plane import DEFAULT_FLAG, NO_CONTROL_KEYS, ControlWatcher
from shadowlane.rollout.manifest import ManifestError, expected_pins, load_manifest
from shadowlane.settings import CompareSettings, Settings, ShadowSettings
from shadowlane.settings_names import env_name
from shadowlane.shadow.candidates import CallableCandidate, Candidate, OpenAICandidate
from shadowlane.shadow.worker import ShadowWorker

log = logging.getLogger(__name__)


def _env(section: type[BaseModel], field: str) -> str:
    """``SHADOWLANE_<SECTION>__<FIELD>`` of a field of ``ShadowSettings`` or ``CompareSettings``."""
    return env_name(Settings, (section.__name__.removesuffix("Settings").lower(), field))


def _default(section: type[BaseModel], field: str, unset: str = "none") -> str:
    """``(default: $SHADOWLANE_<SECTION>__<FIELD>, else <the model's default, or unset>)``."""
    env = _env(section, field)
    default = section.model_fields[field].get_default(call_default_factory=True)
    if isinstance(default, tuple):
        default = ",".join(default)
    return setting_default(env, default if default not in (None, "", {}) else unset)


def add_parsers(sub: Any) -> None:
    topics = add_command(
        sub,
        "topics",
        summary="create the topics (idempotent) and print their names",
        details="Creates what is missing with the configured partitions, replication and retention; "
        "checks that requests and shadow-results are co-partitioned.",
        examples=["shadowlane topics"],
    )
    topics.set_defaults(handler=run_topics)

    shadow = add_command(
        sub,
        "shadow",
        summary="run a shadow worker: replay mirrored requests to one candidate, read-only",
        details="One consumer group per candidate; members of a group share its partitions. Runs "
        "until SIGTERM / Ctrl-C, then drains and commits. Prints one JSON line when it owns "
        "partitions ({'event': 'assigned'}) and one with its counters when it stops.",
        examples=[
            "shadowlane shadow --candidate grammar-b --url http://127.0.0.1:8001/v1",
            "shadowlane shadow --candidate b --url http://b:8000/v1 --rate-cap 20 --metrics-port 9101",
            "shadowlane shadow --candidate local --callable mypkg.models:answer",
            "shadowlane shadow --candidate grammar-b --url http://b:8000/v1 --manifest flags.yml "
            "--served-model-pin MODEL_VER --served-pin-header x-index-hash=INDEX_HASH",
        ],
    )
    shadow.add_argument("--candidate", required=True, help="candidate name (also the consumer group suffix)")
    shadow.add_argument(
        "--flag",
        default=DEFAULT_FLAG,
        help="rollout flag whose kill switch pauses this worker ('*' always does)",
    )
    target = shadow.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="OpenAI-compatible base URL of the candidate")
    target.add_argument("--callable", help="module:function taking the chat body (Python candidate)")
    shadow.add_argument(
        "--model",
        help="model name sent to the candidate "
        + _default(ShadowSettings, "candidate_model", "the request's"),
    )
    shadow.add_argument(
        "--rate-cap",
        type=float,
        help="replays per second for the whole group " + _default(ShadowSettings, "rate_cap"),
    )
    shadow.add_argument(
        "--concurrency",
        type=int,
        help="in-flight replays per member " + _default(ShadowSettings, "concurrency"),
    )
    shadow.add_argument(
        "--timeout", type=float, help="seconds per candidate call " + _default(ShadowSettings, "timeout_s")
    )
    shadow.add_argument(
        "--readonly-tool",
        action="append",
        default=None,
        metavar="NAME",
        help="a tool the candidate may call (stubbed, never executed); repeatable "
        + _default(ShadowSettings, "readonly_tools"),
    )
    shadow.add_argument(
        "--tool-stub",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="the output a tool call gets when prod's is not recorded; repeatable "
        + _default(ShadowSettings, "tool_stubs"),
    )
    shadow.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="candidate version pin (model_rev, prompt_ver, ...) stamped on its results; repeatable "
        + _default(ShadowSettings, "pins"),
    )
    shadow.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="flag manifest (YAML or JSON): the versions of --flag (else of the flag whose candidate is "
        "--candidate) are expected pins; --pin wins (default: none, only --pin and the pins setting)",
    )
    shadow.add_argument(
        "--served-model-pin",
        metavar="NAME",
        help="pin name the reply's model is recorded under, checked against the expected pins "
        + _default(ShadowSettings, "served_model_pin"),
    )
    shadow.add_argument(
        "--served-pin-header",
        action="append",
        default=[],
        metavar="HEADER=NAME",
        help="response header recorded as served pin NAME (absent: a mismatch); repeatable "
        + _default(ShadowSettings, "served_pin_headers"),
    )
    _metrics_flags(shadow)
    shadow.set_defaults(handler=run_shadow)

    compare = add_command(
        sub,
        "compare",
        summary="run the comparator: join prod and shadow answers, score them, write windows",
        details="Reads requests and shadow-results, writes comparisons, window summaries and drift "
        "alerts (exactly once). Runs until SIGTERM / Ctrl-C; prints JSON event lines like shadow.",
        examples=[
            "shadowlane compare",
            "shadowlane compare --candidates grammar-b,baseline --metrics-port 9102",
            "shadowlane compare --embedder none --native-path python",
        ],
    )
    compare.add_argument(
        "--candidates",
        metavar="A,B",
        help="comma-separated candidates to expect per request " + _default(CompareSettings, "candidates"),
    )
    compare.add_argument(
        "--window",
        type=float,
        help="seconds to wait for the other side of a pair " + _default(CompareSettings, "window_s"),
    )
    compare.add_argument(
        "--embedder",
        choices=("minilm", "static", "openai", "none"),
        help="how ΔS embeds answers (none: no ΔS) " + _default(CompareSettings, "embedder"),
    )
    compare.add_argument(
        "--native-path",
        choices=("auto", "native", "python"),
        help="hot path: auto (native when shadowlane_native is installed), native, python "
        + _default(CompareSettings, "native_path"),
    )
    _metrics_flags(compare)
    compare.set_defaults(handler=run_compare)


def _metrics_flags(parser: Any) -> None:
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus /metrics, /healthz and /readyz on this port (0: any free port; default: none)",
    )
    parser.add_argument(
        "--metrics-host", default="127.0.0.1", help="address /metrics binds (0.0.0.0 in containers)"
    )


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise usage_error(f"shadowlane: {flag} expects NAME=VALUE, got {item!r}")
        out[key] = value
    return out


def _with(settings: Settings, section: str, **values: Any) -> Settings:
    present = {k: v for k, v in values.items() if v is not None}
    part = getattr(settings, section).model_copy(update=present)
    return settings.model_copy(update={section: part})


def run_topics(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> None:
        await ensure_topics(settings.topics, client_kwargs(settings, resolve_bootstrap(settings)))

    asyncio.run(go())
    for name in settings.topics.all_topics():
        print(name)
    return 0


def build_candidate(args: argparse.Namespace, settings: Settings) -> Candidate:
    """The candidate ``--url`` (with ``--model``) or ``--callable`` names, as ``settings`` shape it."""
    s = settings.shadow
    if args.url:
        return OpenAICandidate(
            args.candidate,
            args.url,
            model=args.model or s.candidate_model,
            api_key=s.candidate_api_key,
            timeout_s=s.timeout_s,
            pin_headers=s.served_pin_headers,
        )
    module, _, attr = args.callable.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    return CallableCandidate(args.candidate, fn, threads=settings.shadow.concurrency)


def shadow_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """``settings`` with the ``shadow`` command line's overrides."""
    for stub in args.tool_stub:
        orjson.loads(stub.partition("=")[2] or "null")  # fail early on invalid JSON
    return _with(
        settings,
        "shadow",
        candidate=args.candidate,
        rate_cap=args.rate_cap,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        candidate_model=args.model,
        readonly_tools=tuple(args.readonly_tool) if args.readonly_tool else None,
        tool_stubs={**settings.shadow.tool_stubs, **_pairs(args.tool_stub, "--tool-stub")} or None,
        pins={**settings.shadow.pins, **manifest_pins(args), **_pairs(args.pin, "--pin")} or None,
        served_model_pin=args.served_model_pin,
        served_pin_headers=served_pin_headers(args, settings),
    )


def served_pin_headers(args: argparse.Namespace, settings: Settings) -> dict[str, str] | None:
    """``--served-pin-header`` over the setting, held to the setting's rule (no secret-bearing
    header: settings are copied without validation here)."""
    headers = {**settings.shadow.served_pin_headers, **_pairs(args.served_pin_header, "--served-pin-header")}
    try:
        return check_pin_headers(headers) or None
    except ValueError as exc:
        raise usage_error(f"shadowlane: --served-pin-header: {exc}") from None


def manifest_pins(args: argparse.Namespace) -> dict[str, str]:
    """The expected pins ``--manifest`` declares for this candidate (:func:`expected_pins`)."""
    if args.manifest is None:
        return {}
    try:
        return expected_pins(load_manifest(args.manifest), args.flag, args.candidate)
    except ManifestError as exc:
        raise usage_error(f"shadowlane: --manifest: {exc}") from None
    except LookupError as exc:
        raise usage_error(f"shadowlane: --manifest {args.manifest}: {exc.args[0]}") from None


def kill_switch(watcher: ControlWatcher | None, flag: str) -> Callable[[], bool]:
    """Whether the worker must pause now: ``flag`` (or ``*``) killed on the control topic."""
    if watcher is None:
        return lambda: False
    return lambda: watcher.killed(flag)


def run_shadow(args: argparse.Namespace, settings: Settings) -> int:
    if settings.control.enabled and not settings.control.signing_keys:
        raise ConfigError(NO_CONTROL_KEYS)  # fail closed, before touching Kafka
    settings = shadow_settings(args, settings)

    async def go() -> None:
        kwargs = client_kwargs(settings, resolve_bootstrap(settings))
        health = Health()
        with endpoints(args, health) as metrics:
            await _work(kwargs, health, metrics)

    async def _work(kwargs: dict[str, Any], health: Health, metrics: MetricsServer | None) -> None:
        await health.first_contact(  # waits for the broker
            lambda: ensure_topics(settings.topics, kwargs), give_up_after_s=settings.shadow.startup_timeout_s
        )
        tune_for_workers()
        tune_allocator()
        # the kill switch: the control topic is followed live; while the flag (or "*") is killed
        # the worker pauses its partitions (held records replay after the release)
        watcher = None
        if settings.control.enabled:
            watcher = ControlWatcher(settings, kwargs, observer=f"shadow:{args.candidate}")
            await watcher.start()
        else:
            log.warning("control disabled (SHADOWLANE_CONTROL__ENABLED=false): no kill switch is followed")
        worker = ShadowWorker(
            settings,
            build_candidate(args, settings),
            kwargs,
            halt=kill_switch(watcher, args.flag),
            health=health,
        )
        try:
            await serve(
                worker.run,
                worker.stop,
                worker.assigned,
                worker.group_id,
                metrics,
                StatsCollector(
                    "shadowlane_shadow",
                    worker.counters,
                    gauges=worker.gauges,
                    labels={"group": worker.group_id, "candidate": worker.candidate.name},
                    labelled_counters=worker.labelled_counters,
                    known=worker.known_labels,
                    also=[worker.lag.collector(worker.group_id)]
                    + ([watcher.collector()] if watcher is not None else []),
                ),
                worker.stats.as_dict,
                drain_timeout_s=settings.shadow.drain_timeout_s,
            )
        finally:
            if watcher is not None:
                await watcher.stop()

    return run_worker("shadow", _env(ShadowSettings, "startup_timeout_s"), go)


def compare_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """``settings`` with the ``compare`` command line's overrides."""
    candidates = tuple(c for c in (args.candidates or "").split(",") if c) or None
    return _with(
        settings,
        "compare",
        candidates=candidates,
        window_s=args.window,
        embedder=args.embedder,
        native_path=args.native_path,
    )


def run_compare(args: argparse.Namespace, settings: Settings) -> int:
    settings = compare_settings(args, settings)
    use_native(settings.compare.native_path)  # a forced path that is missing: exit 2 before Kafka

    async def go() -> None:
        kwargs = client_kwargs(settings, resolve_bootstrap(settings))
        health = Health()
        with endpoints(args, health) as metrics:
            await _work(kwargs, health, metrics)

    async def _work(kwargs: dict[str, Any], health: Health, metrics: MetricsServer | None) -> None:
        await health.first_contact(  # waits for the broker
            lambda: ensure_topics(settings.topics, kwargs), give_up_after_s=settings.compare.startup_timeout_s
        )
        comparator = Comparator(
            settings, build_embedder(settings.compare, state_dir=settings.state_dir), kwargs, health=health
        )
        hot_path = "native" if comparator.builder.native else "python"  # the path that runs
        starting = {"event": "starting", "group": settings.compare.group_id, "hot_path": hot_path}
        print(orjson.dumps(starting).decode(), flush=True)
        tune_for_workers()
        tune_allocator()
        group = settings.compare.group_id

        def counters() -> dict[str, float]:
            return {
                **comparator.stats.as_dict(),
                **asdict(comparator.join.stats),
                **comparator.transaction_counters(),
                **comparator.stage.counters(),
            }

        await serve(
            comparator.run,
            comparator.stop,
            comparator.assigned,
            group,
            metrics,
            StatsCollector(
                "shadowlane_compare",
                counters,
                gauges=lambda: {
                    "pending_pairs": comparator.join.pending,
                    "open_windows": comparator.windows.open_windows,
                    "dlq_blocked_partitions": comparator.dlq_blocked_partitions,
                    **comparator.stage.gauges(),
                },
                labels={"group": group},
                also=[comparator.lag.collector(group), *comparator.metrics.collectors()],
            ),
            counters,
            drain_timeout_s=settings.compare.drain_timeout_s,
        )

    return run_worker("compare", _env(CompareSettings, "startup_timeout_s"), go)
