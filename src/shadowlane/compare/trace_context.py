"""The comparator's hop of the trace context: ``shadowlane.compare`` spans and the compare
records' ``traceparent`` headers (:mod:`shadowlane.tracing`).

A comparison's ``traceparent`` is its shadow result's, copied by the builders (the native one
too), so a comparison stays a pure function of its records. Comparisons are built a poll at a
time, mostly natively, so the spans are made afterwards, one per traced comparison, each spanning
the poll's build; a compare record's header names its span, or, without spans, carries the
copied ``traceparent`` as it is. Untraced comparisons cost one attribute read each.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from shadowlane.contracts.comparison import Comparison
from shadowlane.tracing import COMPARE_SPAN, KafkaHeaders, TraceContext, Tracing, header_of


class CompareTrace:
    """Spans and headers for the comparisons of one comparator."""

    def __init__(self, tracing: Tracing | None = None) -> None:
        self.tracing = tracing if tracing is not None else Tracing()

    def headers(self, comparisons: Sequence[Comparison], started_ns: int) -> list[KafkaHeaders | None]:
        """Each comparison's record headers (None: untraced), with a ``shadowlane.compare`` span
        from ``started_ns`` (epoch ns, when the poll's build began) to now when spans are on."""
        tracing = self.tracing
        if not tracing.recording:
            return [None if c.traceparent is None else header_of(c.traceparent) for c in comparisons]
        ended_ns = time.time_ns()
        out: list[KafkaHeaders | None] = []
        for c in comparisons:
            if c.traceparent is None:
                out.append(None)
                continue
            attributes: dict[str, str | float] = {
                "shadowlane.candidate": c.candidate,
                "shadowlane.req_hash": c.req_hash,
                "shadowlane.outcome": c.outcome,
            }
            if c.delta_s is not None:
                attributes["shadowlane.delta_s"] = c.delta_s
            sent = tracing.finished(
                COMPARE_SPAN,
                TraceContext.of(c.traceparent),
                started_ns,
                ended_ns,
                kind="consumer",
                attributes=attributes,
            )
            out.append(sent.kafka_headers())
        return out
