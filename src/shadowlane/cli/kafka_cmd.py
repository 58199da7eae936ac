"""``shadowlane kafka install|start|stop|status|env|acls``: the local single-node broker under the
state folder, and the least-privilege ACLs of any cluster.

``start`` prints just the bootstrap address (``host:port``) once the broker answers, so scripts can
do ``export KAFKA_BOOTSTRAP_SERVERS=$(shadowlane kafka start)``; ``status`` prints JSON. With
``--secure`` they act on the secured local broker (SASL_SSL, SCRAM-SHA-512, its own CA, ACLs
enforced); ``env --secure --principal NAME`` prints the settings that connect to it as ``NAME``.
``acls`` prints the ACLs each component needs (:mod:`shadowlane.kafka.acls`); ``--apply`` creates
the topics and grants them, on the configured cluster or (``--secure``) the local one.
``start|stop|status --brokers N`` (N ≥ 2) act on a local N-broker cluster instead
(:mod:`shadowlane.kafka.cluster`); ``start`` then prints the comma-separated bootstrap list.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from typing import Any

from shadowlane.cli.exit_codes import OPERATIONAL, USAGE
from shadowlane.cli.help_format import add_command
from shadowlane.errors import BrokerSetupError, ConfigError
from shadowlane.kafka.acls import COMPONENTS, acl_entries
from shadowlane.kafka.cluster import LocalCluster
from shadowlane.kafka.local import LocalKafka
from shadowlane.kafka.secure import ADMIN
from shadowlane.settings import Settings


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``kafka`` subcommand; its handler is :func:`run`."""
    parser = add_command(
        subparsers,
        "kafka",
        summary="manage the local Kafka broker (KRaft on 127.0.0.1, no Docker) and print ACLs",
        details="The broker lives under $SHADOWLANE_HOME/kafka; its jars come from Maven Central. "
        "--secure acts on the secured broker (SASL_SSL, SCRAM-SHA-512, its own CA, ACLs enforced), "
        "--brokers N on a local cluster of N brokers.",
        examples=[
            "shadowlane kafka start",
            "export KAFKA_BOOTSTRAP_SERVERS=$(shadowlane kafka start)",
            "shadowlane kafka status",
        ],
    )
    actions = parser.add_subparsers(dest="kafka_action", metavar="ACTION", required=True)
    add_command(
        actions,
        "install",
        summary="fetch the broker jars with Maven (start does it when needed)",
        examples=["shadowlane kafka install"],
    )
    secure = argparse.ArgumentParser(add_help=False)
    secure.add_argument(
        "--secure",
        action="store_true",
        help="the secured local broker: SASL_SSL with SCRAM-SHA-512, a CA it generates, ACLs enforced",
    )
    brokers = argparse.ArgumentParser(add_help=False)
    brokers.add_argument(
        "--brokers",
        type=int,
        default=1,
        metavar="N",
        help="1: the single broker (default); 2 or more: a local cluster of N brokers, "
        "topics with min(3, N) replicas and 2 in sync",
    )
    start = add_command(
        actions,
        "start",
        parents=[secure, brokers],
        summary="start (or reuse) the broker and print its bootstrap address",
        details="Prints host:port (a comma-separated list with --brokers) once the broker answers, "
        "and nothing else on stdout, so scripts can capture it.",
        examples=[
            "shadowlane kafka start",
            "shadowlane kafka start --secure",
            "shadowlane kafka start --brokers 3 --timeout 180",
        ],
    )
    start.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for it to answer")
    stop = add_command(
        actions,
        "stop",
        parents=[secure, brokers],
        summary="stop the broker (its data is kept)",
        examples=["shadowlane kafka stop", "shadowlane kafka stop --secure --timeout 10"],
    )
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds after SIGTERM before SIGKILL")
    add_command(
        actions,
        "status",
        parents=[secure, brokers],
        summary="print the broker's status as JSON (running, ready, pid, bootstrap, dirs, version)",
        examples=["shadowlane kafka status", "shadowlane kafka status --brokers 3"],
    )
    env = add_command(
        actions,
        "env",
        summary="print the shell exports that connect to the secured local broker as one principal",
        examples=["eval $(shadowlane kafka env --secure --principal shadow)"],
    )
    env.add_argument("--secure", action="store_true", required=True, help="(required) the secured broker")
    env.add_argument("--principal", default=ADMIN, choices=[ADMIN, *COMPONENTS], help="whose credentials")
    acls = add_command(
        actions,
        "acls",
        parents=[secure],
        summary="print the ACLs each component needs; --apply creates the topics and grants them",
        details="Without --apply nothing is changed: the ACLs are printed as JSON. --apply acts on "
        "the configured cluster, or with --secure on the secured local broker.",
        examples=[
            "shadowlane kafka acls --principal shadow=svc-shadow",
            "shadowlane kafka acls --secure --apply",
        ],
    )
    acls.add_argument(
        "--apply", action="store_true", help="create the topics and grant the ACLs on the cluster"
    )
    acls.add_argument(
        "--principal",
        action="append",
        default=[],
        metavar="COMPONENT=NAME",
        help=f"the principal name of a component ({', '.join(COMPONENTS)}; default: its own name; "
        "repeatable)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out ``args.kafka_action``; 0 on success, 1 when the broker could not be set up."""
    local = LocalKafka.from_settings(settings, secure=bool(getattr(args, "secure", False)))
    action = str(args.kafka_action)
    if int(getattr(args, "brokers", 1)) != 1:
        return _cluster(args, settings, action)
    if action == "acls":
        return _acls(args, settings, local)
    try:
        if action == "install":
            print(local.install())
        elif action == "start":
            if settings.bootstrap_servers or settings.kafka.bootstrap_servers:
                print("note: bootstrap servers are configured, other commands will not use this broker",
                      file=sys.stderr)  # fmt: skip
            print(local.start(timeout_s=float(args.timeout)))
            if local.secure:
                print(f"secured: CA {local.secrets.ca}; users in {local.secrets.users_file}; "
                      "`shadowlane kafka env --secure --principal NAME` prints a principal's settings",
                      file=sys.stderr)  # fmt: skip
        elif action == "stop":
            stopped = local.stop(timeout_s=float(args.timeout))
            print("stopped" if stopped else "not running", file=sys.stderr)
        elif action == "status":
            print(json.dumps(local.status(), indent=2, sort_keys=True))
        elif action == "env":
            if not local.status()["running"]:
                raise BrokerSetupError("the secured broker is not running: `shadowlane kafka start --secure`")
            for name, value in local.client_env(str(args.principal)).items():
                print(f"export {name}={shlex.quote(value)}")
        else:  # pragma: no cover - argparse rejects unknown actions
            raise ValueError(f"unknown kafka action {action!r}")
    except BrokerSetupError as exc:
        print(f"shadowlane kafka {action}: {exc}", file=sys.stderr)
        return OPERATIONAL
    return 0


def _cluster(args: argparse.Namespace, settings: Settings, action: str) -> int:
    """``start|stop|status --brokers N``: the local N-broker cluster."""
    if args.brokers < 2:
        print(f"shadowlane kafka {action}: --brokers must be 1 or at least 2", file=sys.stderr)
        return USAGE
    if getattr(args, "secure", False):
        print(f"shadowlane kafka {action}: --secure is a single broker; drop --brokers", file=sys.stderr)
        return USAGE
    cluster = LocalCluster.from_settings(settings, brokers=int(args.brokers))
    try:
        if action == "start":
            print(cluster.start(timeout_s=max(float(args.timeout), 120.0)))
        elif action == "stop":
            stopped = cluster.stop(timeout_s=float(args.timeout))
            print("stopped" if stopped else "not running", file=sys.stderr)
        else:
            print(json.dumps(cluster.status(), indent=2, sort_keys=True))
    except BrokerSetupError as exc:
        print(f"shadowlane kafka {action}: {exc}", file=sys.stderr)
        return OPERATIONAL
    return 0


def _acls(args: argparse.Namespace, settings: Settings, local: LocalKafka) -> int:
    try:
        principals = dict(item.split("=", 1) for item in args.principal)
    except ValueError:
        print("shadowlane kafka acls: --principal takes COMPONENT=NAME", file=sys.stderr)
        return USAGE
    unknown = sorted(set(principals) - set(COMPONENTS))
    if unknown:
        print(f"shadowlane kafka acls: unknown component {unknown[0]!r} (one of {', '.join(COMPONENTS)})",
              file=sys.stderr)  # fmt: skip
        return USAGE
    entries = acl_entries(settings, principals)
    if not args.apply:
        print(json.dumps([e.as_dict() for e in entries], indent=2))
        return 0
    try:
        kwargs = _admin_kwargs(settings, local)
        asyncio.run(_apply(settings, kwargs, entries))
    except (BrokerSetupError, ConfigError) as exc:
        print(f"shadowlane kafka acls: {exc}", file=sys.stderr)
        return OPERATIONAL
    except Exception as exc:  # the broker refused (not authorized, unreachable)
        print(f"shadowlane kafka acls: {type(exc).__name__}: {exc}", file=sys.stderr)
        return OPERATIONAL
    print(f"granted {len(entries)} ACLs to {len(COMPONENTS)} principals", file=sys.stderr)
    return 0


def _admin_kwargs(settings: Settings, local: LocalKafka) -> dict[str, Any]:
    if local.secure:
        status = local.status()
        if not status["running"]:
            raise BrokerSetupError("the secured broker is not running: `shadowlane kafka start --secure`")
        return {"bootstrap_servers": status["bootstrap"], **local.client_security(ADMIN)}
    from shadowlane.kafka.bootstrap import client_kwargs, resolve_bootstrap

    return client_kwargs(settings, resolve_bootstrap(settings))


async def _apply(settings: Settings, kwargs: dict[str, Any], entries: list[Any]) -> None:
    from shadowlane.kafka.acls import apply_acls
    from shadowlane.kafka.admin import ensure_topics

    await ensure_topics(settings.topics, kwargs)
    await apply_acls(kwargs, entries)
