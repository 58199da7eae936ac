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
from faststream.security import BaseSecurity, SASLOAuthBearer, SASLPlaintext, SASLScram256, SASLScram512

from shadowlane.contracts.comparison import Comparison
from shadowlane.kafka.bootstrap import client_kwargs
from shadowlane.settings import Settings

ComparisonHandler = Callable[[Comparison], Awaitable[None]]


def faststream_security(kwargs: dict[str, Any]) -> tuple[BaseSecurity | None, dict[str, Any]]:
    """FastStream's security object for :func:`~shadowlane.kafka.bootstrap.client_kwargs`, and
    the broker arguments it does not carry (the OAUTHBEARER token provider)."""
    protocol = kwargs.get("security_protocol", "PLAINTEXT")
    context = kwargs.get("ssl_context")
    tls = protocol in ("SSL", "SASL_SSL")
    mechanism = str(kwargs.get("sasl_mechanism"))
    if not protocol.startswith("SASL_"):
        return (BaseSecurity(ssl_context=context, use_ssl=True) if tls else None), {}
    if mechanism == "OAUTHBEARER":
        provider = {"sasl_oauth_token_provider": kwargs["sasl_oauth_token_provider"]}
        return SASLOAuthBearer(ssl_context=context, use_ssl=tls), provider
    kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}[mechanism]
    user, password = kwargs["sasl_plain_username"], kwargs.get("sasl_plain_password", "")
    return kind(user, password, ssl_context=context, use_ssl=tls), {}


def compare_reader(
    settings: Settings,
    bootstrap: str,
    handler: ComparisonHandler,
    *,
    group_id: str = "shadowlane.reader",
    from_beginning: bool = True,
    **broker_kwargs: Any,
) -> KafkaBroker:
    """A FastStream broker subscribed to the compare topic, handing typed comparisons to ``handler``.
    It connects as every other client does (TLS, SASL, OAUTHBEARER: ``settings.kafka``)."""
    security, extra = faststream_security(client_kwargs(settings, bootstrap))
    broker = KafkaBroker(
        bootstrap, client_id=settings.kafka.client_id, security=security, **extra, **broker_kwargs
    )

    @broker.subscriber(
        settings.topics.compare_topic,
        group_id=group_id,
        auto_offset_reset="earliest" if from_beginning else "latest",
        ack_policy=AckPolicy.ACK,
        isolation_level="read_committed",  # what the comparator committed: each comparison once
        title="compare-reader",
        description="typed Comparison records, committed after the handler returns",
    )
    async def on_comparison(comparison: Comparison) -> None:
        await handler(comparison)

    return broker
