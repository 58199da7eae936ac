"""deploy/tools/kube_schemas.py: kubeconform's strict schemas from the pinned Go modules.

The script runs as ``make kube-schemas`` does, first on small module folders written here (so
every rule is checked against a known input: file names in kubeconform's layout, objects closed
to unknown keys except where the API keeps them, int-or-string and quantities, only the reachable
definitions, a broken source refused), then on the real modules: kubeconform with the generated
schemas rejects manifests with a misspelt field, a wrong type or a field in the wrong place, and
accepts the corrected ones, so ``make helm-check`` can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "deploy/tools/kube_schemas.py"
SCHEMA_TEMPLATE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
K8S, KEDA, PROM = (
    "k8s.io/kubernetes",
    "github.com/kedacore/keda/v2",
    "github.com/prometheus-operator/prometheus-operator",
)
KINDS = (
    ("", "v1", "Service"),
    ("", "v1", "ServiceAccount"),
    ("apps", "v1", "Deployment"),
    ("batch", "v1", "Job"),
    ("policy", "v1", "PodDisruptionBudget"),
)
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}"}


def _swagger(*, dangling: bool = False) -> dict[str, Any]:
    """A tiny OpenAPI v2 spec holding the kinds the script looks for."""
    definitions: dict[str, Any] = {
        INT_OR_STRING: {"type": "string", "format": "int-or-string"},
        QUANTITY: {"type": "string", "description": "a quantity"},
        "test.Spec": {
            "type": "object",
            "properties": {
                "port": _ref(INT_OR_STRING),
                "limits": {"type": "object", "additionalProperties": _ref(QUANTITY)},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "properties": {"type": "string"},  # a field named like the keyword
            },
        },
        "test.Unused": {"type": "object", "properties": {"x": {"type": "string"}}},
    }
    spec = "test.Missing" if dangling else "test.Spec"
    for group, version, kind in KINDS:
        definitions[f"test.{kind}"] = {
            "type": "object",
            "properties": {"kind": {"type": "string"}, "spec": _ref(spec)},
            "x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": kind}],
        }
    return {"swagger": "2.0", "definitions": definitions}


def _crd(group: str, kind: str, versions: list[tuple[str, bool]]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "count": {"type": "integer"},
                    "free": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                        "properties": {"known": {"type": "string"}},
                    },
                    "either": {
                        "anyOf": [{"type": "integer"}, {"type": "string"}],
                        "x-kubernetes-int-or-string": True,
                    },
                },
            }
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "spec": {
            "group": group,
            "names": {"kind": kind},
            "versions": [
                {"name": name, "served": served, "schema": {"openAPIV3Schema": schema}}
                for name, served in versions
            ],
        },
    }


def _modules(tmp_path: Path, swagger: dict[str, Any]) -> list[str]:
    """Module folders with the files the script reads; its ``--module-dir`` arguments."""
    k8s = tmp_path / "kubernetes"
    (k8s / "api/openapi-spec").mkdir(parents=True)
    (k8s / "api/openapi-spec/swagger.json").write_text(json.dumps(swagger))
    keda = tmp_path / "keda" / "config/crd/bases"
    keda.mkdir(parents=True)
    crds = {
        "keda.sh_scaledobjects.yaml": _crd("keda.sh", "ScaledObject", [("v1alpha1", True), ("v0", False)]),
        "keda.sh_triggerauthentications.yaml": _crd("keda.sh", "TriggerAuthentication", [("v1alpha1", True)]),
    }
    for name, crd in crds.items():
        (keda / name).write_text(yaml.safe_dump(crd))
    prom = tmp_path / "prom" / "example/prometheus-operator-crd"
    prom.mkdir(parents=True)
    monitor = _crd("monitoring.coreos.com", "ServiceMonitor", [("v1", True)])
    (prom / "monitoring.coreos.com_servicemonitors.yaml").write_text(yaml.safe_dump(monitor))
    dirs = {K8S: k8s, KEDA: tmp_path / "keda", PROM: tmp_path / "prom"}
    return [arg for module, path in dirs.items() for arg in ("--module-dir", f"{module}={path}")]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def test_schemas_in_kubeconforms_layout_and_strict(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.json").write_text("{}")
    done = _run(str(out), *_modules(tmp_path, _swagger()))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*.json")) == [
        "deployment-apps-v1.json",
        "job-batch-v1.json",
        "poddisruptionbudget-policy-v1.json",
        "scaledobject-keda-v1alpha1.json",  # the unserved v0 is left out
        "service-v1.json",
        "serviceaccount-v1.json",
        "servicemonitor-monitoring-v1.json",
        "triggerauthentication-keda-v1alpha1.json",
    ]
    deployment = _load(out / "deployment-apps-v1.json")
    assert deployment["additionalProperties"] is False
    assert set(deployment["definitions"]) == {"test.Deployment", "test.Spec", INT_OR_STRING, QUANTITY}
    spec = deployment["definitions"]["test.Spec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["properties"] == {"type": "string"}  # a field, not a schema keyword
    assert spec["properties"]["labels"]["additionalProperties"] == {"type": "string"}  # maps stay maps
    assert deployment["definitions"][INT_OR_STRING]["oneOf"] == [{"type": "string"}, {"type": "integer"}]
    assert deployment["definitions"][QUANTITY]["oneOf"] == [{"type": "string"}, {"type": "number"}]

    scaled = _load(out / "scaledobject-keda-v1alpha1.json")
    crd_spec = scaled["properties"]["spec"]
    assert scaled["additionalProperties"] is False
    assert crd_spec["additionalProperties"] is False
    assert "additionalProperties" not in crd_spec["properties"]["free"]  # the API keeps unknown fields
    assert crd_spec["properties"]["either"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]


def test_a_dangling_reference_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _run(str(out), *_modules(tmp_path, _swagger(dangling=True)))
    assert done.returncode == 1
    assert "'test.Missing'" in done.stderr
    assert not list(out.glob("*.json"))


def test_a_missing_kind_is_refused(tmp_path: Path) -> None:
    swagger = _swagger()
    del swagger["definitions"]["test.Job"]
    done = _run(str(tmp_path / "out"), *_modules(tmp_path, swagger))
    assert done.returncode == 1
    assert "Job batch/v1 is not in the Kubernetes OpenAPI spec" in done.stderr


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  replicas: 2
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: i
          resources: {requests: {cpu: 1, memory: 1Gi}}
          ports: [{name: m, containerPort: 9108}]
          livenessProbe: {httpGet: {path: /, port: m}}
"""
PDB = """
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: x}
spec: {maxUnavailable: 25%}
"""
SCALED_OBJECT = """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: x}
spec:
  scaleTargetRef: {name: x}
  triggers: [{type: kafka, metadata: {topic: t, lagThreshold: "10"}}]
"""
SERVICE_MONITOR = """
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: x}
spec:
  selector: {}
  endpoints: [{port: metrics, interval: 30s}]
"""
# (what, valid manifest, the same broken, the field kubeconform must name)
BROKEN = [
    ("misspelt field", DEPLOYMENT, DEPLOYMENT.replace("replicas:", "replcas:"), "replcas"),
    ("wrong type", PDB, PDB.replace("25%", "{pods: 1}"), "maxUnavailable"),
    (
        "field in the wrong place",
        SCALED_OBJECT,
        SCALED_OBJECT.replace("  scaleTargetRef:", "  lagThreshold: '10'\n  scaleTargetRef:"),
        "lagThreshold",
    ),
    (
        "unknown endpoint key",
        SERVICE_MONITOR,
        SERVICE_MONITOR.replace("interval", "scrape_interval"),
        "scrape_interval",
    ),
]


def _kubeconform(kubeconform: str, schemas: Path, manifest: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubeconform, "-strict", "-summary", "-schema-location", str(schemas / SCHEMA_TEMPLATE), "-"],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("what", "valid", "broken", "field"), BROKEN, ids=[b[0] for b in BROKEN])
def test_kubeconform_rejects_a_broken_manifest(
    kubeconform: str, kube_schemas: Path, what: str, valid: str, broken: str, field: str
) -> None:
    assert broken != valid
    done = _kubeconform(kubeconform, kube_schemas, broken)
    assert done.returncode != 0, f"{what} passed: {done.stdout}"
    assert field in done.stdout
    assert "Invalid: 1" in done.stdout
    done = _kubeconform(kubeconform, kube_schemas, valid)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Valid: 1" in done.stdout
