"""Window summaries count pin checks and mismatches, of the candidate and of prod, and merge them."""

from __future__ import annotations

from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.window_summary import WindowSummary
from shadowlane.windows.accumulator import Accumulator, merge_summaries

KEY = ("cand", "/v1/chat", "t1")


def _comparison(i: int, *, pin: bool | None, prod_pin: bool | None, outcome: str = "joined") -> Comparison:
    return Comparison(
        comparison_id=f"c{i}",
        req_hash=f"{i:032x}",
        candidate="cand",
        ts_ms=i,
        endpoint="/v1/chat",
        tenant="t1",
        complete=outcome == "joined",
        outcome=outcome,  # type: ignore[arg-type]
        prod_status="200",
        shadow_status="ok" if outcome == "joined" else None,
        pin_mismatch=pin,
        pin_mismatch_keys=None if pin is None else (("model_rev",) if pin else ()),
        prod_pin_mismatch=prod_pin,
        prod_pin_mismatch_keys=None if prod_pin is None else (("model_rev",) if prod_pin else ()),
    )


def _summary(comparisons: list[Comparison]) -> WindowSummary:
    acc = Accumulator(0, 60_000, KEY)
    acc.add_many(comparisons)
    return acc.summary()


def test_checks_and_mismatches_are_counted_per_side() -> None:
    comps = [
        _comparison(0, pin=False, prod_pin=False),
        _comparison(1, pin=True, prod_pin=None),
        _comparison(2, pin=None, prod_pin=True),
        _comparison(3, pin=None, prod_pin=None),
        _comparison(4, pin=True, prod_pin=None, outcome="request_missing"),  # the candidate's own check
    ]
    s = _summary(comps)
    assert (s.pin_checked, s.pin_mismatches) == (3, 2)
    assert s.pin_mismatch_rate == 2 / 3
    assert (s.prod_pin_checked, s.prod_pin_mismatches) == (2, 1)


def test_no_checks_leave_the_rate_unset() -> None:
    s = _summary([_comparison(0, pin=None, prod_pin=None)])
    assert (s.pin_checked, s.pin_mismatches, s.pin_mismatch_rate) == (0, 0, None)


def test_pin_counts_merge_exactly() -> None:
    first = _summary([_comparison(0, pin=True, prod_pin=False), _comparison(1, pin=False, prod_pin=None)])
    second = _summary([_comparison(2, pin=False, prod_pin=True)])
    merged = merge_summaries([first, second])
    assert (merged.pin_checked, merged.pin_mismatches) == (3, 1)
    assert merged.pin_mismatch_rate == 1 / 3
    assert (merged.prod_pin_checked, merged.prod_pin_mismatches) == (2, 1)


def test_a_summary_written_before_pin_counts_decodes_with_zeros() -> None:
    old = _summary([_comparison(0, pin=None, prod_pin=None)]).model_dump(mode="json")
    for name in (
        "pin_checked",
        "pin_mismatches",
        "pin_mismatch_rate",
        "prod_pin_checked",
        "prod_pin_mismatches",
    ):
        old.pop(name)
    s = WindowSummary.model_validate(old)
    assert (s.pin_checked, s.pin_mismatches, s.pin_mismatch_rate) == (0, 0, None)
