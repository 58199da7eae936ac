"""shadowlane/cli/worker_cmds.py: a shadow worker that follows the control topic refuses to start
without a signing key (fail closed, before touching Kafka); running without control is explicit.
Each flag of ``shadow`` and ``compare`` reaches what its help says: the worker's settings, the
candidate it calls (over real HTTP), the kill switch it obeys, the address /metrics binds."""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from shadowlane.cli import worker_cmds, worker_runtime
from shadowlane.cli.main import build_parser, main
from shadowlane.compare.embedder import build_embedder
from shadowlane.contracts.codec import encode
from shadowlane.contracts.control import KillSwitch
from shadowlane.demo.serve import RunningServer, serve
from shadowlane.health import Health
from shadowlane.rollout.control_plane import NO_CONTROL_KEYS, ControlWatcher
from shadowlane.rollout.signing import sign
from shadowlane.settings import ControlSettings, Settings
from shadowlane.shadow.candidates import CandidateError
from shadowlane.shadow.worker import ShadowWorker

ARGS = ["shadow", "--candidate", "cand", "--url", "http://127.0.0.1:9/v1"]
KEY = SecretStr("unit-test-key-0123456789abcdef0123456789")


@pytest.fixture(autouse=True)
def _no_keys_no_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in (
        "SHADOWLANE_CONTROL__SIGNING_KEYS",
        "SHADOWLANE_CONTROL__ENABLED",
        "KAFKA_BOOTSTRAP_SERVERS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHADOWLANE_HOME", str(tmp_path))


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_without_a_signing_key_the_worker_refuses_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(ARGS) == 3  # operational: bad configuration
    err = capsys.readouterr().err.strip()
    assert err == f"shadowlane shadow: {NO_CONTROL_KEYS}"
    assert "\n" not in err  # one line


def test_running_without_control_is_an_explicit_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHADOWLANE_CONTROL__ENABLED", "false")
    assert main(ARGS) == 3  # gets past the control check, then stops: no broker is configured
    err = capsys.readouterr().err
    assert NO_CONTROL_KEYS not in err
    assert "no Kafka bootstrap servers configured" in err


def test_shadow_flags_shape_the_worker() -> None:
    args = _parse(
        "shadow", "--candidate", "grammar-b", "--callable", "tests.support.candidates:echo",
        "--rate-cap", "12.5", "--concurrency", "3", "--timeout", "4",
        "--readonly-tool", "lookup_conjugation", "--readonly-tool", "search",
        "--tool-stub", 'save_progress={"ok": true}',
        "--pin", "model_rev=grammar-b@v2", "--pin", "prompt_ver=p3",
    )  # fmt: skip
    settings = worker_cmds.shadow_settings(args, Settings())
    worker = ShadowWorker(settings, worker_cmds.build_candidate(args, settings), {})
    assert worker.candidate.name == settings.shadow.candidate == "grammar-b"
    assert worker.group_id == f"{settings.shadow.group_prefix}grammar-b"  # the consumer group suffix
    assert worker.s.rate_cap == 12.5
    assert worker.s.concurrency == 3
    assert worker._max_buffered == 6  # held records are bounded by the concurrency
    assert worker.s.timeout_s == 4.0
    assert worker.s.readonly_tools == ("lookup_conjugation", "search")
    assert worker.s.tool_stubs == {"save_progress": '{"ok": true}'}
    assert worker.s.pins == {"model_rev": "grammar-b@v2", "prompt_ver": "p3"}
    defaults = worker_cmds.shadow_settings(_parse(*ARGS), Settings())
    assert defaults.shadow.rate_cap == Settings().shadow.rate_cap  # no flag: the setting stands


def test_shadow_refuses_malformed_tool_stubs_and_pins() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        worker_cmds.shadow_settings(_parse(*ARGS, "--tool-stub", "save_progress={not json"), Settings())
    with pytest.raises(SystemExit) as exc:
        worker_cmds.shadow_settings(_parse(*ARGS, "--pin", "no-equals-sign"), Settings())
    assert exc.value.code == 64


async def test_callable_names_the_python_function_called() -> None:
    args = _parse("shadow", "--candidate", "py", "--callable", "tests.support.candidates:echo")
    candidate = worker_cmds.build_candidate(args, worker_cmds.shadow_settings(args, Settings()))
    reply = await candidate.chat({"messages": [{"role": "user", "content": "hi"}]})
    assert reply.content == "echo"


