"""``shadowlane demo``: the whole pipeline on the embedded default, end to end, in one process.

Local broker (started if needed) → a prod grammar-tutor service on real HTTP with the mirroring
middleware → requests topic → two shadow groups: candidate B, and ``baseline`` (prod's model A
again, the noise floor), both with read-only tools and λ replays for a share of requests →
shadow-results → comparator → compare and summary topics, which the demo reads back to print
its summary. Each run uses its own topic prefix so runs never mix. A :class:`Progress` follows the
phases (broker, topics, workers, traffic, comparisons, report) on a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shadowlane.cli.progress import Progress
from shadowlane.cli.report_cmd import generate
from shadowlane.contracts.codec import DecodeError, decode
from shadowlane.contracts.comparison import Comparison
from shadowlane.demo.grammar import eval_set
from shadowlane.demo.lab import ENDPOINT, FLAG, LabControl, lab_summary, with_demo_key
from shadowlane.demo.model_server import AGENT_PREFIX, AGENT_TOOLS, PREFIX, TOOLS, ModelBehaviour, model_app
from shadowlane.demo.procs import WorkerProcess
from shadowlane.demo.prod_service import Gradebook, prod_app
from shadowlane.demo.rag import RAG_PREFIXES, retrieval_summary
from shadowlane.demo.serve import serve
from shadowlane.demo.window_report import window_report
from shadowlane.errors import ShadowlaneError
from shadowlane.hook.asgi import ShadowMirrorMiddleware
from shadowlane.hook.publisher import ShadowPublisher
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.bootstrap import client_kwargs, configured_bootstrap
from shadowlane.kafka.local import LocalKafka
from shadowlane.report.model import ReportOptions
from shadowlane.rollout.control_plane import MirrorGate
from shadowlane.rollout.router import assign
from shadowlane.settings import ModelPrice, Settings
from shadowlane.stats.quantiles import quantile

PROD_PINS = {"model_rev": "grammar-a@v0.1.0", "prompt_ver": "tutor-p1", "index_hash": "conj-table-v1"}
CANDIDATE_PINS = {"model_rev": "grammar-b@v0.3.0", "prompt_ver": "tutor-p1", "index_hash": "conj-table-v1"}
PRICES = {
    "grammar-a": ModelPrice(input_per_mtok=0.50, output_per_mtok=1.50),
    "grammar-b": ModelPrice(input_per_mtok=0.80, output_per_mtok=2.40),
}


class DemoError(ShadowlaneError):
    """The demo could not run: a worker that did not start, or ``timeout_s`` reached."""


@dataclass(frozen=True)
class DemoOptions:
    requests: int = 200  # the lab's shadow phase
    ab_requests: int = 200  # then its A/B phase (0: shadow only)
    concurrency: int = 4
    prod_latency_ms: float = 20.0
    candidate_latency_ms: float = 30.0
    candidate_error_rate: float = 0.02
    prod_variability: float = 0.3
    candidate_variability: float = 0.3
    candidate_unstable: float = 0.05
    agent_every: int = 5  # every 5th shadow-phase request is the agent scenario (0: none)
    candidate_agent_slip: float = 0.35  # B's agent runs that ask step 2 for the wrong tense
    rag_every: int = 3  # every 3rd other shadow-phase request asks which rule applies (0: none)
    candidate_retrieval_slip: float = 0.15  # B's retriever: question wordings it answers off topic
    lambda_ratio: float = 0.25
    rate_cap: float = 80.0
    timeout_s: float = 180.0
    window_s: float = 60.0


def demo_settings(base: Settings, opts: DemoOptions) -> Settings:
    run_id = uuid.uuid4().hex[:8]
    return base.model_copy(
        update={
            "topics": base.topics.model_copy(update={"prefix": f"shadowlane.demo-{run_id}."}),
            "shadow": base.shadow.model_copy(
                update={
                    "candidate": "grammar-b",
                    "rate_cap": opts.rate_cap,
                    "concurrency": 16,
                    "readonly_tools": ("lookup_conjugation", "find_examples"),
                    "group_prefix": f"shadowlane.demo-{run_id}.shadow.",
                    "lambda_ratio": opts.lambda_ratio,
                }
            ),
            "compare": base.compare.model_copy(
                update={
                    "candidates": ("grammar-b", "baseline"),
                    "baseline_candidate": "baseline",
                    "window_s": opts.window_s,
                    "group_id": f"shadowlane.demo-{run_id}.compare",
                    "prices": PRICES,
                }
            ),
        }
    )


def _p95_ms(values: list[float]) -> float | None:
    p95 = quantile(values, 0.95)
    return None if p95 is None else round(p95, 3)


def _quantile(values: list[float], q: float) -> float | None:
    value = quantile(values, q)
    return None if value is None else round(value, 4)


def agent_summary(joined: list[Comparison]) -> dict[str, Any]:
    """The candidate's agent runs (finished replays with tool steps) and their first divergences,
    most common first, as ``"step <n> <kind> [<tool>]": count``."""
    runs = [c for c in joined if c.prod_steps is not None and c.shadow_status == "ok"]
    first = Counter(
        " ".join(str(x) for x in ("step", c.first_divergent_step, c.divergence_kind, c.divergence_tool) if x)
        for c in runs
        if c.first_divergent_step is not None
    )
    return {
        "runs": len(runs),
        "multi_step_runs": sum(1 for c in runs if (c.prod_steps or 0) >= 3),
        "diverged": sum(first.values()),
        "first_divergences": dict(first.most_common()),
    }


def candidate_model(opts: DemoOptions) -> ModelBehaviour:
    """Model B, the candidate: knows the conjugation table, slower, fails ``candidate_error_rate``."""
    return ModelBehaviour(
        "grammar-b",
        skill=1.0,
        latency_ms=opts.candidate_latency_ms,
        error_rate=opts.candidate_error_rate,
        seed=7,
        variability=opts.candidate_variability,
        unstable=opts.candidate_unstable,
        agent_slip=opts.candidate_agent_slip,
        retrieval_slip=opts.candidate_retrieval_slip,
    )


async def drive(
    url: str,
    opts: DemoOptions,
    *,
    n: int,
    offset: int = 0,
    tag: str = "demo",
    on_answer: Callable[[], None] | None = None,
    agent_every: int = 0,
    rag_every: int = 0,
) -> list[float]:
    """Send ``n`` eval requests to the prod service, ``opts.concurrency`` at a time; their latencies.
    With ``agent_every`` > 0 every ``agent_every``-th request (``i % agent_every == agent_every - 1``)
    is the agent scenario: :data:`AGENT_PREFIX` and :data:`AGENT_TOOLS`; with ``rag_every`` > 0 every
    other request with ``i % rag_every == 0`` asks which rule applies (the RAG scenario)."""
    items = eval_set(offset + n)[offset:]
    sem = asyncio.Semaphore(opts.concurrency)
    latencies: list[float] = []

    async def one(client: httpx.AsyncClient, i: int) -> None:
        item = items[i]
        agent = agent_every > 0 and i % agent_every == agent_every - 1
        rag = not agent and rag_every > 0 and i % rag_every == 0  # the RAG scenario (demo.rag)
        ask = AGENT_PREFIX if agent else RAG_PREFIXES[0] if rag else PREFIX
        body = {
            "model": "grammar-tutor",
            "messages": [
                {
                    "role": "system",
                    "content": f"You are a grammar tutor for student s{i % 40:03d}. "
                    f"Reports go to parent{i % 40}@example.org, phone +1 415 555 {i % 10000:04d}.",
                },
                {"role": "user", "content": ask + item.sentence},
            ],
            "tools": AGENT_TOOLS if agent else TOOLS,
            "temperature": 0,
        }
        async with sem:
            started = time.perf_counter()
            resp = await client.post(
                "/v1/chat/completions",
                json=body,
                headers={
                    "x-request-id": f"{tag}-{offset + i:06d}",
                    "x-eval-gold": item.correct,  # eval traffic: the tutor's gold answer
                    "authorization": "Bearer sk-demo-secret-0123456789",
                },
            )
            latencies.append((time.perf_counter() - started) * 1000)
            if on_answer is not None:
                on_answer()
            if resp.status_code >= 500 and tag == "demo":
                resp.raise_for_status()  # phase 1: model A serves and never fails
            # in the A/B phase model B's injected errors reach users: the report counts them

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(one(client, i) for i in range(n)))
    return latencies


async def _collect(
    settings: Settings,
    kwargs: dict[str, Any],
    want: int,
    deadline: float,
    on_new: Callable[[int], None] | None = None,
) -> list[Comparison]:
    consumer = AIOKafkaConsumer(
        settings.topics.compare_topic,
        **kwargs,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    seen: dict[str, Comparison] = {}
    try:
        while len(seen) < want and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            before = len(seen)
            for records in batches.values():
                for record in records:
                    with contextlib.suppress(DecodeError):
                        c = decode(record.value, Comparison)
                        seen[c.comparison_id] = c
            if on_new is not None and len(seen) > before:
                on_new(len(seen) - before)
    finally:
        await consumer.stop()
    return list(seen.values())


async def run_demo(base: Settings, opts: DemoOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Run the lab end to end; the summary (``shadowlane demo --json`` prints it)."""
    show = progress if progress is not None else Progress.silent()
    settings, secret_env = with_demo_key(demo_settings(base, opts))
    # the demo is one of the two commands that may start the local broker (`kafka start` the other)
    bootstrap = configured_bootstrap(settings)
    local_broker = bootstrap is None
    if bootstrap is None:
        show.step("starting the local Kafka broker (the first run fetches its jars)")
        bootstrap = await asyncio.to_thread(LocalKafka.from_settings(settings).start)
    kwargs = client_kwargs(settings, bootstrap)
    show.step(f"creating the topics {settings.topics.prefix}*")
    await ensure_topics(settings.topics, kwargs)
    model_a = ModelBehaviour(
        "grammar-a", skill=0.4, latency_ms=opts.prod_latency_ms, variability=opts.prod_variability
    )
    model_b = candidate_model(opts)
    gradebook = Gradebook()
    servers = [await serve(model_app(model_a)), await serve(model_app(model_b))]
    lab = LabControl(settings, kwargs)
    await lab.start()
    publisher = ShadowPublisher(
        settings.hook,
        topic=settings.topics.requests_topic,
        producer_factory=lambda: AIOKafkaProducer(**kwargs, acks="all", linger_ms=5),
        pins=PROD_PINS,
        gate=MirrorGate(lab.watcher, FLAG),
    )
    await publisher.start()
    targets = {"grammar-a": servers[0].url, "grammar-b": servers[1].url}
    served_pins = {"grammar-a": PROD_PINS, "grammar-b": CANDIDATE_PINS}
    app = prod_app(servers[0].url, gradebook, targets=targets, target_pins=served_pins, route=lab.route)
    servers.append(await serve(ShadowMirrorMiddleware(app, publisher)))
    logs = settings.state_dir / "logs"
    pins = [arg for key, value in CANDIDATE_PINS.items() for arg in ("--pin", f"{key}={value}")]
    worker = await WorkerProcess.start(
        settings, "shadow", "--candidate", "grammar-b", "--url", servers[1].url, *pins,
        log_path=logs / "demo-shadow.log", secrets=secret_env,
    )  # fmt: skip
    # the noise floor: prod's model A replayed through the same shadow path (its pins are prod's)
    baseline = await WorkerProcess.start(
        settings, "shadow", "--candidate", "baseline", "--url", servers[0].url,
        log_path=logs / "demo-baseline.log", secrets=secret_env,
    )  # fmt: skip
    comparator = await WorkerProcess.start(
        settings, "compare", log_path=logs / "demo-compare.log", secrets=secret_env
    )
    started = time.monotonic()
    lab_start = time.time_ns() // 1_000_000
    candidate_served = 0
    worker_stats: dict[str, Any] = {}
    compare_stats: dict[str, Any] = {}
    try:
        show.step("starting two shadow workers and the comparator")
        ready = (
            worker.wait_event("assigned"),
            baseline.wait_event("assigned"),
            comparator.wait_event("assigned"),
            publisher.connected.wait(),
        )
        try:
            await asyncio.wait_for(asyncio.gather(*ready), opts.timeout_s)
        except TimeoutError:
            raise DemoError(
                f"the shadow workers and the comparator did not get their partitions within "
                f"{opts.timeout_s:g} s (--timeout); their logs: {logs}/demo-*.log"
            ) from None
        except RuntimeError as exc:  # a worker process that exited before it got partitions
            raise DemoError(
                f"{exc} (a shadow worker or the comparator); their logs: {logs}/demo-*.log"
            ) from None
        await lab.enter("shadow")  # phase 1: model A serves, every request mirrored to B
        show.step(
            "shadow phase: model A serves, B and the baseline replay", total=opts.requests, unit="requests"
        )
        user_latencies = await drive(
            servers[2].url, opts, n=opts.requests, on_answer=show.advance, agent_every=opts.agent_every,
            rag_every=opts.rag_every,
        )  # fmt: skip
        if opts.ab_requests:
            ab_config = await lab.enter("ab")  # phase 2: half the requests served by B (sticky by request id)
            # the router is a pure function: which arm served each request is known ahead
            ids = [f"lab-ab-{opts.requests + i:06d}" for i in range(opts.ab_requests)]
            candidate_served = sum(
                assign(rid, ab_config, endpoint=ENDPOINT).arm == "candidate" for rid in ids
            )
            show.step("A/B phase: half the users get model B", total=opts.ab_requests, unit="requests")
            user_latencies += await drive(
                servers[2].url, opts, n=opts.ab_requests, offset=opts.requests, tag="lab-ab",
                on_answer=show.advance,
            )  # fmt: skip
        await publisher.stop(drain_timeout_s=30)
        published = publisher.stats.published
        want = (published - candidate_served) * len(settings.compare.candidates)
        show.step("waiting for the comparisons", total=want, unit="comparisons")
        comparisons = await _collect(settings, kwargs, want, started + opts.timeout_s, on_new=show.advance)
        show.step("stopping the workers (they flush their open windows)")
    finally:
        with contextlib.suppress(Exception):
            worker_stats = await worker.terminate()
        with contextlib.suppress(Exception):
            await baseline.terminate()
        with contextlib.suppress(Exception):
            compare_stats = await comparator.terminate()  # flushes the open windows
        for proc in (worker, baseline, comparator):
            await proc.kill()
        await publisher.stop()
        await lab.stop()
        for server in reversed(servers):
            await server.stop()
    show.step("reading the window summaries")
    windows = await window_report(settings, kwargs)
    report_dir = settings.state_dir / "demo-report"
    show.step("writing the report")
    report, _ = await generate(
        settings, kwargs, lab_start, time.time_ns() // 1_000_000 + 1, out=report_dir,
        candidate="grammar-b", noise_floor="baseline", flag=FLAG, options=ReportOptions(ab_weight=0.5),
        route_config=lab.route(),
    )  # fmt: skip
    everything = comparisons
    comparisons = [c for c in everything if c.candidate == "grammar-b"]
    joined = [c for c in comparisons if c.complete]
    drift = [c.delta_s for c in joined if c.delta_s is not None]
    diff = [c.delta_s for c in joined if c.delta_s is not None and not c.exact_match]
    return {
        "published": published,
        "replayed": worker_stats.get("replayed", 0),
        "compared": len(joined),
        "candidate_served": candidate_served,
        "unmatched": len(comparisons) - len(joined),
        "missing": max(
            0, (published - candidate_served) * len(settings.compare.candidates) - len(everything)
        ),
        "dead_lettered": worker_stats.get("dead_lettered", 0) + compare_stats.get("dead_lettered", 0),
        "dropped": publisher.stats.dropped_queue_full
        + publisher.stats.dropped_invalid
        + publisher.stats.send_failed,
        "sanitized_fields": publisher.stats.sanitized_fields,
        "tool_writes_blocked": sum(c.tools_blocked for c in joined),
        "tool_calls_stubbed": sum(c.tools_stubbed for c in joined),
        "prod_side_effects": len(gradebook.writes),
        "shadow_errors": sum(1 for c in joined if c.shadow_status != "ok"),
        "exact_match_rate": round(sum(1 for c in joined if c.exact_match) / len(joined), 4)
        if joined
        else None,
        "delta_s_median": _quantile(drift, 0.5),
        "delta_s_p95": _quantile(drift, 0.95),
        "delta_s_median_when_different": _quantile(diff, 0.5),
        "latency_p95_ms": {
            "prod": _p95_ms([c.prod_latency_ms for c in joined if c.prod_latency_ms is not None]),
            "shadow": _p95_ms([c.shadow_latency_ms for c in joined if c.shadow_latency_ms is not None]),
            "client": _p95_ms(user_latencies),
        },
        "agent": agent_summary(joined),
        "retrieval": retrieval_summary(joined),
        "windows": windows,
        "route_skipped": publisher.stats.route_skipped,
        "lab": lab_summary(report, report_dir),
        "topics_prefix": settings.topics.prefix,
        "bootstrap": bootstrap,
        "local_broker": local_broker,
        "logs": str(logs),
        "elapsed_s": round(time.monotonic() - started, 2),
    }
