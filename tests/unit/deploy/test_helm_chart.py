"""deploy/helm/shadowlane: what the chart renders, read back from the real ``helm template``.

One Deployment, PodDisruptionBudget and (when autoscaled) KEDA ScaledObject per candidate, plus the
comparator's; the lag exporter (``shadowlane lag --serve``, one replica, optional); KEDA's consumer
group and topic are the ones the workers use; probes, security context and resources on every
container; secrets only by reference; a maxReplicas above the partition count, and other
inconsistent values, stop the render with a message. The rendered
environment and arguments are accepted by Shadowlane's own settings loader and CLI parser, and
the manifests pass kubeconform's strict schemas.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shadowlane.cli.main import build_parser
from shadowlane.settings import ShadowSettings, TopicSettings, load_settings

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy/helm/shadowlane"
FULL_VALUES = CHART / "ci/full-values.yaml"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
SCHEMA_TEMPLATE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
RELEASE = "t"
SECRET_ENV = ("PASSWORD", "USERNAME", "API_KEY", "SIGNING_KEYS")
BIG = {"name": "big", "url": "http://big:8000", "autoscaling": {"maxReplicas": 9}}
TWIN = {"name": "baseline", "url": "http://prod-model:8000"}

Manifest = dict[str, Any]


def _helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, "template", RELEASE, str(CHART), *args], capture_output=True, text=True, timeout=60
    )


def render(helm: str, *args: str) -> list[Manifest]:
    done = _helm(helm, *args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_error(helm: str, *args: str) -> str:
    done = _helm(helm, *args)
    assert done.returncode != 0, f"rendered although it should not: {args}"
    return done.stderr


def kinds(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def containers(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for m in manifests:
        if m["kind"] in ("Deployment", "Job"):
            for container in m["spec"]["template"]["spec"]["containers"]:
                yield m["metadata"]["name"], container


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {item["name"]: item for item in container["env"]}


def component(manifest: Manifest) -> str:
    component: str = manifest["metadata"]["labels"]["app.kubernetes.io/component"]
    return component


def workers(manifests: list[Manifest]) -> dict[str, Manifest]:
    """The consumer-group members' Deployments: every one but the lag exporter's."""
    return {name: d for name, d in kinds(manifests, "Deployment").items() if component(d) != "lag"}


def lag_exporter(manifests: list[Manifest]) -> tuple[Manifest, Manifest]:
    """The lag exporter's Deployment and its one container."""
    (deployment,) = [d for d in kinds(manifests, "Deployment").values() if component(d) == "lag"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


@pytest.fixture(scope="module")
def default(helm: str) -> list[Manifest]:
    return render(helm)


@pytest.fixture(scope="module")
def full(helm: str) -> list[Manifest]:
    return render(helm, "-f", str(FULL_VALUES))


@pytest.fixture(scope="module")
def full_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(FULL_VALUES.read_text())
    return values


def test_defaults_one_deployment_per_candidate_and_the_comparator(default: list[Manifest]) -> None:
    deployments = kinds(default, "Deployment")
    assert set(deployments) == {
        "t-shadowlane-shadow-candidate",
        "t-shadowlane-shadow-baseline",
        "t-shadowlane-compare",
        "t-shadowlane-lag",
    }
    assert kinds(default, "ScaledObject") == {}  # KEDA is opt-in: it needs KEDA's CRDs
    assert all(d["spec"]["replicas"] == 1 for d in deployments.values())
    compare = deployments["t-shadowlane-compare"]["spec"]["template"]["spec"]["containers"][0]
    assert compare["args"][:3] == ["compare", "--candidates", "candidate,baseline"]


def test_every_option_renders_a_scaled_object_per_autoscaled_group(
    full: list[Manifest], full_values: dict[str, Any]
) -> None:
    deployments = kinds(full, "Deployment")
    scaled = kinds(full, "ScaledObject")
    names = [c["name"] for c in full_values["candidates"]]
    assert set(deployments) == {f"shadowlane-shadow-{n}" for n in names} | {
        "shadowlane-compare",
        "shadowlane-lag",
    }
    # llama-small turns autoscaling off for itself: fixed replicas, no ScaledObject
    assert set(scaled) == {"shadowlane-shadow-gpt-next", "shadowlane-shadow-baseline"}
    assert deployments["shadowlane-shadow-llama-small"]["spec"]["replicas"] == 2
    for name in scaled:
        # KEDA owns the replica count: a helm upgrade must not reset it
        assert "replicas" not in deployments[name]["spec"]
        assert scaled[name]["spec"]["scaleTargetRef"]["name"] == name
    assert scaled["shadowlane-shadow-gpt-next"]["spec"]["maxReplicaCount"] == 6  # its own override
    assert scaled["shadowlane-shadow-baseline"]["spec"]["maxReplicaCount"] == 12  # shadow.autoscaling
    assert deployments["shadowlane-compare"]["spec"]["replicas"] == 3


def test_keda_reads_the_lag_of_the_group_the_worker_joins(
    full: list[Manifest], full_values: dict[str, Any]
) -> None:
    prefix, group_prefix = full_values["topics"]["prefix"], full_values["shadow"]["groupPrefix"]
    for name, so in kinds(full, "ScaledObject").items():
        candidate = name.removeprefix("shadowlane-shadow-")
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert meta["consumerGroup"] == f"{group_prefix}{candidate}"
        assert meta["topic"] == f"{prefix}requests"
        assert meta["bootstrapServers"] == full_values["kafka"]["bootstrapServers"]
        assert meta["allowIdleConsumers"] == "false"
        assert meta["offsetResetPolicy"] == "earliest"
        assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable")
        assert so["spec"]["maxReplicaCount"] <= full_values["topics"]["partitions"]
        assert so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
        auth = trigger["authenticationRef"]["name"]
        assert auth in kinds(full, "TriggerAuthentication")
        # the same group prefix reaches the worker, which names its group with it
        container = kinds(full, "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
        assert env_of(container)["SHADOWLANE_SHADOW__GROUP_PREFIX"]["value"] == group_prefix


def test_default_names_are_the_workers_defaults(default: list[Manifest]) -> None:
    """With the chart's defaults KEDA watches the group and topic a worker with default settings uses."""
    (container,) = kinds(default, "Deployment")["t-shadowlane-shadow-candidate"]["spec"]["template"]["spec"][
        "containers"
    ]
    env = env_of(container)
    assert env["SHADOWLANE_SHADOW__GROUP_PREFIX"]["value"] == ShadowSettings().group_prefix
    assert env["SHADOWLANE_TOPICS__PREFIX"]["value"] == TopicSettings().prefix
    assert TopicSettings().requests_topic == f"{TopicSettings().prefix}requests"


def test_trigger_authentication_takes_every_credential_from_secrets(
    full: list[Manifest], full_values: dict[str, Any]
) -> None:
    (auth,) = kinds(full, "TriggerAuthentication").values()
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    sasl, tls = full_values["kafka"]["sasl"], full_values["kafka"]["tls"]
    assert refs == {
        "username": (sasl["existingSecret"], sasl["usernameKey"]),
        "password": (sasl["existingSecret"], sasl["passwordKey"]),
        "ca": (tls["caSecret"]["name"], tls["caSecret"]["key"]),
        "cert": (tls["clientCertSecret"]["name"], tls["clientCertSecret"]["certKey"]),
        "key": (tls["clientCertSecret"]["name"], tls["clientCertSecret"]["keyKey"]),
    }


@pytest.mark.parametrize("values", ["default", "full"])
def test_a_pdb_per_worker_deployment_selects_exactly_its_pods(
    values: str, request: pytest.FixtureRequest
) -> None:
    manifests: list[Manifest] = request.getfixturevalue(values)
    deployments, pdbs = kinds(manifests, "Deployment"), kinds(manifests, "PodDisruptionBudget")
    # the lag exporter has one replica: a budget over one pod never holds an eviction back, or blocks all
    assert set(pdbs) == set(workers(manifests))
    for name, pdb in pdbs.items():
        assert pdb["spec"]["selector"] == deployments[name]["spec"]["selector"]
        assert "maxUnavailable" in pdb["spec"]
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in deployments.values()]
    assert len(set(selectors)) == len(selectors)  # no two workloads share pods


@pytest.mark.parametrize("values", ["default", "full"])
def test_probes_on_the_metrics_port(values: str, request: pytest.FixtureRequest) -> None:
    manifests: list[Manifest] = request.getfixturevalue(values)
    for m in kinds(manifests, "Deployment").values():
        (container,) = m["spec"]["template"]["spec"]["containers"]
        (port,) = container["ports"]
        assert port["name"] == "metrics"
        args = container["args"]
        # the lag exporter serves on --serve PORT --host HOST, the workers on --metrics-port/-host
        port_flag, host_flag = (
            ("--serve", "--host") if args[0] == "lag" else ("--metrics-port", "--metrics-host")
        )
        assert args[args.index(port_flag) + 1] == str(port["containerPort"])
        assert args[args.index(host_flag) + 1] == "0.0.0.0"
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz")):
            assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


@pytest.mark.parametrize("values", ["default", "full"])
def test_non_root_read_only_with_resources(values: str, request: pytest.FixtureRequest) -> None:
    manifests: list[Manifest] = request.getfixturevalue(values)
    for m in manifests:
        if m["kind"] not in ("Deployment", "Job"):
            continue
        pod = m["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        writable = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            mounts = {v["mountPath"]: v["name"] for v in container["volumeMounts"]}
            assert mounts["/tmp"] in writable
            assert mounts["/var/lib/shadowlane"] in writable
            resources = container["resources"]
            assert resources["requests"]["cpu"]
            assert resources["requests"]["memory"]
            assert resources["limits"]["memory"]


def test_worker_shutdown_fits_in_the_grace_period(full: list[Manifest], full_values: dict[str, Any]) -> None:
    drain = max(full_values["shadow"]["drainTimeoutS"], full_values["compare"]["drainTimeoutS"])
    for m in kinds(full, "Deployment").values():
        assert m["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain + 5
        # consumer-group members: replaced one at a time, the new one first
        assert m["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


@pytest.mark.parametrize("values", ["default", "full"])
def test_secrets_only_by_reference(values: str, request: pytest.FixtureRequest) -> None:
    manifests: list[Manifest] = request.getfixturevalue(values)
    assert not [m for m in manifests if m["kind"] == "Secret"]
    seen = set()
    for _, container in containers(manifests):
        for name, item in env_of(container).items():
            if any(word in name for word in SECRET_ENV):
                seen.add(name)
                assert "value" not in item, name
                assert set(item["valueFrom"]) == {"secretKeyRef"}, name
    assert "SHADOWLANE_CONTROL__SIGNING_KEYS" in seen
    if values == "full":
        assert {
            "SHADOWLANE_KAFKA__SASL_USERNAME",
            "SHADOWLANE_KAFKA__SASL_PASSWORD",
            "SHADOWLANE_SHADOW__CANDIDATE_API_KEY",
            "SHADOWLANE_COMPARE__EMBED_API_KEY",
        } <= seen


def test_the_chart_refuses_a_secret_value(helm: str) -> None:
    """values.schema.json admits no key the chart does not know, so a password cannot ride in values."""
    error = render_error(helm, "--set", "kafka.sasl.password=hunter2")
    assert "password" in error


def test_tls_files_are_mounted_from_the_secrets(full: list[Manifest]) -> None:
    deployment = kinds(full, "Deployment")["shadowlane-shadow-gpt-next"]
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "kafka-tls"]
    files = {item["path"] for source in volume["projected"]["sources"] for item in source["secret"]["items"]}
    assert files == {"ca.crt", "tls.crt", "tls.key"}
    (container,) = pod["containers"]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "kafka-tls")
    env = env_of(container)
    for var, name in (("SSL_CAFILE", "ca.crt"), ("SSL_CERTFILE", "tls.crt"), ("SSL_KEYFILE", "tls.key")):
        assert env[f"SHADOWLANE_KAFKA__{var}"]["value"] == f"{mount}/{name}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--set", "shadow.autoscaling.enabled=true", "--set", "shadow.autoscaling.maxReplicas=7"),
            'candidate "candidate": autoscaling.maxReplicas 7 > topics.partitions 6',
        ),
        (
            (
                "--set",
                "shadow.autoscaling.enabled=true",
                "--set",
                "compare.baselineCandidate=",
                "--set-json",
                f"candidates={json.dumps([BIG])}",
            ),
            'candidate "big": autoscaling.maxReplicas 9 > topics.partitions 6',
        ),
        (("--set", "shadow.replicas=8"), 'candidate "candidate": replicas 8 > topics.partitions 6'),
        (("--set", "compare.replicas=7"), "compare.replicas 7 > topics.partitions 6"),
        (("--set", "terminationGracePeriodSeconds=15"), "terminationGracePeriodSeconds 15 must exceed"),
        (("--set", "kafka.sasl.enabled=true"), "kafka.sasl.enabled needs kafka.sasl.existingSecret"),
        (("--set", "compare.baselineCandidate=floor"), 'compare.baselineCandidate "floor" is not among'),
        (
            ("--set-json", f"candidates={json.dumps([TWIN, TWIN])}"),
            '"baseline" is listed twice',
        ),
        (("--set", "compare.embedder=openai"), "compare.embedder openai needs compare.embedUrl"),
    ],
)
def test_inconsistent_values_stop_the_render(helm: str, args: tuple[str, ...], message: str) -> None:
    assert message in render_error(helm, *args)


