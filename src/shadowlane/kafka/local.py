"""A real single-node Kafka broker (KRaft, combined broker+controller) on 127.0.0.1, no Docker.

Layout under ``<state_dir>/kafka``::

    libs/             jars from the packaged ``kafka/resources/pom.xml`` (Maven Central)
                      + ``.installed`` (pom sha256)
    data/             server.properties, log4j2.xml, logs/ (server.log, kafka.out), kraft/ (log.dirs)
    broker.json       the running broker: pid, pgid, ports, bootstrap, cluster id, dirs
    kafka.lock        fcntl lock held around install/start/stop, so two processes never race

The quorum is static (``controller.quorum.voters``, kraft.version 0), so the voter endpoint comes
from server.properties on every start and the listener ports may change between restarts of an
already formatted data dir. The previous ports are reused when they are still free.

``secure=True`` is another broker under ``<state_dir>/kafka-secure`` (both may run at once):
SASL_SSL with SCRAM-SHA-512, its own CA, deny-by-default ACLs (:mod:`shadowlane.kafka.secure`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shadowlane.errors import BrokerSetupError
from shadowlane.kafka.bootstrap import security_kwargs
from shadowlane.kafka.kraft import (
    NODE_ID,
    ClusterNode,
    new_cluster_id,
    probe,
    read_listener_ports,
    render_server_properties,
)
from shadowlane.kafka.procs import (
    HOST,
    KAFKA_MAIN,
    find_broker_pids,
    free_ports,
    is_our_broker,
    pid_alive,
    process_group,
)
from shadowlane.kafka.secure import ADMIN, MECHANISM, Secrets, scram_format_args, secure_properties
from shadowlane.settings import KafkaSettings, Settings

STORAGE_TOOL = "kafka.tools.StorageTool"
JVM_OPTS = ("-Xms128m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError")
# Launches the broker in the background and prints its pid; the shell exits at once, so the JVM is
# re-parented (no zombie child of ours) and keeps the new session / process group of the shell.
_LAUNCH = 'out="$1"; shift; "$@" </dev/null >"$out" 2>&1 & echo $!'


def _tail(text: str | Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text (or file), without ANSI colour codes."""
    if isinstance(text, Path):
        try:
            text = text.read_text(errors="replace")
        except OSError:
            return ""
    return "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()[-lines:])


