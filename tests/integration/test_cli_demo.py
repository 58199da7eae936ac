"""The CLI glue on the real broker: the demo end to end, and ``shadowlane tail``."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from shadowlane.contracts.codec import encode
from shadowlane.demo.run import DemoOptions, run_demo
from shadowlane.settings import Settings, settings_env
from tests.support.factories import envelope
from tests.support.kafka_io import produce

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
async def test_demo_compares_every_published_request(it_settings: Settings) -> None:
    settings = it_settings.model_copy(
        update={"compare": it_settings.compare.model_copy(update={"embedder": "minilm"})}
    )
    summary = await run_demo(
        settings, DemoOptions(requests=40, ab_requests=40, concurrency=4, timeout_s=180, lambda_ratio=1.0)
    )
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
    assert b["delta_s_adjusted_p95"] is not None
    assert b["lambda_sampled"] == summary["compared"]
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


async def test_tail_prints_records_as_json_lines(it_settings: Settings, kafka_kwargs: dict[str, Any]) -> None:
    envs = [envelope(i, tag="tail") for i in range(3)]
    await produce(
        kafka_kwargs, it_settings.topics.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs]
    )
    await produce(kafka_kwargs, it_settings.topics.requests_topic, [(None, b"\xffnot json")])

    async def tail(most: int) -> list[Any]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shadowlane.cli.main",
            "tail",
            "requests",
            "--from-beginning",
            "--max",
            str(most),
            "--idle-exit",
            "20",
            env={**os.environ, **settings_env(it_settings)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        return [orjson.loads(line) for line in out.splitlines()]

    assert len(await tail(1)) == 1  # --max stops inside a poll's batch of all four
    lines = await tail(4)
    assert len(lines) == 4
    decoded = [line for line in lines if isinstance(line["value"], dict) and "req_hash" in line["value"]]
    assert {line["key"] for line in decoded} == {e.req_hash for e in envs}
    assert all(line["topic"] == it_settings.topics.requests_topic for line in lines)
    assert any(line["value"] == {"_b64": "/25vdCBqc29u"} for line in lines)