def test_max_replicas_defaults_to_the_partitions(helm: str) -> None:
    manifests = render(helm, "--set", "shadow.autoscaling.enabled=true", "--set", "topics.partitions=4")
    assert {so["spec"]["maxReplicaCount"] for so in kinds(manifests, "ScaledObject").values()} == {4}


def test_topics_job_is_a_pre_install_and_pre_upgrade_hook(full: list[Manifest]) -> None:
    (job,) = kinds(full, "Job").values()
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert set(hooks) == {"pre-install", "pre-upgrade"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["topics"]
    assert env_of(container)["SHADOWLANE_TOPICS__PARTITIONS"]["value"] == "12"


def test_service_monitor_scrapes_every_role_under_its_prometheus_job(full: list[Manifest]) -> None:
    (monitor,) = kinds(full, "ServiceMonitor").values()
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selected = {
        name: svc
        for name, svc in kinds(full, "Service").items()
        if monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    }
    roles = {svc["metadata"]["labels"][monitor["spec"]["jobLabel"]] for svc in selected.values()}
    assert roles == {"shadow", "compare", "lag"}
    # the job names the dashboards and alerts expect: deploy/prometheus/prometheus.yml's
    jobs = {job["job_name"] for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]}
    assert roles <= jobs
    (endpoint,) = monitor["spec"]["endpoints"]
    for svc in selected.values():
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
        pods = [
            d
            for d in kinds(full, "Deployment").values()
            if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert pods, f"{svc['metadata']['name']} selects no worker"


@pytest.mark.parametrize(
    ("values", "values_file", "port", "interval"),
    [("default", CHART / "values.yaml", "9108", "15"), ("full", FULL_VALUES, "9200", "30")],
)
def test_lag_exporter_runs_lag_serve_like_a_worker(
    values: str, values_file: Path, port: str, interval: str, request: pytest.FixtureRequest
) -> None:
    """One replica of ``shadowlane lag --serve`` with the workers' image, Kafka connection, TLS
    files, identity and security context, probed on its own /healthz and /readyz."""
    manifests: list[Manifest] = request.getfixturevalue(values)
    deployment, container = lag_exporter(manifests)
    (compare,) = [d for d in workers(manifests).values() if component(d) == "compare"]
    pod, worker_pod = deployment["spec"]["template"]["spec"], compare["spec"]["template"]["spec"]
    (worker,) = worker_pod["containers"]
    assert deployment["metadata"]["name"].endswith("-lag")
    assert deployment["spec"]["replicas"] == 1  # two would export every series twice
    assert container["args"] == ["lag", "--serve", port, "--host", "0.0.0.0", "--interval", interval]
    assert container["ports"] == [{"name": "metrics", "containerPort": int(port), "protocol": "TCP"}]
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"] == yaml.safe_load(values_file.read_text())["lagExporter"]["resources"]
    for key in ("securityContext", "serviceAccountName", "automountServiceAccountToken", "volumes"):
        assert pod[key] == worker_pod[key], key
    for key in ("image", "imagePullPolicy", "securityContext", "volumeMounts"):
        assert container[key] == worker[key], key
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # the workers' Kafka connection and group names, item for item, and nothing of the control plane
    env, worker_env = env_of(container), env_of(worker)
    assert all(item == worker_env[name] for name, item in env.items())
    kafka = {v for v in worker_env if v.startswith(("KAFKA_", "SHADOWLANE_KAFKA__", "SHADOWLANE_TOPICS__"))}
    assert kafka | {"SHADOWLANE_SHADOW__GROUP_PREFIX"} <= set(env)
    assert not [name for name in env if name.startswith("SHADOWLANE_CONTROL__")]
    if values == "full":
        for name, key in (
            ("SHADOWLANE_KAFKA__SASL_USERNAME", "user"),
            ("SHADOWLANE_KAFKA__SASL_PASSWORD", "pass"),
        ):
            assert env[name] == {
                "name": name,
                "valueFrom": {"secretKeyRef": {"name": "shadowlane-kafka", "key": key}},
            }
        assert "kafka-tls" in {m["name"] for m in container["volumeMounts"]}
    else:
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": port,
            "prometheus.io/path": "/metrics",
        }


