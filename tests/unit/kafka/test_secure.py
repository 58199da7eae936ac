"""shadowlane/kafka/secure.py: the secured local broker's CA, certificate, users and properties."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

from shadowlane.kafka.acls import COMPONENTS
from shadowlane.kafka.kraft import read_listener_ports, render_server_properties
from shadowlane.kafka.secure import ADMIN, Secrets, scram_format_args, secure_properties


def test_it_makes_a_ca_a_broker_certificate_it_signed_and_private_files(tmp_path: Path) -> None:
    material = Secrets(tmp_path / "secrets")
    users = material.ensure()
    assert set(users) == {ADMIN, *COMPONENTS}
    assert material.ensure() == users  # made once, then read back
    assert stat.S_IMODE(material.dir.stat().st_mode) == 0o700
    for private in (material.keystore, material.users_file, material.dir / "ca.key"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    keystore = material.keystore.read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Kafka's PEM keystore wants
    # a TLS client that trusts only the CA, checking the name 127.0.0.1, completes a handshake
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(material.keystore)
    client = ssl.create_default_context(cafile=str(material.ca))
    assert _handshake(client, server, "127.0.0.1")
    stranger = ssl.create_default_context()  # the system CAs only: refused
    assert not _handshake(stranger, server, "127.0.0.1")


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> bool:
    """An in-memory TLS handshake; False when the client refuses the server's certificate."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for side, obj in (("c", c), ("s", s)):
            if done[side]:
                continue
            try:
                obj.do_handshake()
                done[side] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                return False
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return True
    return False


def test_the_secured_properties_deny_what_no_acl_grants(tmp_path: Path) -> None:
    material = Secrets(tmp_path)
    users = {ADMIN: "pw-admin", **{c: f"pw-{c}" for c in COMPONENTS}}
    lines = secure_properties(material, users)
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in lines
    assert "allow.everyone.if.no.acl.found=false" in lines
    assert "super.users=User:admin\n" in lines
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512" in lines
    text = render_server_properties(
        port=1, controller_port=2, log_dir=tmp_path, num_partitions=1, secure=lines
    )
    assert "listeners=SASL_SSL://127.0.0.1:1,CONTROLLER://127.0.0.1:2" in text
    assert "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL" in text
    path = tmp_path / "server.properties"
    path.write_text(text)
    assert read_listener_ports(path) == (1, 2)
    args = scram_format_args(users)
    assert args[:2] == ["--add-scram", "SCRAM-SHA-512=[name=admin,password=pw-admin]"]
    assert len(args) == 2 * len(users)
