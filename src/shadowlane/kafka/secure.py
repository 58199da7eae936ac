"""The local broker's secured mode (``shadowlane kafka start --secure``): what it needs besides the
plain broker, all generated under ``<state_dir>/kafka-secure/secrets`` (mode 0700) on first start.

- **TLS.** A CA of its own and a broker certificate it signs (for ``127.0.0.1`` and ``localhost``),
  made with the ``openssl`` command; the broker reads them as PEM files. Clients trust ``ca.pem``.
- **SASL.** Clients authenticate with SCRAM-SHA-512 on the one client listener (SASL_SSL). The
  users are the administrator (``admin``, the broker's own inter-broker identity and the only super
  user) and one principal per component of :data:`shadowlane.kafka.acls.COMPONENTS`; their
  passwords are random and kept in ``users.json`` (mode 0600). They are written into the metadata
  log when the data dir is formatted. The controller listener takes SASL PLAIN for ``admin`` only.
- **Authorization.** KRaft's ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``:
  a principal may do only what an ACL grants it (``shadowlane kafka acls --apply`` grants each
  component its share).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from shadowlane.errors import BrokerSetupError
from shadowlane.kafka.acls import COMPONENTS

ADMIN = "admin"
MECHANISM: Final = "SCRAM-SHA-512"


@dataclass(frozen=True, slots=True)
class Secrets:
    """Where the secured broker's generated material lives."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def keystore(self) -> Path:
        """The broker's private key (PKCS#8) and certificate chain, one PEM file."""
        return self.dir / "broker.pem"

    @property
    def users_file(self) -> Path:
        return self.dir / "users.json"

    def ensure(self) -> dict[str, str]:
        """Make what is missing (CA, broker certificate, users); return the users' passwords."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not (self.ca.is_file() and self.keystore.is_file()):
            _make_pki(self.dir)
        return self.users()

    def users(self) -> dict[str, str]:
        """``{principal: password}``: the administrator and every component (made when missing)."""
        try:
            users: dict[str, str] = json.loads(self.users_file.read_text())
        except (OSError, ValueError):
            users = {}
        wanted = [ADMIN, *COMPONENTS]
        if all(name in users for name in wanted):
            return users
        users = {name: users.get(name) or secrets.token_urlsafe(24) for name in wanted}
        tmp = self.users_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(users, indent=2) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.users_file)
        return users


def _openssl(*args: str, cwd: Path) -> None:
    try:
        proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerSetupError(f"--secure needs the openssl command to make its CA: {exc}") from None
    if proc.returncode != 0:
        raise BrokerSetupError(f"openssl {args[0]} failed: {proc.stderr.strip()[-500:]}")


def _make_pki(folder: Path) -> None:
    """A CA (``ca.pem``, its key ``ca.key``) and the broker's key and certificate (``broker.pem``)."""
    days = "3650"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", days, "-subj", "/CN=shadowlane local CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
             "-subj", "/CN=localhost", cwd=folder)  # fmt: skip
    (folder / "broker.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "broker.crt", "-days", days, "-extfile", "broker.ext", cwd=folder)  # fmt: skip
    _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.pk8", cwd=folder)
    keystore = (folder / "broker.pk8").read_text() + (folder / "broker.crt").read_text()
    (folder / "broker.pem").write_text(keystore)
    for name in ("ca.key", "broker.key", "broker.pk8", "broker.pem"):
        os.chmod(folder / name, 0o600)
    for leftover in ("broker.csr", "broker.ext", "broker.key", "broker.pk8"):
        (folder / leftover).unlink(missing_ok=True)


def _jaas(module: str, **options: str) -> str:
    quoted = " ".join(f'{k}="{v}"' for k, v in options.items())
    return f"org.apache.kafka.common.security.{module} required {quoted};"


def secure_properties(material: Secrets, users: dict[str, str]) -> str:
    """The lines that turn the plain broker's server.properties into the secured one (listener
    names and protocols are set by :func:`shadowlane.kafka.kraft.render_server_properties`)."""
    admin = users[ADMIN]
    scram = _jaas("scram.ScramLoginModule", username=ADMIN, password=admin)
    plain = _jaas("plain.PlainLoginModule", username=ADMIN, password=admin, **{f"user_{ADMIN}": admin})
    return "\n".join(
        [
            "sasl.enabled.mechanisms=" + MECHANISM,
            "sasl.mechanism.inter.broker.protocol=" + MECHANISM,
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain}",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={material.keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={material.ca}",
            "ssl.client.auth=none",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{ADMIN}",
            "",
        ]
    )


def scram_format_args(users: dict[str, str]) -> list[str]:
    """``kafka-storage format`` arguments that write every user's SCRAM credential."""
    args: list[str] = []
    for name, password in users.items():
        args += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
    return args
