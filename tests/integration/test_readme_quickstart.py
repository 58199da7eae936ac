"""The README's quickstart, run as written on the real broker: its FastAPI block serves here with a
handler, and every shell step runs in one ``bash`` session (``tests/support/quickstart.py``), the
shadow workers and the comparator as background jobs. The page's example URLs point at servers
this test starts: the service, candidate B and prod's model (the baseline replays it). The only
steps done otherwise are the install and the broker, which the session already has."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request

from shadowlane.demo.model_server import NO_SENTENCE, ModelBehaviour, answer
from shadowlane.demo.serve import serve
from shadowlane.settings import Settings
from tests.support.docs_examples import run_examples
from tests.support.hook_capture import model_server
from tests.support.quickstart import ROOT, Ran, Shell, steps

pytestmark = pytest.mark.integration

PAGE = "README.md"
SERVICE, CANDIDATE, PROD_MODEL = "http://localhost:8000", "http://localhost:8001", "http://localhost:8002"
DONE_HERE = {  # steps this test does not run, and what stands in for them
    "pip install 'shadowlane[all]'": "the suite runs in the installed package's environment",
    "export KAFKA_BOOTSTRAP_SERVERS=$(shadowlane kafka start)": "the session's broker, in the environment",
    "uvicorn app:app --port 8000 &": "the README's app, served in this process with a handler",
}
STEP_TIMEOUT_S = 90.0
WATCH_S = 12.0  # `watch` prints every 5 s until Ctrl-C: then it gets SIGINT


def _service(behaviour: ModelBehaviour) -> FastAPI:
    """The README's FastAPI block, as written, plus the service's own handler (prod's model)."""
    app: FastAPI = run_examples(PAGE, "fastapi")["app"]

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, Any]:
        body = await request.json()
        message = answer(behaviour, body["messages"])
        return {"object": "chat.completion", "choices": [{"index": 0, "message": message}]}

    return app


def _shell_env(settings: Settings, logs: Path) -> dict[str, str]:
    """This shell's environment: this test's broker, topics and groups, the venv's commands first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOWLANE_", "KAFKA_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SHADOWLANE_HOME"] = str(logs / "home")  # logs of the commands, never the user's state
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers or ""
    env["SHADOWLANE_TOPICS__PREFIX"] = settings.topics.prefix
    env["SHADOWLANE_SHADOW__GROUP_PREFIX"] = settings.shadow.group_prefix
    env["SHADOWLANE_COMPARE__GROUP_ID"] = settings.compare.group_id
    return env


def _failed(ran: Ran) -> str:
    return f"{ran.step.written} -> {ran.returncode}\n{ran.stdout[-2000:]}\n{ran.stderr[-4000:]}"


def test_the_example_urls_and_the_steps_done_here_are_the_pages() -> None:
    text = (ROOT / PAGE).read_text(encoding="utf-8")
    for url in (SERVICE, CANDIDATE, PROD_MODEL):
        assert url in text
    assert set(DONE_HERE) <= {step.written for step in steps(PAGE)}


@pytest.mark.timeout(300)
async def test_the_readme_quickstart_gives_comparisons(
    monkeypatch: pytest.MonkeyPatch, it_settings: Settings, kafka_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", it_settings.bootstrap_servers or "")
    monkeypatch.setenv("SHADOWLANE_TOPICS__PREFIX", it_settings.topics.prefix)
    monkeypatch.delenv("SHADOWLANE_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    prod = ModelBehaviour("grammar-a", latency_ms=0)
    shell = Shell(_shell_env(it_settings, tmp_path), tmp_path)
    outputs: dict[str, Ran] = {}
    async with (
        model_server(ModelBehaviour("grammar-b", latency_ms=0)) as candidate,
        model_server(prod) as model,
    ):
        service = await serve(_service(prod))  # its lifespan starts the hook
        urls = {SERVICE: service.url, CANDIDATE: candidate.url, PROD_MODEL: model.url}
        try:
            for step in steps(PAGE):
                if step.written in DONE_HERE:
                    continue
                command = step.command
                for written, here in urls.items():
                    command = command.replace(written, here)
                ran = await shell.run(step, command, timeout_s=STEP_TIMEOUT_S, interrupt_after_s=WATCH_S)
                if ran is not None:
                    assert ran.returncode == 0, _failed(ran)
                    outputs[step.command.split(" -")[0]] = ran
            ended = shell.ended()
            assert not ended, "\n".join(_failed(ran) for ran in ended)  # the workers still run
        finally:
            stopped = await shell.stop_jobs(timeout_s=30)
            await service.stop()
    for ran in stopped:  # `kill %1 ...`: each worker drains, commits and ends cleanly
        assert ran.returncode == 0, _failed(ran)

    reply = json.loads(outputs["curl"].stdout)
    assert reply["choices"][0]["message"]["content"] == NO_SENTENCE
    lines = outputs["shadowlane tail compare"].stdout.splitlines()
    comparisons = {c["candidate"]: c for c in (json.loads(line)["value"] for line in lines)}
    assert set(comparisons) == {"B", "baseline"}
    assert {c["outcome"] for c in comparisons.values()} == {"joined"}
    assert comparisons["B"]["req_hash"] == comparisons["baseline"]["req_hash"]
    assert comparisons["B"]["delta_s_floor"] is not None  # the baseline's answer reached B's comparison
    watched = outputs["shadowlane watch"].stdout
    assert "B: 1 compared, 0 unmatched" in watched
    assert "baseline: 1 compared, 0 unmatched" in watched
