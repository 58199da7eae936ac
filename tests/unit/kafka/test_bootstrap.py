"""shadowlane/kafka/bootstrap.py: every client is made from one set of client settings: TLS with a
CA file and a client certificate (mTLS), SASL PLAIN / SCRAM, OAUTHBEARER through a token provider;
a setting that cannot work is a clear error at start. FastStream's reader gets the same."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from faststream.security import BaseSecurity, SASLOAuthBearer, SASLScram512
from pydantic import SecretStr, ValidationError

from shadowlane.errors import ConfigError
from shadowlane.kafka.bootstrap import client_kwargs
from shadowlane.reader import compare_reader, faststream_security
from shadowlane.settings import KafkaSettings, Settings
from tests.support.kafka_auth import StaticTokenProvider


def _settings(**kafka: Any) -> Settings:
    return Settings(kafka=KafkaSettings(**kafka))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a client certificate signed by it, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=shadowlane-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr",
        "-subj", "/CN=shadowlane-client")  # fmt: skip
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "client.pem", "-days", "2")  # fmt: skip
    return {"ca": d / "ca.pem", "cert": d / "client.pem", "key": d / "client.key"}


def test_tls_uses_the_ca_file_and_the_client_certificate(pki: dict[str, Path]) -> None:
    kwargs = client_kwargs(
        _settings(
            security_protocol="SSL",
            ssl_cafile=str(pki["ca"]),
            ssl_certfile=str(pki["cert"]),
            ssl_keyfile=str(pki["key"]),
            ssl_check_hostname=False,
        ),
        "broker:9093",
    )
    context: ssl.SSLContext = kwargs["ssl_context"]
    assert kwargs["security_protocol"] == "SSL"
    assert any(
        ("commonName", "shadowlane-test-ca") in rdn
        for cert in context.get_ca_certs()
        for rdn in cert["subject"]
    )
    assert context.check_hostname is False


def test_a_tls_file_that_cannot_be_read_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TLS context"):
        client_kwargs(_settings(security_protocol="SSL", ssl_cafile=str(tmp_path / "missing.pem")), "b:1")


def test_scram_over_tls() -> None:
    kwargs = client_kwargs(
        _settings(
            security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="hook",
            sasl_password=SecretStr("pw"),
        ),
        "b:1",
    )  # fmt: skip
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_password"] == "pw"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    security, extra = faststream_security(kwargs)
    assert isinstance(security, SASLScram512)
    assert security.use_ssl
    assert extra == {}


def test_oauthbearer_through_a_token_provider() -> None:
    kwargs = client_kwargs(
        _settings(
            security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider="tests.support.kafka_auth:StaticTokenProvider",
        ),
        "b:1",
    )  # fmt: skip
    assert isinstance(kwargs["sasl_oauth_token_provider"], StaticTokenProvider)
    security, extra = faststream_security(kwargs)
    assert isinstance(security, SASLOAuthBearer)
    assert extra["sasl_oauth_token_provider"] is kwargs["sasl_oauth_token_provider"]
    bad = _settings(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider="no:such"
    )
    with pytest.raises(ConfigError, match="cannot be loaded"):
        client_kwargs(bad, "b:1")


@pytest.mark.parametrize(
    "kafka",
    [
        {"security_protocol": "SASL_SSL"},  # no mechanism
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},  # no token provider
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"},  # no user
        {"security_protocol": "SSL", "ssl_certfile": "c.pem"},  # a certificate without its key
        {"security_protocol": "TLS"},  # not a protocol
    ],
)
def test_settings_that_cannot_connect_are_refused(kafka: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        KafkaSettings(**kafka)


def test_plaintext_and_plain_tls_in_faststream_terms() -> None:
    assert faststream_security(client_kwargs(_settings(), "b:1")) == (None, {})
    security, _ = faststream_security(client_kwargs(_settings(security_protocol="SSL"), "b:1"))
    assert type(security) is BaseSecurity
    assert security.use_ssl


def test_the_compare_reader_connects_with_the_same_settings() -> None:
    settings = _settings(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", sasl_username="reader",
        sasl_password=SecretStr("pw"),
    )  # fmt: skip

    async def handle(_: Any) -> None:
        return None

    broker = compare_reader(settings, "b:1", handle)
    config: Any = broker.config.configs[0]
    consumer = config.builder.keywords  # the arguments its consumers are made with
    assert consumer["sasl_mechanism"] == "SCRAM-SHA-512"
    assert consumer["sasl_plain_username"] == "reader"
    assert consumer["security_protocol"] == "SASL_PLAINTEXT"
