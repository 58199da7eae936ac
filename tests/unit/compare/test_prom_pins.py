"""The comparator's pin-mismatch counter: per candidate and side, 0 series from the start."""

from __future__ import annotations

from shadowlane.compare.prom import CompareMetrics
from tests.unit.compare.test_prom import P, _comp, _render, _value


def test_pin_mismatches_are_counted_per_candidate_and_side() -> None:
    metrics = CompareMetrics(["cand"])
    before = _render(metrics)
    assert _value(before, f'{P}_pin_mismatches_total{{candidate="cand",side="candidate"}}') == 0.0
    assert _value(before, f'{P}_pin_mismatches_total{{candidate="cand",side="prod"}}') == 0.0
    metrics.observe(
        [
            _comp(1, pin_mismatch=True, pin_mismatch_keys=("model_rev",)),
            _comp(
                2,
                pin_mismatch=False,
                pin_mismatch_keys=(),
                prod_pin_mismatch=True,
                prod_pin_mismatch_keys=("k",),
            ),
            _comp(3, pin_mismatch=True, pin_mismatch_keys=("index_hash",), outcome="request_missing"),
            _comp(4),  # nothing checked
        ]
    )
    text = _render(metrics)
    assert _value(text, f'{P}_pin_mismatches_total{{candidate="cand",side="candidate"}}') == 2.0
    assert _value(text, f'{P}_pin_mismatches_total{{candidate="cand",side="prod"}}') == 1.0
