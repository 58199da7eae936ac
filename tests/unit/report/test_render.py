"""report.md / report.html / manifest.json: sections, self-contained HTML, manifest fields, the CLI glue."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from shadowlane.cli import report_cmd
from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.embed_onnx import MiniLMEmbedder
from shadowlane.compare.join import Joined, Output
from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.route_config import RouteConfig, RouteRule
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.report.collect import Collected
from shadowlane.report.model import Report
from shadowlane.report.render_html import render_html
from shadowlane.report.render_md import render_markdown
from shadowlane.report.rows import shadow_row
from shadowlane.settings import CompareSettings, KafkaSettings, Settings, ShadowSettings
from tests.support.factories import envelope, result
from tests.support.report_rows import ab_rows, report, shadow_rows, srow
from tests.support.summaries import crafted_summary

ROUTE = RouteConfig(
    flag="f",
    epoch=1,
    salt="prod-2026-05",
    baseline="grammar-a",
    rules=(RouteRule(strategy="ab", candidate="grammar-b", candidate_weight=0.5),),
)


@pytest.fixture(scope="module")
def full() -> Report:
    shadow = shadow_rows(400, 0.75, 0.82, seed=21)
    shadow[0] = srow(
        0, exact_match=False, prod_solved=False, shadow_solved=True, buckets={"verb": "<b>&|x"}, delta_s=0.99
    )
    return report(shadow, ab_rows(210, 190, 0.8, 0.85, seed=22))


def test_markdown_has_every_section_and_the_reports_numbers(full: Report) -> None:
    md = render_markdown(full)
    for heading in (
        "# Shadowlane report: candidate cand · flag f",
        f"## Recommendation: {full.recommendation.decision.upper()}",
        "### How the recommendation is decided",
        "## Shadow: cand vs prod",
        "### Accuracy against gold",
        "### Per-bucket breakdown",
        "### Latency (ms, successful answers)",
        "### Error rate",
        "### ΔS vs the noise floor",
        "### Disagreements",
        "## A/B: flag f",
        "### Sample ratio mismatch",
    ):
        assert heading + "\n" in md, heading
    assert "| arm | n | p50 [95 % CI] | p95 [95 % CI] | p99 [95 % CI] |" in md
    s, a = full.shadow, full.ab
    assert s is not None
    assert a is not None
    assert s.accuracy.test is not None
    assert f"p = {s.accuracy.test.p_value:.3g}" in md
    assert a.latency.mwu is not None
    assert f"U = {a.latency.mwu.u:g}, p = {a.latency.mwu.p_value:.3g}" in md
    assert f"χ² = {a.srm.chi2:.3f}" in md
    d = s.disagreements
    assert f"improved {d.improved}" in md
    assert f"regressed {d.regressed}" in md
    assert f"neutral {d.neutral}" in md
    assert "*improved examples*" in md
    assert r"verb=&lt;b&gt;&amp;\|x" in md  # traffic text cannot inject Markdown / HTML
    assert "<b>" not in md
    for reason in full.recommendation.reasons:
        assert f"- {reason}" in md
    for line in ("| verb |", "| tense |"):
        assert line in md


def test_html_is_self_contained_with_inline_svg_plots(full: Report) -> None:
    html = render_html(full)
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") >= 6  # 2 latency CDFs, ΔS, and bucket bars per label
    assert "<polyline" in html
    assert "Latency CDF per arm (shadow)" in html
    assert "ΔS distribution vs the noise floor" in html
    assert "Accuracy by verb (shadow, 95 % CI)" in html
    lowered = html.lower()
    for forbidden in (
        "<script",
        "http://",
        "https://",
        "<link",
        "@import",
        "url(",
        "src=",
        "<img",
        "<iframe",
    ):
        assert forbidden not in lowered, forbidden
    assert "&lt;b&gt;&amp;|x" in html  # traffic labels are escaped
    assert "<b>&" not in html
    assert f'class="decision {full.recommendation.decision}"' in html
    assert "Sample ratio mismatch" in html


def test_a_report_with_no_source_still_renders() -> None:
    empty = report()
    assert "## Recommendation: HOLD" in render_markdown(empty)
    assert "<svg" not in render_html(empty)


def test_a_report_whose_delta_s_mixes_embedders_says_so_in_one_line(tmp_path: Path) -> None:
    """Comparisons scored by MiniLM and by MiniLM truncated to 128 tokens (another name, another
    ΔS): report.md and the command's summary state the mix in one line; one embedder: no line."""
    outputs: list[Output] = []
    for i in range(6):
        env = envelope(40 + i)
        outputs.append(Joined(ProdSide.of(env), result(env, answer=f"It rains in Oslo, day {i}."), []))
    full, short = MiniLMEmbedder(), MiniLMEmbedder(max_tokens=128)
    settings = CompareSettings(candidates=("cand",))
    rows = [shadow_row(c) for c in ComparisonBuilder(full, settings).build(outputs[:4])]
    rows += [shadow_row(c) for c in ComparisonBuilder(short, settings).build(outputs[4:])]
    line = (
        f"ΔS mixes embedders: {full.name} (4), {short.name} (2); "
        "rescore the range with one embedder (shadowlane rescore --embedder)"
    )
    mixed = report(rows)
    assert f"- shadow: {line}\n" in render_markdown(mixed)
    summary = report_cmd.render_summary(mixed, tmp_path, {}).splitlines()
    assert [s for s in summary if "embedder" in s] == [f"shadow: {line}"]
    single = report(rows[:4])
    assert "embedder" not in render_markdown(single)
    assert "embedder" not in report_cmd.render_summary(single, tmp_path, {})


