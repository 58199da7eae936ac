"""The demo's agent scenario end to end on the real broker: every 5th shadow-phase request runs
three tool steps, model B asks step 2 for the other tense on a fixed share of sentences, and the
comparisons, the demo's summary and the report all say the run diverged at step 2."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import orjson
import pytest

from shadowlane.cli.demo_cmd import render
from shadowlane.contracts.codec import decode
from shadowlane.contracts.comparison import Comparison
from shadowlane.demo.grammar import eval_set
from shadowlane.demo.model_server import slips
from shadowlane.demo.run import DemoOptions, candidate_model
from shadowlane.kafka.bootstrap import client_kwargs
from shadowlane.settings import Settings, settings_env
from tests.support.kafka_io import delete_topics_with_prefix, read_topic

pytestmark = pytest.mark.integration

REQUESTS = 30


@pytest.mark.timeout(300)
async def test_the_agent_scenario_reports_the_divergent_step(it_settings: Settings) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowlane.cli.main", "demo", "--requests", str(REQUESTS),
        "--ab-requests", "0", "--candidate-error-rate", "0", "--timeout", "180", "--json",
        env={**os.environ, **settings_env(it_settings)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 280)
    assert proc.returncode == 0, err.decode()
    summary = orjson.loads(out)
    kwargs = client_kwargs(it_settings, summary["bootstrap"])
    try:
        # what the demo's model B does, computed here from the eval set: agent requests are the
        # shadow phase's i % 5 == 4, and B slips at step 2 on a fixed share of their sentences
        opts, items = DemoOptions(), eval_set(REQUESTS)
        b = candidate_model(opts)
        agent = {f"demo-{i:06d}" for i in range(REQUESTS) if i % opts.agent_every == opts.agent_every - 1}
        slipped = {
            f"demo-{i:06d}"
            for i in range(REQUESTS)
            if f"demo-{i:06d}" in agent and slips(b, items[i].sentence)
        }
        assert slipped  # the run exercises the slip

        records = await read_topic(
            kwargs, f"{summary['topics_prefix']}compare", want=2 * REQUESTS, timeout_s=60
        )
        comparisons = [decode(r.value, Comparison) for r in records if r.value is not None]
        cand = {c.req_id: c for c in comparisons if c.candidate == "grammar-b" and c.complete}
        assert set(cand) == {f"demo-{i:06d}" for i in range(REQUESTS)}
        for req_id, c in cand.items():
            assert c.shadow_status == "ok"
            if req_id in agent:
                assert (c.prod_steps, c.shadow_steps) == (3, 3), req_id
            if req_id in slipped:
                assert (c.first_divergent_step, c.divergence_kind, c.divergence_tool) == (
                    2,
                    "tool_args",
                    "find_examples",
                ), req_id
                assert c.divergence_prod is not None
                assert c.divergence_shadow is not None
                assert c.divergence_prod.startswith("find_examples(")
                assert c.divergence_prod != c.divergence_shadow
            else:  # the same tool steps: at most the final answer differs
                assert c.divergence_kind in (None, "answer"), (req_id, c.divergence_kind)
        # the noise floor replays prod's model: it never leaves prod's tool steps
        floor = [c for c in comparisons if c.candidate == "baseline" and c.complete]
        assert floor
        assert all(c.divergence_kind in (None, "answer") for c in floor)

        # the demo's summary and its human rendering
        assert summary["agent"]["multi_step_runs"] == len(agent)
        assert summary["agent"]["first_divergences"]["step 2 tool_args find_examples"] == len(slipped)
        runs = summary["agent"]
        assert f"agent runs {runs['diverged']:,} of {runs['runs']:,} tool runs left prod's steps" in render(
            summary
        )
        windows = summary["windows"]["candidates"]["grammar-b"]
        assert windows["agent_compared"] == summary["agent"]["runs"] >= len(agent)
        assert windows["agent_diverged"] == summary["agent"]["diverged"] >= len(slipped)

        # the report's first divergences: the step, the kind, the tool, the count and an example
        md = (Path(summary["lab"]["report"]).parent / "report.md").read_text()
        assert "### First divergences of agent runs" in md
        row = next(line for line in md.splitlines() if line.startswith("| find_examples | tool_args | 2 |"))
        assert f"| 2 | {len(slipped)} |" in row
        assert min(slipped) in row
    finally:
        await delete_topics_with_prefix(kwargs, summary["topics_prefix"])
