"""The flags of the commands that read or write Kafka, on the real broker, through the console
script itself (``main`` with the settings in the environment, or a child process): ``watch``'s
group and pace, ``rescore``'s range, files, verification and output, ``report --json``, ``gate``'s
audit, the reasons, principals and baselines the control commands record, and where and how often
the ``lag`` exporter serves."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shadowlane.cli.main import main
from shadowlane.contracts.audit import AuditEvent
from shadowlane.contracts.codec import decode, encode
from shadowlane.demo.procs import WorkerProcess
from shadowlane.settings import Settings, settings_env
from tests.support.factories import envelope, result
from tests.support.kafka_io import produce, read_topic
from tests.support.summaries import comparison, crafted_summary

pytestmark = pytest.mark.integration

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "flags" / "feature_flags.yml"
KEY = "integration-test-key-0123456789abcdef0123"


@pytest.fixture
def cli_env(it_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test's settings in this process's environment (what ``main`` reads), and returned for
    child processes."""
    env = settings_env(it_settings)
    for name in list(os.environ):
        if name.startswith(("SHADOWLANE_", "KAFKA_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **env}


async def cli(*argv: str) -> int:
    """``shadowlane ARGV`` in this process (in a thread: it runs its own event loop)."""
    code: int = await asyncio.to_thread(main, list(argv))
    return code


async def test_watch_summarises_each_interval_and_resumes_its_group(
    it_settings: Settings, kafka_kwargs: dict[str, Any], cli_env: dict[str, str]
) -> None:
    rng = random.Random(1)
    comps = [comparison(i, rng, candidate="cand") for i in range(6)]
    await produce(
        kafka_kwargs, it_settings.topics.compare_topic, [(c.req_hash.encode(), encode(c)) for c in comps]
    )

    async def watch(group: str, duration: str) -> list[str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shadowlane.cli.main", "watch", "--group", group, "--every", "1",
            "--duration", duration, env=cli_env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode == 0, err.decode()
        return out.decode().splitlines()

    group = f"{it_settings.topics.prefix}watch"
    lines = await watch(group, "10")
    assert lines
    assert all(line.startswith("cand: ") for line in lines), lines
    assert lines[-1].startswith("cand: 6 compared")
    assert 3 <= len(lines) <= 11  # one a second (--every 1), once the group has its partitions
    admin = AIOKafkaAdminClient(**kafka_kwargs)
    await admin.start()
    try:
        assert group in {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    again, other = await asyncio.gather(watch(group, "8"), watch(f"{group}-2", "8"))
    assert again == []  # the same --group resumes after what it read: nothing new
    assert other[-1].startswith("cand: 6 compared")  # another group reads it all


async def test_rescore_reads_its_range_writes_out_and_verifies(
    it_settings: Settings,
    kafka_kwargs: dict[str, Any],
    cli_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    t = it_settings.topics
    envs = [envelope(i, tag="rescore") for i in range(5)]
    await produce(kafka_kwargs, t.requests_topic, [(e.req_hash.encode(), encode(e)) for e in envs])
    await produce(
        kafka_kwargs, t.shadow_results_topic, [(e.req_hash.encode(), encode(result(e))) for e in envs]
    )
    start, end = min(e.ts_ms for e in envs) - 1_000, time.time_ns() // 1_000_000 + 1_000
    out = tmp_path / "rescored"
    span = ["--from", str(start), "--to", str(end)]
    # no comparator ran: the compare topic lacks all five, so --verify finds a difference
    assert await cli("rescore", *span, "--out", str(out), "--verify", "--json") == 1
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1
    summary = orjson.loads(printed[0])
    assert (summary["records"], summary["comparisons"], summary["out"]) == (10, 5, str(out))
    assert summary["verify"]["missing_live"] == 5
    assert len((out / "comparisons.jsonl").read_bytes().splitlines()) == 5
    assert {p.name for p in out.iterdir()} == {"comparisons.jsonl", "summaries.jsonl", "alerts.jsonl"}
    # an hour before the records: nothing read; no --verify: exit 0; no --json: the summary
    assert await cli("rescore", "--from", str(start - 3_600_000), "--to", str(start - 1_800_000)) == 0
    text = capsys.readouterr().out
    assert text.startswith("rescored ")
    assert "records read      0 (0 undecodable)" in text


async def test_report_json_is_one_object_and_the_files_are_written(
    it_settings: Settings,
    kafka_kwargs: dict[str, Any],
    cli_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "report"
    assert await cli("report", "--from", "-10m", "--out", str(out), "--candidate", "cand", "--json") == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1
    summary = orjson.loads(printed[0])
    assert summary["out"] == str(out)
    assert summary["decision"] in ("promote", "hold", "retrain")
    assert {"report.md", "report.html", "manifest.json"} <= {p.name for p in out.iterdir()}


async def test_gate_audits_who_asked_unless_told_not_to(
    it_settings: Settings,
    kafka_kwargs: dict[str, Any],
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = time.time_ns() // 1_000_000
    windows = [
        crafted_summary("grammar-b", now - (i + 1) * 60_000, now - i * 60_000, 300, seed=i) for i in range(3)
    ]
    await produce(
        kafka_kwargs, it_settings.topics.summary_topic, [(b"grammar-b", encode(w)) for w in windows]
    )
    gate = ["gate", "--manifest", str(MANIFEST), "--flag", "grammar_b", "--window", "10m", "--json"]
    code = await cli(*gate, "--who", "carol")
    decision = orjson.loads(capsys.readouterr().out)
    assert (decision["candidate"], decision["partials"]) == ("grammar-b", 3)
    assert code == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 2}[decision["verdict"]]
    assert await cli(*gate, "--no-audit") == code
    records = await read_topic(kafka_kwargs, it_settings.topics.audit_topic, want=1, timeout_s=15, settle_s=2)
    events = [decode(r.value, AuditEvent) for r in records]
    assert [(e.what, e.who, e.name) for e in events] == [("gate_decision", "carol", "grammar_b")]


async def test_control_commands_record_who_why_and_what_they_changed(
    it_settings: Settings,
    kafka_kwargs: dict[str, Any],
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SHADOWLANE_CONTROL__ENABLED", "true")
    monkeypatch.setenv("SHADOWLANE_CONTROL__SIGNING_KEYS", orjson.dumps({"it": KEY}).decode())

    async def published(*argv: str) -> dict[str, Any]:
        assert await cli(*argv) == 0
        line: dict[str, Any] = orjson.loads(capsys.readouterr().out)
        return line

    on = await published(
        "shadow-on", "grammar-a", "grammar-b", "--flag", "lab", "--endpoint", "/v1/lab", "--ratio", "0.25",
        "--who", "dave", "--why", "EXP-7",
    )  # fmt: skip
    assert (on["key"], on["who"], on["why"]) == ("route_config:lab", "dave", "EXP-7")
    rule = on["payload"]["rules"][0]
    assert (rule["strategy"], rule["baseline"], rule["candidate"]) == ("shadow", "grammar-a", "grammar-b")
    assert (rule["scope"]["endpoints"], rule["shadow_ratio"]) == (["/v1/lab"], 0.25)
    off = await published(
        "shadow-off", "--flag", "lab", "--endpoint", "/v1/lab", "--who", "erin", "--why", "done"
    )
    assert (off["who"], off["why"], off["payload"]["rules"][0]["strategy"]) == ("erin", "done", "off")
    assert off["payload"]["rules"][0]["scope"]["endpoints"] == ["/v1/lab"]
    assert off["payload"]["baseline"] == "grammar-a"  # the config's baseline stays
    fresh = await published("shadow-off", "--flag", "fresh", "--prod", "grammar-z")
    assert fresh["payload"]["baseline"] == "grammar-z"  # --prod: the baseline of a flag without a config
    assert fresh["payload"]["rules"][0]["scope"]["endpoints"] == [it_settings.hook.endpoint_paths[0]]
    assert fresh["why"] == "shadowlane shadow-off (no reason given)"
    killed = await published("kill", "--flag", "lab", "--who", "carol", "--why", "INC-9")
    assert (killed["key"], killed["who"], killed["why"]) == ("kill_switch:lab", "carol", "INC-9")
    assert killed["payload"] == {"engaged": True}
    released = await published("kill", "--flag", "lab", "--release")
    assert released["payload"] == {"engaged": False}
    assert released["why"] == "shadowlane kill --release (no reason given)"
    everything = await published("kill")
    assert everything["key"] == "kill_switch:*"  # the default --flag: every flag


async def test_lag_exporter_binds_host_and_refreshes_every_interval(
    it_settings: Settings, kafka_kwargs: dict[str, Any]
) -> None:
    exporter = await WorkerProcess.start(
        it_settings, "lag", "--serve", "0", "--host", "127.0.0.2", "--interval", "0.5"
    )
    try:
        port = (await exporter.wait_event("serving", timeout_s=60))["port"]
        stamp = "shadowlane_lag_exporter_last_success_timestamp_seconds "
        seen: set[float] = set()
        async with httpx.AsyncClient(timeout=5) as client:
            deadline = time.monotonic() + 30
            while len(seen) < 3 and time.monotonic() < deadline:
                text = (await client.get(f"http://127.0.0.2:{port}/metrics")).text
                seen |= {float(line[len(stamp) :]) for line in text.splitlines() if line.startswith(stamp)}
                await asyncio.sleep(0.2)
            with pytest.raises(httpx.ConnectError):  # bound to --host only
                await client.get(f"http://127.0.0.1:{port}/metrics")
        assert len(seen - {0.0}) >= 2  # refreshed again and again, every half second
    finally:
        await exporter.kill()