def _settings() -> Settings:
    return Settings(
        bootstrap_servers="localhost:1",
        kafka=KafkaSettings(sasl_password=SecretStr("kafka-secret-pw")),
        shadow=ShadowSettings(candidate_api_key=SecretStr("sk-candidate-secret"), lambda_salt="lam-salt"),
        compare=CompareSettings(embed_api_key=SecretStr("sk-embed-secret"), candidates=("cand",)),
    )


def test_manifest_fields(full: Report, tmp_path: Path) -> None:
    counts = {"compare_records": 400}
    manifest = report_cmd.build_manifest(
        full,
        _settings(),
        topics=["t.compare", "t.requests"],
        counts=counts,
        route_config=ROUTE,
        generated_ms=0,
    )
    report_cmd.write_report(tmp_path, full, manifest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "report.html", "report.md"]
    raw = (tmp_path / "manifest.json").read_text()
    for secret in ("kafka-secret-pw", "sk-candidate-secret", "sk-embed-secret"):
        assert secret not in raw
    m = orjson.loads(raw)
    assert m["range"] == {
        "from_ms": 0,
        "to_ms": 10_000,
        "from": "1970-01-01T00:00:00Z",
        "to": "1970-01-01T00:00:10Z",
    }
    assert m["generated_at"] == "1970-01-01T00:00:00Z"
    assert m["shadowlane_version"]
    assert m["topics"] == ["t.compare", "t.requests"]
    assert (m["candidate"], m["noise_floor"], m["flag"]) == ("cand", "baseline", "f")
    assert m["grader"] == {"name": "contains@1", "kind": "contains", "version": "1"}
    assert m["pins"]["ab"]["candidate"]["served_by"] == ["model-candidate"]
    assert m["pins"]["shadow"]["prod"] == [{}]
    assert m["config"]["compare"]["grader"] == "contains"
    assert m["config"]["report"]["allowed_regression"] == 0.02
    assert m["config"]["route_config"]["flag"] == "f"
    assert m["seeds"]["lambda_salt"] == "lam-salt"
    assert m["seeds"]["route_salt"] == "prod-2026-05"
    assert m["seeds"]["epochs"] == [1]
    assert m["counts"]["compare_records"] == 400
    assert m["counts"]["shadow_comparisons"] == 400
    assert m["counts"]["ab_requests"] == 400
    assert m["recommendation"]["decision"] == full.recommendation.decision


def _args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    report_cmd.add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(["report", "--from", "0", "--to", "10000", "--out", str(tmp_path), *extra])


def test_route_config_gives_the_flag_and_weight(tmp_path: Path) -> None:
    path = tmp_path / "route.yaml"
    path.write_text(
        "schema_version: 1\nflag: f\nepoch: 1\nsalt: s\nbaseline: a\n"
        "rules:\n  - strategy: canary\n    candidate: b\n    candidate_weight: 0.25\n"
    )
    config = report_cmd.load_route_config(path)
    assert report_cmd.planned_weight(config, None) == 0.25
    assert report_cmd.planned_weight(config, 0.4) == 0.4
    assert report_cmd.planned_weight(None, None) == 0.5
    with pytest.raises(SystemExit, match=r"\(0, 1\)") as usage:
        report_cmd.planned_weight(None, 1.0)
    assert usage.value.code == 64
    path.write_text("flag: f\n")
    with pytest.raises(SystemExit, match="cannot use route config") as unusable:
        report_cmd.load_route_config(path)
    assert unusable.value.code == 3


async def test_mixed_graders_exit_3_with_the_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fake_collect(*_: Any, **__: Any) -> Collected:
        return Collected(shadow=[srow(0), srow(1, grader="contains@2")], topics=["t.compare"])

    monkeypatch.setattr(report_cmd, "collect", fake_collect)
    monkeypatch.setattr(report_cmd, "resolve_bootstrap", lambda *_, **__: "localhost:1")
    code = await report_cmd.execute(_args(tmp_path / "out", "--candidate", "cand"), _settings())
    assert code == 3
    assert re.search(r"contains@1, contains@2", capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


async def test_execute_writes_the_three_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_collect(*_: Any, **kw: Any) -> Collected:
        assert kw["flag"] == "f"
        assert kw["candidate"] == "cand"
        rows = shadow_rows(60, 0.8, 0.8, seed=23)
        return Collected(
            shadow=rows, ab=ab_rows(30, 30, 0.8, 0.8, seed=24), topics=["t.compare", "t.requests"]
        )

    async def fake_summaries(_: Any, topic: str, start: int, end: int) -> list[WindowSummary]:
        assert topic.endswith("summary")
        # 300 requests of a candidate no different from prod: too few to prove the gates
        return [crafted_summary("cand", start, start + 60_000, 300, seed=5)]

    monkeypatch.setattr(report_cmd, "collect", fake_collect)
    monkeypatch.setattr(report_cmd, "read_window_summaries", fake_summaries)
    monkeypatch.setattr(report_cmd, "resolve_bootstrap", lambda *_, **__: "localhost:1")
    assert await report_cmd.execute(_args(tmp_path, "--flag", "f"), _settings()) == 0
    m = orjson.loads((tmp_path / "manifest.json").read_bytes())
    assert m["gates"]["verdict"] == "INCONCLUSIVE"
    assert m["gates"]["partials"] == 1
    assert m["gates"]["forward"]["reason"]
    md = (tmp_path / "report.md").read_text()
    assert "## Rollout gates: INCONCLUSIVE" in md
    assert re.search(r"INCONCLUSIVE: undecided: .* more requests", md)
    assert m["candidate"] == "cand"  # the comparator's first candidate that is not the noise floor
    assert m["config"]["report"]["ab_weight"] == 0.5
    assert "<svg" in (tmp_path / "report.html").read_text()
