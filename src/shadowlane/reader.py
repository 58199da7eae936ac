"""Reading the compare topic from your own code, typed, with FastStream.

``compare_reader(settings, bootstrap, handler)`` returns a FastStream ``KafkaBroker`` whose one
subscriber decodes every record of the compare topic into a
:class:`~shadowlane.contracts.comparison.Comparison`
and awaits ``handler(comparison)``; the offset is committed after the handler returns
(``AckPolicy.ACK``), so a crash re-delivers. Run it inside a ``FastStream`` app or start the
broker yourself; in unit tests wrap it in ``faststream.kafka.TestKafkaBroker`` (in memory).

``shadowlane watch`` uses it to print a rolling summary per candidate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from shadowlane.contracts.comparison import Comparison
from shadowlane.settings import Settings

ComparisonHandler = Callable[[Comparison], Awaitable[None]]


def compare_reader(
    settings: Settings,
    bootstrap: str,
    handler: ComparisonHandler,
    *,
    group_id: str = "shadowlane.reader",
    from_beginning: bool = True,
    **broker_kwargs: Any,
) -> KafkaBroker:
    """A FastStream broker subscribed to the compare topic, handing typed comparisons to ``handler``."""
    broker = KafkaBroker(bootstrap, client_id=settings.kafka.client_id, **broker_kwargs)

    @broker.subscriber(
        settings.topics.compare_topic,
        group_id=group_id,
        auto_offset_reset="earliest" if from_beginning else "latest",
        ack_policy=AckPolicy.ACK,
        title="compare-reader",
        description="typed Comparison records, committed after the handler returns",
    )
    async def on_comparison(comparison: Comparison) -> None:
        await handler(comparison)

    return broker
