"""The report's first divergences: where agent runs of the candidate first left prod's.

An agent run is a joined comparison with tool steps on either side whose replay finished (an
unfinished replay is not judged: its error is counted with the errors). Each diverged run has one
first divergent step (``shadowlane.compare.agent_steps``); runs are grouped by that step's tool,
kind and step number, most common first, each with its share of the agent runs and a few
examples (request id, what prod did and what the candidate did at that step), so a reader sees
at once "step 2, find_examples, other arguments: 12 of 40 runs".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from shadowlane.report.model import DivergenceExample, DivergenceGroup, FirstDivergences
from shadowlane.report.rows import ShadowRow

MAX_GROUPS = 10
"""Groups listed; the rest are summed in ``other_groups`` / ``other_count``."""
EXAMPLES = 2
"""Examples per group."""


def agent_runs(joined: Sequence[ShadowRow]) -> list[ShadowRow]:
    """The judged agent runs among joined rows: tool steps on either side, replay finished."""
    return [r for r in joined if r.prod_steps is not None and r.shadow_error is False]


def first_divergences(joined: Sequence[ShadowRow]) -> FirstDivergences | None:
    """The first divergences of the joined rows' agent runs; None when there are none."""
    runs = agent_runs(joined)
    if not runs:
        return None
    grouped: dict[tuple[str | None, str, int], list[ShadowRow]] = defaultdict(list)
    for r in runs:
        if r.first_divergent_step is not None and r.divergence_kind is not None:
            grouped[(r.divergence_tool, r.divergence_kind, r.first_divergent_step)].append(r)
    ordered = sorted(
        grouped.items(), key=lambda item: (-len(item[1]), item[0][2], item[0][0] or "", item[0][1])
    )
    groups = tuple(
        DivergenceGroup(
            tool=tool,
            kind=kind,
            step=step,
            count=len(rows),
            share=len(rows) / len(runs),
            examples=tuple(
                DivergenceExample(r.req_id, r.req_hash, r.divergence_prod, r.divergence_shadow)
                for r in sorted(rows, key=lambda r: (r.req_id or "", r.req_hash))[:EXAMPLES]
            ),
        )
        for (tool, kind, step), rows in ordered[:MAX_GROUPS]
    )
    rest = ordered[MAX_GROUPS:]
    return FirstDivergences(
        runs=len(runs),
        diverged=sum(len(rows) for rows in grouped.values()),
        groups=groups,
        other_groups=len(rest),
        other_count=sum(len(rows) for _, rows in rest),
    )
