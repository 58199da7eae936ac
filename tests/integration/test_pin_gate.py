"""Pins are verified, not assumed, end to end on the real broker: a candidate behind a load
balancer answers 5 % of its requests from a stale replica (another model revision in ``model``,
another index revision in its header). The shadow worker, shaped by ``shadowlane shadow``'s flags
(expected pins from the flag manifest, served pins from the reply's model and a header), replays
every request against the real HTTP server; the comparator checks the pins and counts them in its
window summaries; ``shadowlane gate`` hard-stops on the manifest's default pin rule. The same run
with every replica on the pinned revisions passes."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from shadowlane.cli import worker_cmds
from shadowlane.cli.main import build_parser, main
from shadowlane.compare.worker import Comparator
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.demo.model_server import NO_SENTENCE
from shadowlane.demo.serve import serve
from shadowlane.settings import Settings, settings_env
from shadowlane.shadow.worker import ShadowWorker
from shadowlane.windows.accumulator import merge_summaries
from tests.support.factories import make_envelope
from tests.support.kafka_io import produce, read_topic
from tests.support.pinned_model import INDEX_HEADER, PinnedModel, user_number

pytestmark = pytest.mark.integration

N = 120
FLAG = "pinned_b"
VERSIONS = {"MODEL_VER": "grammar-b@v0.3.0", "INDEX_HASH": "conj-table-v1", "PROMPT_VER": "tutor-p1"}


def _stale(body: dict[str, Any]) -> bool:
    return user_number(body) % 20 == 7  # 6 of the 120 requests: 5 %


def _manifest(path: Path) -> Path:
    """A flag whose only judged gate is the error rate; the hard abort rules are the defaults (the
    seed's hard stops and pin_mismatch_rate_over 0), no soft ones (their budgets are gates set off)."""
    off = {"delta_s": {"median_max": None, "p95_max": None}, "coverage_min": None, "lambda_convergent": False,
           "latency_p95_uplift_max": None, "tool_success_min": None, "cost_uplift_max": None,
           "accuracy_drop_max": None, "error_rate_max": 0.05}  # fmt: skip
    spec = {"candidate": "cand", "versions": VERSIONS, "min_samples": 100, "gates": off,
            "abort_rules": {"soft": []},
            "traffic": {"baseline_weight": 1.0, "canary_weight": 0.0}}  # fmt: skip
    path.write_text(yaml.safe_dump({"flags": {FLAG: spec}}), encoding="utf-8")
    return path


def _envelopes() -> list[RequestEnvelope]:
    now = time.time_ns() // 1_000_000
    envs = []
    for i in range(N):
        env = make_envelope(f"pin-{i:04d}", ts_ms=now, tools=(), user_text=f"hello {i}")
        envs.append(env.model_copy(update={"prod": env.prod.model_copy(update={"answer": NO_SENTENCE})}))
    return envs


async def _pipeline(settings: Settings, kwargs: dict[str, Any], app: PinnedModel, manifest: Path) -> None:
    """Replay every request through the shadow worker the flags describe, compare, close the windows."""
    t = settings.topics
    server = await serve(app)
    argv = ["shadow", "--candidate", "cand", "--url", server.url, "--manifest", str(manifest),
            "--served-model-pin", "MODEL_VER",
            "--served-pin-header", f"{INDEX_HEADER}=INDEX_HASH"]  # fmt: skip
    args: argparse.Namespace = build_parser().parse_args(argv)
    shaped = worker_cmds.shadow_settings(args, settings)
    assert shaped.shadow.pins == VERSIONS  # the manifest's versions: the candidate's expected pins
    worker = ShadowWorker(shaped, worker_cmds.build_candidate(args, shaped), kwargs)
    comparator = Comparator(settings, None, kwargs)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(comparator.run())]
    try:
        envs = _envelopes()
        await produce(kwargs, t.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs])
        await read_topic(kwargs, t.compare_topic, want=N, timeout_s=90, settle_s=0.5, distinct_keys=True)
    finally:
        worker.stop()
        comparator.stop()  # flushes its open windows to the summary topic
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        await server.stop()


async def _gate(settings: Settings, manifest: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """``shadowlane gate`` as operators run it, with this test's settings in the environment."""
    for name in list(os.environ):
        if name.startswith(("SHADOWLANE_", "KAFKA_")):
            monkeypatch.delenv(name)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    argv = ["gate", "--manifest", str(manifest), "--flag", FLAG, "--window", "10m", "--json", "--no-audit"]
    code: int = await asyncio.to_thread(main, argv)
    return code


async def _run(
    it_settings: Settings,
    kafka_kwargs: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    app: PinnedModel,
) -> tuple[int, dict[str, Any], list[Comparison], WindowSummary]:
    manifest = _manifest(tmp_path / "flags.yml")
    await _pipeline(it_settings, kafka_kwargs, app, manifest)
    t = it_settings.topics
    comps = [
        decode(r.value, Comparison)
        for r in await read_topic(kafka_kwargs, t.compare_topic, want=N, timeout_s=30)
    ]
    summaries = [
        decode(r.value, WindowSummary)
        for r in await read_topic(kafka_kwargs, t.summary_topic, want=1, timeout_s=30, settle_s=2.0)
    ]
    merged = merge_summaries([s for s in summaries if s.candidate == "cand"])
    capsys.readouterr()
    code = await _gate(it_settings, manifest, monkeypatch)
    decision = orjson.loads(capsys.readouterr().out)
    return code, decision, comps, merged


@pytest.mark.timeout(240)
async def test_a_candidate_serving_5_percent_from_a_stale_revision_is_hard_stopped(
    it_settings: Settings,
    kafka_kwargs: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = PinnedModel(stale=_stale)
    code, decision, comps, summary = await _run(it_settings, kafka_kwargs, tmp_path, monkeypatch, capsys, app)
    assert app.stale_answers == 6  # the grammar model answers these in one call each
    stale = {f"pin-{i:04d}" for i in range(N) if i % 20 == 7}
    joined = [c for c in comps if c.outcome == "joined"]
    assert len(joined) == N
    assert {c.req_id for c in joined if c.pin_mismatch} == stale
    assert {c.pin_mismatch_keys for c in joined if c.pin_mismatch} == {("INDEX_HASH", "MODEL_VER")}
    assert all(c.pin_mismatch is False for c in joined if c.req_id not in stale)
    assert (summary.pin_checked, summary.pin_mismatches) == (N, 6)
    assert summary.pin_mismatch_rate == 0.05
    assert (code, decision["verdict"], decision["hard_stop"]) == (1, "FAIL", True)
    fired = [a for a in decision["aborts"] if a["fired"]]
    assert [(a["kind"], a["severity"], a["value"]) for a in fired] == [
        ("pin_mismatch_rate_over", "hard", 0.05)
    ]


@pytest.mark.timeout(240)
async def test_the_same_candidate_with_consistent_pins_passes(
    it_settings: Settings,
    kafka_kwargs: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = PinnedModel()
    code, decision, comps, summary = await _run(it_settings, kafka_kwargs, tmp_path, monkeypatch, capsys, app)
    assert all(c.pin_mismatch is False for c in comps if c.outcome == "joined")
    assert (summary.pin_checked, summary.pin_mismatches) == (N, 0)
    assert (code, decision["verdict"], decision["hard_stop"]) == (0, "PASS", False)
    pins = next(a for a in decision["aborts"] if a["kind"] == "pin_mismatch_rate_over")
    assert (pins["fired"], pins["value"]) == (False, 0.0)
