"""``shadowlane report`` on the real broker: comparisons, A/B exposures and answer texts in, files out."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest

from shadowlane.cli import report_cmd
from shadowlane.contracts.codec import encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import Exposure, GoldLabel, RequestEnvelope
from shadowlane.hashing import pair_id
from shadowlane.settings import Settings
from tests.support.factories import envelope, result
from tests.support.kafka_io import produce

pytestmark = pytest.mark.integration

VERBS = ("go", "be", "have")


def _args(out: Path, start: int, end: int, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    report_cmd.add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(["report", "--from", str(start), "--to", str(end), "--out", str(out), *extra])


def _comparison(
    env: RequestEnvelope, i: int, *, candidate: str = "cand", grader: str = "contains@1"
) -> Comparison:
    floor = candidate == "baseline"
    prod_ok, cand_ok = i % 4 != 0, i % 5 != 0
    same = floor or (prod_ok == cand_ok and i % 3 == 0)
    return Comparison(
        comparison_id=pair_id(env.req_hash, candidate),
        req_hash=env.req_hash,
        req_id=env.req_id,
        candidate=candidate,
        traffic_arm="baseline" if floor else "shadow",
        ts_ms=env.ts_ms,
        buckets={"verb": VERBS[i % 3]},
        complete=True,
        outcome="joined",
        delta_s=0.02 if same else 0.1 + 0.01 * (i % 20),
        exact_match=same,
        prod_latency_ms=40.0 + i % 7,
        shadow_latency_ms=45.0 + i % 9,
        prod_status="200",
        shadow_status="ok",
        status_pair="200/ok",
        prod_pins={"model_rev": "a"},
        candidate_pins={"model_rev": "b" if not floor else "a"},
        delta_s_floor=None if floor else 0.02,
        delta_s_excess=None if floor else (0.0 if same else 0.08 + 0.01 * (i % 20)),
        grader=grader,
        prod_solved=prod_ok if not floor else None,
        shadow_solved=(prod_ok if same else cand_ok) if not floor else None,
    )


def _ab(i: int) -> RequestEnvelope:
    arm: Literal["baseline", "candidate"] = "candidate" if i % 2 else "baseline"
    env = envelope(i, tag="ab", answer="I went home" if i % 3 else "I goed home")
    return env.model_copy(
        update={
            "gold": GoldLabel(answer="went", source="conjugation-table"),
            "buckets": {"person": ("1s", "3s")[i % 2 == 0 and i % 4 == 0]},
            "exposure": Exposure(
                flag="grammar_b", arm=arm, served_by=f"grammar-{arm}", strategy="ab", epoch=3, bucket=0.5
            ),
        }
    )


async def test_report_reads_the_range_and_writes_the_files(
    it_settings: Settings, kafka_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    t = it_settings.topics
    start = time.time_ns() // 1_000_000 - 1_000
    shadowed = [envelope(i, tag="rep") for i in range(60)]
    comps = [_comparison(e, i) for i, e in enumerate(shadowed)]
    comps += [_comparison(e, i, candidate="baseline") for i, e in enumerate(shadowed[:10])]
    ab = [_ab(i) for i in range(80)]
    untagged = envelope(500, tag="plain")  # no exposure: not A/B traffic
    await produce(kafka_kwargs, t.compare_topic, [(c.req_hash.encode(), encode(c)) for c in comps])
    await produce(
        kafka_kwargs,
        t.requests_topic,
        [(e.req_hash.encode(), encode(e)) for e in [*shadowed, *ab, untagged]],
    )
    results = [result(e, "cand", answer=f"candidate says {e.req_id}") for e in shadowed]
    await produce(kafka_kwargs, t.shadow_results_topic, [(r.req_hash.encode(), encode(r)) for r in results])
    end = time.time_ns() // 1_000_000 + 1_000

    out = tmp_path / "report"
    args = _args(out, start, end, "--candidate", "cand", "--flag", "grammar_b", "--min-samples", "20")
    assert await report_cmd.execute(args, it_settings) == 0

    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["topics"] == [t.compare_topic, t.requests_topic, t.shadow_results_topic]
    assert manifest["counts"]["shadow_comparisons"] == 60
    assert manifest["counts"]["ab_requests"] == 80
    assert manifest["counts"]["compare_records"] == 70
    assert manifest["grader"]["name"] == "contains@1"
    assert manifest["pins"]["shadow"]["candidate"] == [{"model_rev": "b"}]
    assert manifest["pins"]["shadow"]["noise_floor"] == [{"model_rev": "a"}]
    assert manifest["pins"]["ab"]["candidate"]["served_by"] == ["grammar-candidate"]
    assert manifest["seeds"]["epochs"] == [3]
    assert manifest["recommendation"]["decision"] in ("promote", "hold", "retrain")
    md = (out / "report.md").read_text()
    assert "## Shadow: cand vs prod" in md
    assert "## A/B: flag grammar_b" in md
    assert "observed 40 / 40" in md
    assert "candidate says rep-" in md  # the candidate's answer, looked up on the shadow-results topic
    assert "Corrected:" in md  # prod's answer, looked up on the requests topic
    html = (out / "report.html").read_text()
    assert "<svg" in html
    assert "<script" not in html


async def test_mixed_grader_versions_exit_3(
    it_settings: Settings, kafka_kwargs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.time_ns() // 1_000_000 - 1_000
    envs = [envelope(i, tag="mix") for i in range(4)]
    comps = [_comparison(e, i, grader="contains@1" if i % 2 else "exact@1") for i, e in enumerate(envs)]
    await produce(
        kafka_kwargs, it_settings.topics.compare_topic, [(c.req_hash.encode(), encode(c)) for c in comps]
    )
    end = time.time_ns() // 1_000_000 + 1_000
    out = tmp_path / "mixed"
    assert (
        await report_cmd.execute(_args(out, start, end, "--candidate", "cand", "--no-answers"), it_settings)
        == 3  # operational: data that cannot be judged together
    )
    assert "contains@1, exact@1" in capsys.readouterr().err
    assert not out.exists()
