"""Which cluster to talk to, and the connection kwargs every aiokafka client gets.

An explicit address (``KAFKA_BOOTSTRAP_SERVERS`` / ``SHADOWLANE_BOOTSTRAP_SERVERS`` or
``SHADOWLANE_KAFKA__BOOTSTRAP_SERVERS``) always wins; otherwise the local single-node broker under
the state folder is used when it is running. Nothing here starts a broker: only
``shadowlane kafka start`` and ``shadowlane demo`` do (see :mod:`shadowlane.kafka.local`).
"""

from __future__ import annotations

from typing import Any

from shadowlane.errors import BrokerSetupError
from shadowlane.settings import Settings

NO_BOOTSTRAP = (
    "no Kafka bootstrap servers configured (set KAFKA_BOOTSTRAP_SERVERS or "
    "SHADOWLANE_KAFKA__BOOTSTRAP_SERVERS) and the local broker is not running "
    "(start one with `shadowlane kafka start`)"
)


NO_HOOK_BOOTSTRAP = (
    "no Kafka bootstrap servers configured: set KAFKA_BOOTSTRAP_SERVERS (or "
    "SHADOWLANE_KAFKA__BOOTSTRAP_SERVERS); nothing is mirrored until then, and the hook never starts "
    "a broker"
)


def configured_bootstrap(settings: Settings) -> str | None:
    """The bootstrap servers the settings name, or None."""
    return settings.bootstrap_servers or settings.kafka.bootstrap_servers or None


def resolve_bootstrap(settings: Settings) -> str:
    """The bootstrap servers to use: the configured ones, else the running local broker's.

    :class:`BrokerSetupError` (saying how to fix it) when neither is there; never starts a broker.
    """
    explicit = configured_bootstrap(settings)
    if explicit:
        return explicit
    from shadowlane.kafka.local import LocalKafka  # the status file only: no broker is started

    status = LocalKafka.from_settings(settings).status()
    if status["running"] and status["bootstrap"]:
        return str(status["bootstrap"])
    raise BrokerSetupError(NO_BOOTSTRAP)


def client_kwargs(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """Keyword arguments shared by AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient.

    This is the only place the SASL password leaves its ``SecretStr``.
    """
    kafka = settings.kafka
    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.sasl_mechanism:
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism
        if kafka.sasl_username is not None:
            kwargs["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            kwargs["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    if "SSL" in kafka.security_protocol.upper():
        from aiokafka.helpers import create_ssl_context

        kwargs["ssl_context"] = create_ssl_context()  # system CAs; aiokafka requires a context for SSL
    return kwargs