class LocalKafka:
    """Installs, starts, stops and reports the broker under ``<state_dir>/kafka``."""

    def __init__(
        self,
        state_dir: Path,
        pom: Path,
        *,
        heap: str = "512m",
        java: str | None = None,
        mvn: str | None = None,
        num_partitions: int = 6,
        secure: bool = False,
        node: ClusterNode | None = None,
    ) -> None:
        self.secure = secure
        self.node = node
        if node is not None:  # one node of a LocalCluster: its own dir, the cluster's jars
            self.kafka_dir = node.kafka_dir
            self.libs_dir = node.libs_dir
        else:
            self.kafka_dir = Path(state_dir).resolve() / ("kafka-secure" if secure else "kafka")
            self.libs_dir = self.kafka_dir / "libs"
        self.pom = Path(pom).resolve()
        self.heap = heap
        self.num_partitions = num_partitions
        self._java = java
        self._mvn = mvn
        self.data_dir = self.kafka_dir / "data"
        self.log_dir = self.data_dir / "kraft"
        self.logs_dir = self.data_dir / "logs"
        self.server_properties = self.data_dir / "server.properties"
        self.record_path = self.kafka_dir / "broker.json"
        self.lock_path = self.kafka_dir / "kafka.lock"
        self.secrets = Secrets(self.kafka_dir / "secrets")

    @classmethod
    def from_settings(cls, settings: Settings, *, secure: bool = False) -> LocalKafka:
        return cls(
            settings.state_dir, settings.kafka_pom, num_partitions=settings.topics.partitions, secure=secure
        )

    def client_settings(self, principal: str = ADMIN) -> KafkaSettings:
        """How ``principal`` connects to the secured broker: SASL_SSL, SCRAM, the generated CA."""
        return KafkaSettings(
            security_protocol="SASL_SSL",
            sasl_mechanism=MECHANISM,
            sasl_username=principal,
            sasl_password=SecretStr(self.secrets.users()[principal]),
            ssl_cafile=str(self.secrets.ca),
        )

    def client_security(self, principal: str = ADMIN) -> dict[str, Any]:
        """aiokafka's SASL / TLS arguments for ``principal`` on the secured broker ({} on the plain one)."""
        return security_kwargs(self.client_settings(principal)) if self.secure else {}

    def client_env(self, principal: str = ADMIN) -> dict[str, str]:
        """The environment that points Shadowlane's settings at the secured broker as ``principal``."""
        kafka = self.client_settings(principal)
        env = {"KAFKA_BOOTSTRAP_SERVERS": str((self._read_record() or {}).get("bootstrap", ""))}
        for name in ("security_protocol", "sasl_mechanism", "sasl_username", "ssl_cafile"):
            env[f"SHADOWLANE_KAFKA__{name.upper()}"] = str(getattr(kafka, name))
        env["SHADOWLANE_KAFKA__SASL_PASSWORD"] = self.secrets.users()[principal]
        return env

    # -- public API ---------------------------------------------------------------------------

    def install(self) -> Path:
        """Fetch the broker jars into ``libs/`` (skipped when already done for this pom)."""
        with self._locked():
            return self._install()

    def start(self, timeout_s: float = 90.0) -> str:
        """Start the broker (or reuse the running one) and return its ``host:port`` once it answers."""
        with self._locked():
            record = self._read_record()
            if record and is_our_broker(int(record["pid"]), self.data_dir):
                if self._wait_ready(record, timeout_s):
                    return str(record["bootstrap"])
                self._terminate(int(record["pid"]), 30.0)  # alive but deaf: replace it
            for pid in find_broker_pids(self.data_dir):  # unrecorded leftovers would hold the dir lock
                self._terminate(pid, 30.0)
            self.record_path.unlink(missing_ok=True)
            self._install()
            try:
                return self._launch(timeout_s)
            except BrokerSetupError as exc:
                if "BindException" not in str(exc) and "Address already in use" not in str(exc):
                    raise
                return self._launch(timeout_s, fresh_ports=True)  # lost a port race: once more

    def spawn(self) -> str:
        """Launch this node without waiting for it to answer (a cluster's nodes answer only once a
        quorum of them runs); a node already running is left as it is. Returns its bootstrap."""
        with self._locked():
            record = self._read_record()
            if record and is_our_broker(int(record["pid"]), self.data_dir):
                return str(record["bootstrap"])
            for pid in find_broker_pids(self.data_dir):
                self._terminate(pid, 30.0)
            self.record_path.unlink(missing_ok=True)
            return str(self._launch(0.0, wait=False))

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether the running node answers a metadata request within ``timeout_s``."""
        record = self._read_record()
        return bool(record) and self._wait_ready(record or {}, timeout_s)

    def kill(self) -> bool:
        """SIGKILL the running broker (a crash, for fault tests); True when one was running."""
        record = self._read_record()
        if not record or not is_our_broker(int(record["pid"]), self.data_dir):
            return False
        pid = int(record["pid"])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return True

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker; True when one was running. Idempotent."""
        with self._locked():
            pids = set(find_broker_pids(self.data_dir))
            record = self._read_record()
            if record and is_our_broker(int(record["pid"]), self.data_dir):
                pids.add(int(record["pid"]))
            for pid in sorted(pids):
                self._terminate(pid, timeout_s)
            self.record_path.unlink(missing_ok=True)
            return bool(pids)

    def status(self) -> dict[str, Any]:
        """running/ready flags, pid, bootstrap, dirs and the installed Kafka version."""
        record = self._read_record()
        live = record if record and is_our_broker(int(record["pid"]), self.data_dir) else {}
        return {
            "running": bool(live),
            "ready": bool(live) and probe(str(live["bootstrap"]), 3.0, self.client_security()),
            "secure": self.secure,
            "pid": live.get("pid"),
            "bootstrap": live.get("bootstrap"),
            "controller_port": live.get("controller_port"),
            "cluster_id": self._cluster_id(),
            "data_dir": str(self.data_dir),
            "server_log": str(self.logs_dir / "server.log"),
            "version": self.version(),
        }

    def version(self) -> str | None:
        """Kafka version of the installed jars, None before :meth:`install`."""
        jars = sorted(self.libs_dir.glob("kafka_2.13-*.jar"))
        return jars[-1].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else None

    # -- internals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as fh:  # a separate open file description per call
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _java_bin(self) -> str:
        home = os.environ.get("JAVA_HOME")
        candidates = [self._java, str(Path(home) / "bin" / "java") if home else None, shutil.which("java")]
        for cand in candidates:
            if cand and (shutil.which(cand) or Path(cand).is_file()):
                return cand
        raise BrokerSetupError("Java not found (need Java 17+ for Kafka 4): install a JDK or set JAVA_HOME")

    def _install(self) -> Path:
        digest = hashlib.sha256(self.pom.read_bytes()).hexdigest() if self.pom.is_file() else None
        if digest is None:
            raise BrokerSetupError(f"Kafka pom not found: {self.pom}")
        marker = self.libs_dir / ".installed"
        if marker.is_file() and marker.read_text().strip() == digest and self.version():
            return self.libs_dir
        mvn = self._mvn or shutil.which("mvn")
        if not mvn or not (shutil.which(mvn) or Path(mvn).is_file()):
            raise BrokerSetupError("Maven (mvn) not found on PATH: install Maven 3.8+ to fetch Kafka")
        self._java_bin()
        for leftover in [*self.kafka_dir.glob("libs.tmp-*"), *self.kafka_dir.glob("libs.old-*")]:
            shutil.rmtree(leftover, ignore_errors=True)  # from an interrupted install (we hold the lock)
        tmp = self.kafka_dir / f"libs.tmp-{os.getpid()}"
        cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(self.pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BrokerSetupError(f"maven could not fetch the Kafka jars: {exc}") from exc
        if proc.returncode != 0 or not list(tmp.glob("kafka_2.13-*.jar")):
            shutil.rmtree(tmp, ignore_errors=True)
            out = _tail(proc.stdout + proc.stderr)
            raise BrokerSetupError(f"maven failed (exit {proc.returncode}): {' '.join(cmd)}\n{out}")
        (tmp / ".installed").write_text(digest + "\n")
        old = self.kafka_dir / f"libs.old-{os.getpid()}"
        if self.libs_dir.exists():
            self.libs_dir.rename(old)
        tmp.rename(self.libs_dir)
        shutil.rmtree(old, ignore_errors=True)
        return self.libs_dir

    def _jvm(self, main: str) -> list[str]:
        log4j = self.data_dir / "log4j2.xml"
        src = self.pom.parent / "log4j2.xml"
        if src.is_file():
            shutil.copyfile(src, log4j)
        cmd = [self._java_bin(), f"-Xmx{self.heap}", *JVM_OPTS, f"-Dkafka.logs.dir={self.logs_dir}"]
        if log4j.is_file():
            cmd.append(f"-Dlog4j2.configurationFile={log4j}")
        return [*cmd, "-cp", f"{self.libs_dir}{os.sep}*", main]

    def _cluster_id(self) -> str | None:
        with contextlib.suppress(OSError):
            for line in (self.log_dir / "meta.properties").read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.partition("=")[2].strip()
        return None

    def _format(self) -> str:
        cid = self._cluster_id()
        if cid:
            return cid
        cid = self.node.cluster_id if self.node is not None else new_cluster_id()
        cmd = [*self._jvm(STORAGE_TOOL), "format", f"--cluster-id={cid}", "-c", str(self.server_properties)]
        if self.secure:  # the users' SCRAM credentials go into the metadata log from the start
            cmd += scram_format_args(self.secrets.users())
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        if proc.returncode != 0 or self._cluster_id() != cid:
            out = _tail(proc.stdout + proc.stderr)
            raise BrokerSetupError(f"formatting {self.log_dir} failed (exit {proc.returncode}):\n{out}")
        return cid

    def _launch(self, timeout_s: float, *, fresh_ports: bool = False, wait: bool = True) -> str:
        node = self.node
        if node is not None:  # the cluster chose the ports: the quorum's voters name them
            port, controller_port = node.port, node.controller_port
        else:
            previous = () if fresh_ports else (read_listener_ports(self.server_properties) or ())
            port, controller_port = free_ports(2, previous)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        parts = self.num_partitions
        secure = secure_properties(self.secrets, self.secrets.ensure()) if self.secure else None
        props = render_server_properties(
            port=port,
            controller_port=controller_port,
            log_dir=self.log_dir,
            num_partitions=parts,
            secure=secure,
            node_id=node.node_id if node is not None else NODE_ID,
            voters=node.voters if node is not None else None,
            brokers=node.brokers if node is not None else 1,
        )
        self.server_properties.write_text(props)
        cluster_id = self._format()
        out = self.logs_dir / "kafka.out"
        cmd = ["/bin/sh", "-c", _LAUNCH, "sh", str(out), *self._jvm(KAFKA_MAIN), str(self.server_properties)]
        try:
            sh = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True,
                                start_new_session=True, cwd=self.data_dir)  # fmt: skip
            pid = int(sh.stdout.strip())
            pgid = os.getpgid(pid)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            raise BrokerSetupError(f"could not launch the Kafka broker: {exc}") from exc
        record: dict[str, Any] = {
            "pid": pid, "pgid": pgid, "bootstrap": f"{HOST}:{port}", "port": port,
            "controller_port": controller_port, "cluster_id": cluster_id, "data_dir": str(self.data_dir),
            "log_dir": str(self.log_dir), "server_log": str(self.logs_dir / "server.log"),
            "version": self.version(), "started_at": time.time(),
        }  # fmt: skip
        self._write_record(record)
        if not wait or self._wait_ready(record, timeout_s):
            return str(record["bootstrap"])
        died = not is_our_broker(pid, self.data_dir)
        self._terminate(pid, 15.0)
        self.record_path.unlink(missing_ok=True)
        what = "exited during startup" if died else f"did not answer within {timeout_s:.0f}s"
        logs = f"--- {out} ---\n{_tail(out)}\n--- server.log ---\n{_tail(self.logs_dir / 'server.log')}"
        raise BrokerSetupError(f"Kafka broker (pid {pid}) {what}\n{logs}")

    def _wait_ready(self, record: dict[str, Any], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        pid = int(record["pid"])
        while True:
            if not is_our_broker(pid, self.data_dir):
                return False
            wait_s = min(5.0, max(1.0, deadline - time.monotonic()))
            if probe(str(record["bootstrap"]), wait_s, self.client_security()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.25)

    def _terminate(self, pid: int, timeout_s: float) -> None:
        """SIGTERM the broker's process group, SIGKILL after ``timeout_s``.

        The group is signalled only when every member is this broker (as when we launched it);
        otherwise, e.g. a broker started by hand from a shell, just the pid is.
        """
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
            if not is_our_broker(pid, self.data_dir):
                return
            try:
                pgid = os.getpgid(pid)
                group = process_group(pgid)
                if pgid > 1 and pgid != os.getpgrp() and all(is_our_broker(p, self.data_dir) for p in group):
                    os.killpg(pgid, sig)  # the whole group is the broker (our launcher's own session)
                else:
                    os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait_s
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not pid_alive(pid):
                return
        raise BrokerSetupError(f"Kafka broker pid {pid} survived SIGKILL")

    def _read_record(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None

    def _write_record(self, record: dict[str, Any]) -> None:
        tmp = self.record_path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, self.record_path)
