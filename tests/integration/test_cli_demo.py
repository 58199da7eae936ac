"""The CLI glue on the real broker, through the console script: the demo end to end (its JSON,
its quiet console, its summary, its timeout), and ``shadowlane tail``."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from shadowlane.cli.demo_cmd import render
from shadowlane.contracts.codec import encode
from shadowlane.settings import Settings, settings_env
from tests.support.factories import envelope
from tests.support.kafka_io import produce

pytestmark = pytest.mark.integration


async def _run(*argv: str, settings: Settings, timeout_s: float) -> tuple[int, str, str]:
    """``shadowlane ARGV`` as a child process with ``settings``: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowlane.cli.main", *argv,
        env={**os.environ, **settings_env(settings)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.timeout(300)
async def test_demo_compares_every_published_request(it_settings: Settings) -> None:
    settings = it_settings.model_copy(
        update={"compare": it_settings.compare.model_copy(update={"embedder": "minilm"})}
    )
    code, out, err = await _run(
        "demo", "--requests", "40", "--ab-requests", "40", "--concurrency", "4", "--timeout", "180",
        "--lambda-ratio", "1", "--json", settings=settings, timeout_s=280,
    )  # fmt: skip
    assert code == 0, err
    # the console stays quiet: no progress off a terminal, and none of aiokafka's transient errors
    # while the run's topics get their leaders
    assert not [line for line in err.splitlines() if "ERROR" in line or "Traceback" in line], err
    assert out.count("\n") == 1  # --json: one JSON object, one line
    summary = orjson.loads(out)
    # the lab: 40 shadow requests, then 40 A/B ones, all published; the ones model B served are
    # exposure records for the report, and neither replayed nor compared
    lab = summary["lab"]
    served = lab["ab"]["served"]
    assert sum(served.values()) == 40
    assert summary["published"] == 80
    assert summary["candidate_served"] == served["candidate"] > 0
    assert summary["compared"] == summary["published"] - served["candidate"]
    assert summary["unmatched"] == 0
    assert summary["tool_writes_blocked"] == summary["compared"]
    assert summary["sanitized_fields"] == 160
    assert summary["delta_s_median"] is not None
    assert summary["latency_p95_ms"]["prod"] is not None
    assert summary["latency_p95_ms"]["shadow"] is not None
    windows = summary["windows"]["candidates"]
    assert set(windows) == {"grammar-b", "baseline"}  # the candidate and the noise floor
    b = windows["grammar-b"]
    assert b["count"] == windows["baseline"]["count"] == summary["compared"]
    assert b["noise_floor_median"] is not None
    assert b["delta_s_excess_p95"] is not None
    assert b["lambda_sampled"] == summary["compared"]  # --lambda-ratio 1: every request
    assert b["lambda_flip_rate"] is not None
    assert b["tool_success_rate"] == 1.0
    assert b["coverage_mean"] is not None
    assert b["solved_rate"]["shadow"] is not None
    assert b["cost_uplift"] is not None
    # the lab's report: written, with its recommendation and the A/B split checked for SRM
    assert lab["recommendation"] in ("promote", "hold", "retrain")
    assert lab["reasons"]
    assert lab["shadow"]["joined"] == summary["compared"]
    assert lab["ab"]["srm_p"] is not None
    report = Path(lab["report"])
    files = {p.name: p.read_bytes() for p in report.parent.iterdir()}
    assert {"report.md", "report.html", "manifest.json"} <= set(files)
    assert b"<svg" in files["report.html"]
    # the summary a person reads is made of these figures and ends where to look
    text = render(summary)
    assert f"report: {lab['report']}" in text.splitlines()
    assert f"shadowlane tail {summary['topics_prefix']}compare" in text


@pytest.mark.timeout(120)
async def test_demo_timeout_ends_it_with_one_line_naming_the_logs(it_settings: Settings) -> None:
    code, out, err = await _run(
        "demo",
        "--requests",
        "1",
        "--ab-requests",
        "0",
        "--timeout",
        "0.5",
        settings=it_settings,
        timeout_s=110,
    )
    assert code == 3
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("shadowlane demo: the shadow workers and the comparator did not get their ")
    assert "within 0.5 s (--timeout); their logs: " in lines[0]


async def test_tail_prints_records_as_json_lines(it_settings: Settings, kafka_kwargs: dict[str, Any]) -> None:
    envs = [envelope(i, tag="tail") for i in range(3)]
    await produce(
        kafka_kwargs, it_settings.topics.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs]
    )
    await produce(kafka_kwargs, it_settings.topics.requests_topic, [(None, b"\xffnot json")])

    async def tail(*argv: str) -> list[Any]:
        code, out, err = await _run("tail", "requests", *argv, settings=it_settings, timeout_s=60)
        assert code == 0, err
        return [orjson.loads(line) for line in out.splitlines()]

    everything = ["--from-beginning", "--idle-exit", "20"]
    assert len(await tail(*everything, "--max", "1")) == 1  # --max stops inside a poll's batch of all four
    lines = await tail(*everything, "--max", "4")
    assert len(lines) == 4
    decoded = [line for line in lines if isinstance(line["value"], dict) and "req_hash" in line["value"]]
    assert {line["key"] for line in decoded} == {e.req_hash for e in envs}
    assert all(line["topic"] == it_settings.topics.requests_topic for line in lines)
    assert any(line["value"] == {"_b64": "/25vdCBqc29u"} for line in lines)
    # without --from-beginning only new records count, and --idle-exit ends the wait for them
    began = time.monotonic()
    assert await tail("--idle-exit", "1") == []
    assert time.monotonic() - began < 30