@pytest.fixture
async def candidate_server() -> AsyncIterator[tuple[RunningServer, list[tuple[str, str]]]]:
    """An OpenAI-compatible server that records (path, model) and answers after ``content`` seconds
    when the user message is a number."""
    seen: list[tuple[str, str]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        request = orjson.loads(body)
        seen.append((scope["path"], request["model"]))
        delay = request["messages"][-1]["content"]
        if delay.replace(".", "").isdigit():
            await asyncio.sleep(float(delay))
        reply = {"choices": [{"message": {"role": "assistant", "content": "ok"}}], "model": request["model"]}
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": orjson.dumps(reply)})

    server = await serve(app)
    try:
        yield server, seen
    finally:
        await server.stop()


async def test_url_model_and_timeout_reach_the_candidate(
    candidate_server: tuple[RunningServer, list[tuple[str, str]]],
) -> None:
    server, seen = candidate_server
    argv = ["shadow", "--candidate", "b", "--url", f"{server.url}/", "--model", "grammar-b-large"]
    args = _parse(*argv, "--timeout", "0.3")
    candidate = worker_cmds.build_candidate(args, worker_cmds.shadow_settings(args, Settings()))
    body = {"model": "grammar-tutor", "messages": [{"role": "user", "content": "hi"}]}
    reply = await candidate.chat(body)
    assert reply.content == "ok"
    assert seen == [("/v1/chat/completions", "grammar-b-large")]  # --model overrides the request's
    with pytest.raises(CandidateError) as slow:
        await candidate.chat({**body, "messages": [{"role": "user", "content": "1.0"}]})
    assert slow.value.error_class == "timeout"  # --timeout 0.3: a 1 s answer is too late
    patient = _parse(*argv, "--timeout", "5")
    candidate = worker_cmds.build_candidate(patient, worker_cmds.shadow_settings(patient, Settings()))
    assert (await candidate.chat({**body, "messages": [{"role": "user", "content": "1.0"}]})).content == "ok"


def test_flag_names_the_kill_switch_the_worker_obeys() -> None:
    settings = Settings(control=ControlSettings(signing_keys={"unit": KEY}))
    watcher = ControlWatcher(settings, {}, observer="unit", clock=lambda: 42)
    record = sign(KillSwitch(engaged=True), kind="kill_switch", name="grammar_b", version=1, key_id="unit",
                  key=KEY, signed_by="oncall", reason="INC-1", signed_at_ms=1_000)  # fmt: skip
    watcher.feed(record.key.encode(), encode(record))
    mine = worker_cmds.kill_switch(watcher, _parse(*ARGS, "--flag", "grammar_b").flag)
    other = worker_cmds.kill_switch(watcher, _parse(*ARGS).flag)  # the default flag
    assert mine() is True
    assert other() is False
    assert worker_cmds.kill_switch(None, "grammar_b")() is False  # control disabled: never paused


@pytest.mark.parametrize("command", [ARGS, ["compare"]])
async def test_metrics_port_and_host_choose_where_the_endpoints_listen(command: list[str]) -> None:
    with worker_runtime.endpoints(_parse(*command), Health()) as none:
        assert none is None  # no --metrics-port: none
    args = _parse(*command, "--metrics-port", "0", "--metrics-host", "127.0.0.2")
    with worker_runtime.endpoints(args, Health()) as server:
        assert server is not None
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.get(f"http://127.0.0.2:{server.port}/healthz")
            assert answer.status_code in (200, 503)
            with pytest.raises(httpx.ConnectError):  # bound to --metrics-host only
                await client.get(f"http://127.0.0.1:{server.port}/healthz")
        port = server.port
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(httpx.ConnectError):  # released once the worker is done
            await client.get(f"http://127.0.0.2:{port}/healthz")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("command", "section"),
    [(["shadow", "--candidate", "cand", "--callable", "tests.support.candidates:echo"], "SHADOW"),
     (["compare", "--embedder", "none"], "COMPARE")],
)  # fmt: skip
def test_a_broker_unusable_past_the_startup_timeout_exits_3_naming_the_cause_and_frees_the_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str], section: str
) -> None:
    broker = free_port()  # nothing listens there
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{broker}")
    monkeypatch.setenv("SHADOWLANE_CONTROL__ENABLED", "false")
    monkeypatch.setenv(f"SHADOWLANE_{section}__STARTUP_TIMEOUT_S", "0.5")
    port = free_port()
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--metrics-port", str(port)])
    assert exit_.value.code == 3
    assert time.monotonic() - started < 30
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("shadowlane ")]
    assert line.startswith(f"shadowlane {command[0]}: gave up after 0.5s: cannot reach the Kafka broker")
    assert f"127.0.0.1:{broker}: ConnectionRefusedError" in line  # the cause, from aiokafka's log
    assert line.endswith(f"SHADOWLANE_{section}__STARTUP_TIMEOUT_S sets how long to retry (0: forever)")
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):  # /metrics is gone with it
        s.connect(("127.0.0.1", port))


def test_compare_flags_shape_the_comparator() -> None:
    args = _parse("compare", "--candidates", "grammar-b,baseline", "--window", "30", "--embedder", "none",
                  "--native-path", "python")  # fmt: skip
    compare = worker_cmds.compare_settings(args, Settings()).compare
    assert compare.candidates == ("grammar-b", "baseline")
    assert compare.window_s == 30.0
    assert compare.native_path == "python"
    assert build_embedder(compare) is None  # --embedder none: ΔS disabled
    assert worker_cmds.compare_settings(_parse("compare"), Settings()).compare == Settings().compare
