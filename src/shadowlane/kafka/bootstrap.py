"""Which cluster to talk to, and the connection kwargs every aiokafka client gets.

An explicit address (``KAFKA_BOOTSTRAP_SERVERS`` / ``SHADOWLANE_BOOTSTRAP_SERVERS`` or
``SHADOWLANE_KAFKA__BOOTSTRAP_SERVERS``) always wins; otherwise the local single-node broker under
the state folder is used when it is running. Nothing here starts a broker: only
``shadowlane kafka start`` and ``shadowlane demo`` do (see :mod:`shadowlane.kafka.local`).
"""

from __future__ import annotations

import importlib
from typing import Any

from shadowlane.errors import BrokerSetupError, ConfigError
from shadowlane.settings import KafkaSettings, Settings

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
    """Keyword arguments shared by AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient:
    every client the project creates is made from them (or, for FastStream, from
    :func:`shadowlane.reader.faststream_security` over them).

    This is the only place the SASL and key passwords leave their ``SecretStr``.
    """
    kafka = settings.kafka
    return {
        "bootstrap_servers": bootstrap,
        "client_id": kafka.client_id,
        "request_timeout_ms": kafka.request_timeout_ms,
        **security_kwargs(kafka),
    }


def security_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """The part of :func:`client_kwargs` that says how a client authenticates and encrypts."""
    kwargs: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.sasl_mechanism:
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism
        if kafka.sasl_username is not None:
            kwargs["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            kwargs["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
        if kafka.sasl_mechanism == "OAUTHBEARER":
            kwargs["sasl_oauth_token_provider"] = _token_provider(kafka.sasl_oauth_token_provider or "")
    if "SSL" in kafka.security_protocol:
        from aiokafka.helpers import create_ssl_context

        password = kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None
        try:
            context = create_ssl_context(
                cafile=kafka.ssl_cafile,  # None: the system CAs
                certfile=kafka.ssl_certfile,
                keyfile=kafka.ssl_keyfile,
                password=password,
            )
        except (OSError, ValueError) as exc:  # a missing or unreadable file, a wrong key password
            raise ConfigError(f"cannot build the TLS context from the kafka ssl_* settings: {exc}") from None
        context.check_hostname = kafka.ssl_check_hostname
        kwargs["ssl_context"] = context
    return kwargs


def _token_provider(path: str) -> Any:
    """The OAUTHBEARER token provider ``module:attribute`` names, called to make one."""
    module_name, _, attribute = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"sasl_oauth_token_provider {path!r} cannot be loaded: {exc}") from None
    return factory()
