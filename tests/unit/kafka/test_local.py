"""Fast checks of the local broker's plumbing: config, ports, pid validation, install, CLI; no broker."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from shadowlane.cli import kafka_cmd
from shadowlane.errors import BrokerSetupError
from shadowlane.kafka import kraft, procs
from shadowlane.kafka import local as lk
from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap
from shadowlane.settings import KafkaSettings, Settings, load_settings


def _props(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, _, value in pairs}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests must never launch a JVM."""

    def refuse(self: lk.LocalKafka, timeout_s: float = 90.0) -> str:
        raise AssertionError("a unit test tried to start the local broker")

    monkeypatch.setattr(lk.LocalKafka, "start", refuse)


@pytest.fixture
def pom(tmp_path: Path) -> Path:
    path = tmp_path / "pom.xml"
    path.write_text("<project/>\n")
    return path


@pytest.fixture
def decoy(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A sleeping process whose argv looks like our broker's (``kafka.Kafka <data>/server.properties``)."""
    data_dir = (tmp_path / "state" / "kafka" / "data").resolve()
    code = "import time; print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, procs.KAFKA_MAIN, f"{data_dir}/server.properties"],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # exec'd and running: /proc/<pid>/cmdline now shows the decoy's argv
    try:
        yield proc, data_dir
    finally:
        proc.kill()
        proc.wait()


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    text = kraft.render_server_properties(
        port=19092, controller_port=19093, log_dir=tmp_path, num_partitions=6
    )
    props = _props(text)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path)
    assert props["num.partitions"] == "6"
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr"):  # fmt: skip
        assert props[key] == "1"
    assert "0.0.0.0" not in text


def test_listener_ports_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    assert kraft.read_listener_ports(path) is None
    text = kraft.render_server_properties(port=1234, controller_port=5678, log_dir=tmp_path, num_partitions=3)
    path.write_text(text)
    assert kraft.read_listener_ports(path) == (1234, 5678)


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = procs.free_ports(2)
    assert len(set(ports)) == 2
    assert all(procs.port_is_free(p) for p in ports)


def test_free_ports_prefers_previous_ports_only_when_free() -> None:
    wanted = procs.free_ports(2)
    assert procs.free_ports(2, wanted) == wanted
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", wanted[0]))
        busy.listen()
        assert not procs.port_is_free(wanted[0])
        fresh = procs.free_ports(2, wanted)
    assert wanted[0] not in fresh
    assert len(set(fresh)) == 2
    assert procs.free_ports(2, [wanted[1], wanted[1]]) != [wanted[1], wanted[1]]


