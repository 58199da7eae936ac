"""Exactly once where it is counted: shadow and comparator members SIGKILLed at random moments
during a 5,000-request run, twice (``tests/support/chaos.py``; ``make chaos`` prints the figures).

A ``read_committed`` reader of the compare topic sees each (request, candidate) comparison once,
every request compared, and the window summaries add up to exactly the comparisons; the shadow
results topic holds one result per request. With exactly-once off the same run loses window
counts and emits duplicates (``make chaos`` shows that run beside these).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chaos import chaos_run, uncommitted_bound

pytestmark = pytest.mark.integration

RATE = 250.0


@pytest.mark.timeout(900)
async def test_sigkilled_members_leave_every_comparison_and_window_count_exactly_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    for run in range(2):
        figures = await chaos_run(kafka_bootstrap, tmp_path / f"run{run}", requests=5000, rate=RATE, kills=6)
        print(figures.line())
        assert figures.complete, figures.line()
        assert figures.lost == 0, figures.line()
        assert figures.duplicates == figures.disagreeing == 0, figures.line()
        assert figures.window_sum == figures.distinct == figures.requests, figures.line()
        assert figures.shadow_results == figures.requests, figures.line()  # none twice, none missing
        assert figures.shadow_duplicates == 0, figures.line()
        # a killed member's uncommitted work is redone, nothing more
        assert 0 <= figures.re_replays <= uncommitted_bound(RATE) * figures.shadow_kills, figures.line()
