"""``WindowState``: what a comparator member holds for one input partition, as of a transaction.

With exactly-once on, every transaction of partition *p* (its comparisons, closed summaries and
consumed offsets) also writes *p*'s state to the compacted ``compare.state`` topic, keyed
``<group>/<p>``: the windows still open (as partial summaries, which rebuild their accumulators
exactly), where each key's windows are closed up to, the late comparisons not yet reported, how
far each input topic was read and which of those records were still waiting for their pair, and
the pairs that left without one (a result or request that turns up later is then a duplicate).
A partition's next owner takes the latest record over: after a crash, windows lose nothing, and
the records it reads again that were already compared are skipped.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shadowlane.contracts.base import Nested, WireModel
from shadowlane.contracts.window_summary import WindowSummary


class WindowKeyCount(Nested):
    """A (candidate, endpoint, tenant) window key with a number: a time or a count."""

    candidate: str
    endpoint: str | None = None
    tenant: str | None = None
    value: int = Field(ge=0)


class InputPosition(Nested):
    """How far one input partition was read, and what of it is not compared yet."""

    topic: Literal["requests", "shadow-results"]
    committed: int = Field(ge=0, description="the offset committed with this state")
    read_until: int = Field(ge=0, description="every record before it was read")
    waiting: tuple[int, ...] = Field(
        default=(),
        description="offsets in [committed, read_until) still waiting for their pair, delta-encoded: "
        "the first as is, each next as the difference to the one before",
    )


class UnpairedOutcome(Nested):
    """A pair that left without its other side (``shadow_timeout`` or ``request_missing``)."""

    req_hash: str
    candidate: str
    emitted_ms: int = Field(ge=0)


class WindowState(WireModel):
    SCHEMA_NAME: ClassVar[str] = "window_state"
    schema_version: Literal[1] = 1
    group: str = Field(description="the comparator's consumer group")
    partition: int = Field(ge=0, description="the input partition (requests and shadow-results)")
    written_ms: int = Field(ge=0)
    open_windows: tuple[WindowSummary, ...] = Field(
        default=(), description="partial summaries of the windows still open (histograms included)"
    )
    closed_until: tuple[WindowKeyCount, ...] = Field(
        default=(), description="per key: windows starting before this time are closed (ms)"
    )
    late: tuple[WindowKeyCount, ...] = Field(
        default=(), description="per key: late comparisons not yet reported by a summary"
    )
    positions: tuple[InputPosition, ...] = Field(default=(), description="per input topic")
    unpaired: tuple[UnpairedOutcome, ...] = Field(
        default=(), description="pairs emitted without their other side within the retention"
    )