def test_cluster_id_looks_like_a_kafka_uuid() -> None:
    ids = {kraft.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_non_kafka_pid_is_not_our_broker(tmp_path: Path) -> None:
    assert not procs.is_our_broker(os.getpid(), tmp_path)
    assert not procs.is_our_broker(0, tmp_path)
    assert not procs.is_our_broker(2**22 + 12345, tmp_path)  # beyond pid_max: no such process


def test_decoy_matches_only_its_own_data_dir(decoy: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, data_dir = decoy
    assert procs.is_our_broker(proc.pid, data_dir)
    assert not procs.is_our_broker(proc.pid, data_dir.parent / "other")
    assert not procs.is_our_broker(proc.pid, Path(f"{data_dir}2"))  # prefix of a sibling dir is no match
    proc.kill()
    proc.wait()
    assert not procs.pid_alive(proc.pid)
    assert not procs.is_our_broker(proc.pid, data_dir)


def test_stale_record_of_foreign_pid_is_neither_trusted_nor_killed(tmp_path: Path, pom: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kafka = lk.LocalKafka(tmp_path / "state", pom)
        kafka.kafka_dir.mkdir(parents=True)
        kafka.record_path.write_text(json.dumps({"pid": sleeper.pid, "bootstrap": "127.0.0.1:1"}))
        status = kafka.status()
        assert status["running"] is False
        assert status["pid"] is None
        assert status["bootstrap"] is None
        assert kafka.stop(timeout_s=1) is False
        assert sleeper.poll() is None  # still alive: not ours, so not signalled
        assert not kafka.record_path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_install_is_skipped_when_marker_matches_pom(tmp_path: Path, pom: Path) -> None:
    kafka = lk.LocalKafka(tmp_path / "state", pom, mvn="/nonexistent/mvn")
    kafka.libs_dir.mkdir(parents=True)
    (kafka.libs_dir / "kafka_2.13-9.9.9.jar").write_bytes(b"")
    (kafka.libs_dir / ".installed").write_text(hashlib.sha256(pom.read_bytes()).hexdigest() + "\n")
    assert kafka.install() == kafka.libs_dir
    assert kafka.version() == "9.9.9"
    pom.write_text("<project><!-- changed --></project>\n")
    with pytest.raises(BrokerSetupError, match="Maven"):
        kafka.install()


def test_install_reports_the_maven_output_tail(tmp_path: Path, pom: Path) -> None:
    fake = tmp_path / "mvn"
    fake.write_text("#!/bin/sh\necho '[ERROR] Could not resolve org.apache.kafka:kafka_2.13'\nexit 3\n")
    fake.chmod(0o755)
    kafka = lk.LocalKafka(tmp_path / "state", pom, mvn=str(fake))
    with pytest.raises(BrokerSetupError, match="exit 3") as err:
        kafka.install()
    assert "Could not resolve" in str(err.value)
    assert not kafka.libs_dir.exists()
    assert not list(kafka.kafka_dir.glob("libs.tmp-*"))


def test_client_kwargs_unwraps_the_secret_only_there() -> None:
    settings = Settings(
        kafka=KafkaSettings(
            client_id="me", security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
            sasl_username="u", sasl_password=SecretStr("hunter2"), request_timeout_ms=1234,
        )
    )  # fmt: skip
    assert "hunter2" not in repr(settings)
    kwargs = client_kwargs(settings, "h:1")
    assert kwargs == {
        "bootstrap_servers": "h:1", "client_id": "me", "security_protocol": "SASL_PLAINTEXT",
        "request_timeout_ms": 1234, "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u",
        "sasl_plain_password": "hunter2",
    }  # fmt: skip
    assert set(client_kwargs(Settings(), "h:1")) == {
        "bootstrap_servers", "client_id", "security_protocol", "request_timeout_ms"
    }  # fmt: skip


def test_resolve_bootstrap_prefers_configured_servers(tmp_path: Path) -> None:
    # the top-level field is only settable through its aliases (env names)
    assert resolve_bootstrap(load_settings(KAFKA_BOOTSTRAP_SERVERS="a:1", state_dir=tmp_path)) == "a:1"
    nested = Settings(kafka=KafkaSettings(bootstrap_servers="b:2"), state_dir=tmp_path)
    assert resolve_bootstrap(nested) == "b:2"
    with pytest.raises(BrokerSetupError, match="KAFKA_BOOTSTRAP_SERVERS") as err:
        resolve_bootstrap(Settings(state_dir=tmp_path))
    assert "shadowlane kafka start" in str(err.value)
    # library code never starts a broker: nothing was installed, formatted or launched
    assert not (tmp_path / "kafka" / "broker.json").exists()
    assert not (tmp_path / "kafka" / "data").exists()


def test_cli_wiring_and_status_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="shadowlane")
    kafka_cmd.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["kafka", "status"])
    assert args.handler is kafka_cmd.run
    assert args.handler(args, load_settings(state_dir=tmp_path)) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["running"] is False
    assert status["data_dir"] == str(tmp_path.resolve() / "kafka" / "data")
    start = parser.parse_args(["kafka", "start", "--timeout", "5"])
    assert (start.kafka_action, start.timeout) == ("start", 5.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["kafka"])
