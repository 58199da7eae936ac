"""The report's pin checks: counts per side, the differing keys, examples, and the Markdown section."""

from __future__ import annotations

from shadowlane.contracts.comparison import Comparison
from shadowlane.report.pins import pin_checks
from shadowlane.report.render_md import render_markdown
from shadowlane.report.rows import shadow_row
from tests.support.report_rows import report, srow


def test_counts_keys_most_common_first_and_examples() -> None:
    checks = pin_checks(
        [("a", ()), ("b", ("model_rev",)), ("c", None), ("d", ("index_hash", "model_rev")), ("e", ())]
    )
    assert checks is not None
    assert (checks.checked, checks.mismatched, checks.rate) == (4, 2, 0.5)
    assert checks.keys == (("model_rev", 2), ("index_hash", 1))
    assert checks.examples == ("b", "d")
    assert pin_checks([("a", None)]) is None


def test_the_rows_carry_the_comparison_differing_keys() -> None:
    c = Comparison(
        comparison_id="c", req_hash="0" * 32, candidate="cand", ts_ms=1, complete=True, outcome="joined",
        pin_mismatch=True, pin_mismatch_keys=("model_rev",),
        prod_pin_mismatch=False, prod_pin_mismatch_keys=(),
    )  # fmt: skip
    row = shadow_row(c)
    assert (row.pin_mismatch_keys, row.prod_pin_mismatch_keys) == (("model_rev",), ())


def test_the_markdown_names_the_differing_keys_and_the_requests() -> None:
    rows = [srow(i, pin_mismatch_keys=("model_rev",) if i == 3 else ()) for i in range(20)]
    md = render_markdown(report([*rows, srow(20, prod_pin_mismatch_keys=("index_hash",))]))
    assert "### Pins verified" in md
    assert "| candidate | 20 | 1 | 0.050 | model_rev (1) |" in md
    assert "| prod | 1 | 1 | 1.000 | index_hash (1) |" in md
    assert "e.g.: r-3, r-20." in md
    assert "Pins verified" not in render_markdown(report([srow(i) for i in range(5)]))
