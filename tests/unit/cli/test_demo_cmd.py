"""shadowlane/cli/demo_cmd.py without a broker: each flag reaches the part of the lab it names (the
driver's concurrency and model B's errors over real HTTP, the shadow groups' rate cap, the phases'
sizes), and the summary a person reads ends with the report's path and how to look around."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx
import orjson

from shadowlane.cli import demo_cmd
from shadowlane.cli.main import build_parser
from shadowlane.demo.grammar import eval_set
from shadowlane.demo.model_server import PREFIX, model_app
from shadowlane.demo.run import DemoOptions, candidate_model, demo_settings, drive
from shadowlane.demo.serve import serve
from shadowlane.settings import Settings


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["demo", *argv])


def test_every_flag_sets_its_option_and_none_changes_the_defaults() -> None:
    assert demo_cmd.demo_options(_parse()) == DemoOptions()
    flags = ["--requests", "50", "--ab-requests", "0", "--concurrency", "2", "--candidate-error-rate", "0.5"]
    flags += ["--lambda-ratio", "1", "--rate-cap", "12.5", "--timeout", "30"]
    opts = demo_cmd.demo_options(_parse(*flags))
    assert (opts.requests, opts.ab_requests, opts.concurrency) == (50, 0, 2)
    assert (opts.candidate_error_rate, opts.lambda_ratio, opts.timeout_s) == (0.5, 1.0, 30.0)
    shaped = demo_settings(Settings(), opts)
    assert shaped.shadow.rate_cap == 12.5  # each shadow group's replays per second
    assert shaped.shadow.lambda_ratio == 1.0


async def test_concurrency_caps_the_requests_in_flight() -> None:
    in_flight, peak = 0, 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal in_flight, peak
        if scope["type"] != "http":
            return
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    server = await serve(app)
    try:
        latencies = await drive(server.url, demo_cmd.demo_options(_parse("--concurrency", "3")), n=12)
        assert len(latencies) == 12
        assert peak == 3
        await drive(server.url, demo_cmd.demo_options(_parse("--concurrency", "1")), n=4)
        assert peak == 3  # never more than asked: one at a time this round
    finally:
        await server.stop()


async def _errors(*flags: str, calls: int = 20) -> int:
    """How many of ``calls`` calls to model B fail, model B made as ``demo FLAGS`` makes it."""
    model = candidate_model(demo_cmd.demo_options(_parse(*flags)))
    server = await serve(model_app(model))
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            statuses = [
                (await client.post("/v1/chat/completions", content=orjson.dumps(
                    {"messages": [{"role": "user", "content": PREFIX + item.sentence}]}
                ))).status_code
                for item in eval_set(calls)
            ]  # fmt: skip
    finally:
        await server.stop()
    assert set(statuses) <= {200, 503}
    return statuses.count(503)


async def test_candidate_error_rate_is_the_share_of_model_b_calls_that_fail() -> None:
    assert await _errors("--candidate-error-rate", "0") == 0
    assert await _errors("--candidate-error-rate", "1") == 20
    assert 2 <= await _errors("--candidate-error-rate", "0.5") <= 18


SUMMARY: dict[str, Any] = {
    "published": 400, "replayed": 300, "compared": 300, "candidate_served": 100, "unmatched": 0,
    "missing": 0, "dead_lettered": 0, "dropped": 0, "sanitized_fields": 800, "tool_writes_blocked": 300,
    "prod_side_effects": 400, "elapsed_s": 41.2, "topics_prefix": "shadowlane.demo-0123abcd.",
    "logs": "/state/logs", "local_broker": True,
    "windows": {
        "candidates": {
            name: {
                "delta_s_median": drift, "noise_floor_median": 0.0 if name == "grammar-b" else None,
                "delta_s_excess_p95": 0.056 if name == "grammar-b" else None,
                "solved_rate": {"prod": 0.8767, "shadow": solved}, "shadow_error_rate": errors,
                "latency_ms": {"prod": {"p95_ms": 203.9}, "shadow": {"p95_ms": 1172.5}},
            }
            for name, drift, solved, errors in (
                ("baseline", 0.0, 0.8767, 0.0),
                ("grammar-b", 0.0451, 0.92, 0.02),
            )
        },
        "alerts": [],
    },
    "lab": {
        "report": "/state/demo-report/report.html", "recommendation": "hold",
        "reasons": ["shadow: latency p95 beyond the +15 % budget"],
        "ab": {"served": {"baseline": 104, "candidate": 96}, "srm_p": 0.57, "srm_mismatch": False},
    },
}  # fmt: skip


def test_the_summary_reads_as_sentences_and_ends_with_where_to_look() -> None:
    text = demo_cmd.render(SUMMARY)
    lines = text.splitlines()
    assert lines[0] == "Shadowlane demo: done in 41 s"
    assert "300 of 300 comparable requests" in text
    assert "(the 100 model B served in the A/B phase are not compared)" in text
    b = next(i for i, line in enumerate(lines) if line.startswith("  grammar-b"))
    assert "ΔS median 0.045 (noise floor 0.000, p95 above it 0.056)" in lines[b]
    assert (
        " ".join(lines[b + 1].split())
        == "solved 92.0% vs prod 87.7% · errors 2.0% · p95 1,172 ms vs prod 204 ms"
    )
    assert b < next(i for i, line in enumerate(lines) if line.startswith("  baseline"))  # the floor last
    assert "recommendation: HOLD" in lines
    assert "report: /state/demo-report/report.html" in lines
    assert "  shadowlane tail shadowlane.demo-0123abcd.compare --from-beginning --max 5" in lines
    assert lines[-1] == "  the local broker keeps running: shadowlane kafka stop"
    assert "{" not in text  # no raw dict
    assert demo_cmd.complete(SUMMARY)
    assert not demo_cmd.complete({**SUMMARY, "compared": 299})
