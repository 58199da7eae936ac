"""The report's first divergences of agent runs: grouped by (tool, kind, step), most common first,
shares of the judged runs, examples, and the section in report.md and report.html."""

from __future__ import annotations

from shadowlane.report.divergence import EXAMPLES, MAX_GROUPS, first_divergences
from shadowlane.report.render_html import render_html
from shadowlane.report.render_md import render_markdown
from shadowlane.report.rows import ShadowRow
from tests.support.report_rows import report, srow


def _run(
    i: int, step: int | None = None, kind: str | None = None, tool: str | None = None, **kw: object
) -> ShadowRow:
    fields: dict[str, object] = {"shadow_error": False, **kw}
    return srow(
        i,
        prod_steps=3,
        first_divergent_step=step,
        divergence_kind=kind,
        divergence_tool=tool,
        divergence_prod=None if step is None else f"prod@{i}",
        divergence_shadow=None if step is None else f"cand@{i}",
        **fields,
    )


def _rows() -> list[ShadowRow]:
    rows = [_run(i) for i in range(10)]  # agreed
    rows += [_run(10 + i, 2, "tool_args", "find_examples") for i in range(6)]
    rows += [_run(20 + i, 4, "answer") for i in range(3)]
    rows += [_run(30, 1, "tool_name", "lookup")]
    rows += [srow(40 + i, shadow_error=False) for i in range(5)]  # no tools: not agent runs
    rows += [_run(50, 2, "tool_args", "find_examples", shadow_error=True)]  # unfinished: not judged
    return rows


def test_runs_are_grouped_by_tool_kind_and_step_most_common_first() -> None:
    got = first_divergences(_rows())
    assert got is not None
    assert (got.runs, got.diverged) == (20, 10)
    assert [(g.tool, g.kind, g.step, g.count) for g in got.groups] == [
        ("find_examples", "tool_args", 2, 6),
        (None, "answer", 4, 3),
        ("lookup", "tool_name", 1, 1),
    ]
    top = got.groups[0]
    assert top.share == 6 / 20
    assert len(top.examples) == EXAMPLES
    assert [(e.req_id, e.prod, e.candidate) for e in top.examples] == [
        ("r-10", "prod@10", "cand@10"),
        ("r-11", "prod@11", "cand@11"),
    ]
    assert (got.other_groups, got.other_count) == (0, 0)


def test_no_agent_runs_means_no_section() -> None:
    assert first_divergences([srow(i, shadow_error=False) for i in range(5)]) is None


def test_groups_past_the_limit_are_summed() -> None:
    rows = [_run(i, 1 + i % (MAX_GROUPS + 2), "tool_name", "t") for i in range(3 * (MAX_GROUPS + 2))]
    got = first_divergences(rows)
    assert got is not None
    assert len(got.groups) == MAX_GROUPS
    assert (got.other_groups, got.other_count) == (2, 6)


def test_the_section_is_in_the_markdown_and_the_html() -> None:
    rows = _rows()
    rows[10] = srow(
        10, shadow_error=False, prod_steps=3, first_divergent_step=2, divergence_kind="tool_args",
        divergence_tool="find_examples", divergence_prod='find_examples({"tense":"past"})',
        divergence_shadow='find_examples({"tense":"<b>present"})',
    )  # fmt: skip
    r = report(rows)
    assert r.shadow is not None
    assert r.shadow.agent is not None
    md = render_markdown(r)
    assert "### First divergences of agent runs" in md
    assert "10 of 20 agent runs (50.0%)" in md
    assert "| find_examples | tool_args | 2 | 6 | 30.0% |" in md
    assert "| (final answer) | answer | 4 | 3 | 15.0% |" in md
    assert (
        'r-10: prod find_examples({"tense":"past"}) → candidate find_examples({"tense":"&lt;b&gt;present"})'
        in md
    )
    html = render_html(r)
    assert "First divergences of agent runs" in html
    assert "<b>present" not in html  # traffic text is escaped


def test_a_report_without_agent_runs_has_no_section() -> None:
    md = render_markdown(report([srow(i, shadow_error=False) for i in range(5)]))
    assert "First divergences" not in md