def test_disabling_the_lag_exporter_removes_it_and_nothing_else(helm: str) -> None:
    monitored = ("--set", "metrics.serviceMonitor.enabled=true")
    on = render(helm, *monitored)
    off = render(helm, *monitored, "--set", "lagExporter.enabled=false")

    def names(manifests: list[Manifest]) -> set[tuple[str, str]]:
        return {(m["kind"], m["metadata"]["name"]) for m in manifests}

    assert names(on) - names(off) == {
        ("Deployment", "t-shadowlane-lag"),
        ("Service", "t-shadowlane-lag-metrics"),
    }
    assert names(off) < names(on)
    notes = {}
    for state in ("true", "false"):
        done = subprocess.run(
            [
                helm,
                "install",
                RELEASE,
                str(CHART),
                "--dry-run=client",
                "--set",
                f"lagExporter.enabled={state}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        notes[state] = done.stdout.partition("NOTES:")[2]
    assert "lag exporter: deployment/t-shadowlane-lag" in notes["true"]
    assert "lag exporter" not in notes["false"]


def test_the_lag_exporter_has_one_replica_by_design(helm: str) -> None:
    assert "additional properties 'replicas' not allowed" in render_error(
        helm, "--set", "lagExporter.replicas=2"
    )


def test_rendered_env_and_args_are_what_shadowlane_accepts(
    full: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every variable is a real setting (the loader refuses unknown SHADOWLANE_* names) and every
    argument list parses with the CLI's own parser."""
    secret_values = {
        "SHADOWLANE_CONTROL__SIGNING_KEYS": '{"k2025": "' + "k" * 40 + '"}',
    }
    for name, container in containers(full):
        for var in [v for v in os.environ if v.startswith("SHADOWLANE_") or v == "KAFKA_BOOTSTRAP_SERVERS"]:
            monkeypatch.delenv(var)
        for var, item in env_of(container).items():
            monkeypatch.setenv(var, item["value"] if "value" in item else secret_values.get(var, "secret"))
        settings = load_settings()
        assert settings.kafka.security_protocol == "SASL_SSL", name
        assert settings.kafka.sasl_mechanism == "SCRAM-SHA-512", name
        assert settings.topics.partitions == 12, name
        assert settings.topics.prefix == "acme.shadow.", name
        args = build_parser().parse_args(container["args"])
        assert args.command == container["args"][0], name
        if args.command == "shadow":
            assert settings.shadow.group_prefix == "acme.shadow.", name
            assert args.candidate in name
        if args.command == "compare":
            assert args.candidates == "gpt-next,llama-small,baseline"
            assert settings.compare.embed_url == "https://embeddings.example.com/v1"
        if args.command == "lag":
            # it finds the shadow groups by the prefix the workers name them with
            assert settings.shadow.group_prefix == "acme.shadow.", name
            assert (args.serve, args.host, args.interval, args.group) == (9200, "0.0.0.0", 30.0, [])


@pytest.mark.parametrize("values", [(), ("-f", str(FULL_VALUES))], ids=["default", "full"])
def test_manifests_pass_kubeconform_strict(
    helm: str, kubeconform: str, kube_schemas: Path, values: tuple[str, ...]
) -> None:
    rendered = _helm(helm, *values)
    assert rendered.returncode == 0, rendered.stderr
    done = subprocess.run(
        [kubeconform, "-strict", "-summary", "-schema-location", str(kube_schemas / SCHEMA_TEMPLATE), "-"],
        input=rendered.stdout,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in done.stdout


def pod_specs(node: Any) -> Iterator[Manifest]:
    """Every pod spec in a manifest, whatever its kind: the mappings that hold ``containers``."""
    if isinstance(node, dict):
        if "containers" in node:
            yield node
        for value in node.values():
            yield from pod_specs(value)
    elif isinstance(node, list):
        for item in node:
            yield from pod_specs(item)


@pytest.mark.parametrize("values", ["default", "full"])
def test_no_pod_gets_the_namespaces_service_links(values: str, request: pytest.FixtureRequest) -> None:
    """Kubernetes would give every container <SERVICE>_SERVICE_HOST, <SERVICE>_PORT_… for each
    Service in the namespace; a Service named shadowlane-… (a Strimzi cluster, this chart's own
    metrics Services) turns those into SHADOWLANE_* names, which are not settings."""
    manifests: list[Manifest] = request.getfixturevalue(values)
    pods = [(m["metadata"]["name"], pod) for m in manifests for pod in pod_specs(m)]
    assert {"Deployment", "Job"} <= {m["kind"] for m in manifests}
    assert len(pods) >= 4  # two candidates, the comparator, the lag exporter, the topics Job
    for name, pod in pods:
        assert pod.get("enableServiceLinks") is False, name


ALERTS = ROOT / "deploy/prometheus/alerts.yml"
GUARD = re.compile(r"count_over_time\([^\[]*\[(\d+)m\]\)\)?\s*>=\s*(\d+)")


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    return int(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2]]


def test_the_default_scrape_interval_leaves_the_alert_guards_slack(helm: str) -> None:
    """The alerts want ``count_over_time(…[10m]) >= 20`` scrapes; at the chart's default interval
    the window holds half as many again, so a missed scrape or two does not silence an alert."""
    manifests = render(helm, "--set", "metrics.serviceMonitor.enabled=true")
    (monitor,) = kinds(manifests, "ServiceMonitor").values()
    (endpoint,) = monitor["spec"]["endpoints"]
    interval = _seconds(endpoint["interval"])
    guards = GUARD.findall(ALERTS.read_text())
    assert len(guards) >= 4
    for minutes, least in guards:
        assert int(minutes) * 60 / interval >= 1.5 * int(least), (minutes, least, interval)
    assert interval == _seconds(yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"])


@pytest.mark.parametrize(
    ("interval", "ok"),
    [("20s", True), ("5s", True), ("15000ms", True), ("21s", False), ("30s", False), ("1m", False)],
)
def test_a_scrape_interval_the_alerts_cannot_use_stops_the_render(helm: str, interval: str, ok: bool) -> None:
    values = (
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        f"metrics.serviceMonitor.interval={interval}",
    )
    if ok:
        (monitor,) = kinds(render(helm, *values), "ServiceMonitor").values()
        assert monitor["spec"]["endpoints"][0]["interval"] == interval
    else:
        assert "/metrics/serviceMonitor/interval" in render_error(helm, *values)
