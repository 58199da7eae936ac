"""What an operational failure says: one line with the cause and a hint, instead of a traceback.

:func:`explain` turns the errors an operator can fix (a broker that cannot be reached or refuses,
a missing topic, a file that cannot be read) into that line; anything else is a bug and keeps
its traceback. ``shadowlane --debug`` shows the traceback in every case.
"""

from __future__ import annotations

import logging

from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnknownTopicOrPartitionError,
    UnsupportedSaslMechanismError,
)

_HINTS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    (
        (KafkaConnectionError,),
        "cannot reach the Kafka broker ({cause}); is it running? `shadowlane kafka start`, or set "
        "KAFKA_BOOTSTRAP_SERVERS to one that is",
    ),
    (
        (
            AuthenticationFailedError,
            SaslAuthenticationFailed,
            IllegalSaslStateError,
            UnsupportedSaslMechanismError,
        ),
        "the broker refused our credentials ({cause}); check SHADOWLANE_KAFKA__SECURITY_PROTOCOL, "
        "SASL_MECHANISM, SASL_USERNAME and SASL_PASSWORD",
    ),
    (
        (
            TopicAuthorizationFailedError,
            GroupAuthorizationFailedError,
            ClusterAuthorizationFailedError,
            TransactionalIdAuthorizationFailed,
        ),
        "the broker does not allow this principal to do that ({cause}); grant it with "
        "`shadowlane kafka acls` (docs/local-kafka.md)",
    ),
    (
        (UnknownTopicOrPartitionError,),
        "a topic is missing ({cause}); create them with `shadowlane topics`",
    ),
    ((KafkaTimeoutError,), "the broker did not answer in time ({cause}); is it overloaded or far away?"),
    ((KafkaError,), "Kafka said no ({cause})"),
    ((OSError,), "{cause}"),
)


def explain(exc: BaseException) -> str | None:
    """The one line for an operational failure, or None for anything else (a bug)."""
    name, text = type(exc).__name__, str(exc)
    cause = text if text.startswith(name) else f"{name}: {text}"  # aiokafka's errors name themselves
    for kinds, hint in _HINTS:
        if isinstance(exc, kinds):
            return hint.format(cause=cause)
    return None


class _DropUnclosedClients(logging.Filter):
    """aiokafka reports a client that failed to start as ``Unclosed AIOKafka...`` when it is
    collected: noise after a failure that was already explained."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unclosed AIOKafka")


def quiet_unclosed_clients() -> None:
    logging.getLogger("asyncio").addFilter(_DropUnclosedClients())
