"""kubeconform's JSON schemas for every kind the Helm chart renders, generated from pinned Go modules.

kubeconform looks a manifest's schema up as ``{kind}{suffix}.json`` in a local folder, where the
suffix is ``-{first label of the group}-{version}`` (``-v1`` alone for the core group), e.g.
``deployment-apps-v1.json`` or ``scaledobject-keda-v1alpha1.json``. Nothing can be downloaded from
GitHub here, so the schemas are built from what the Go module proxy serves:

- the Kubernetes kinds from the OpenAPI v2 spec inside ``k8s.io/kubernetes``
  (``api/openapi-spec/swagger.json``): each kind's definition with the definitions it reaches;
- KEDA's ScaledObject and TriggerAuthentication, and prometheus-operator's ServiceMonitor, from the
  ``openAPIV3Schema`` of their CRDs inside their modules.

Every schema is strict: an object that declares its properties admits no other key (unless the API
keeps unknown fields there), so a misspelt field fails validation rather than being dropped by the
API server. The module versions and the kinds are pinned here, and only here.

Usage: ``python deploy/tools/kube_schemas.py OUT_DIR`` (``make kube-schemas``). ``--module-dir
MODULE=DIR`` reads a module from DIR instead of ``go mod download``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

JSON = Any  # a decoded JSON / YAML document: dicts, lists, strings, numbers, booleans, None


@dataclass(frozen=True)
class Module:
    """A Go module at a pinned version."""

    path: str
    version: str


KUBERNETES = Module("k8s.io/kubernetes", "v1.34.4")
# v2.21 needs go >= 1.27.4 to download; v2.20.2 works with the go 1.26 toolchain `make tools` uses
KEDA = Module("github.com/kedacore/keda/v2", "v2.20.2")
PROMETHEUS_OPERATOR = Module("github.com/prometheus-operator/prometheus-operator", "v0.85.0")

SWAGGER = "api/openapi-spec/swagger.json"
# (apiVersion, kind) of every built-in kind the chart renders
KUBE_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("policy/v1", "PodDisruptionBudget"),
)
# the CRDs the chart renders custom resources of, by module and path inside it
CRDS: tuple[tuple[Module, str], ...] = (
    (KEDA, "config/crd/bases/keda.sh_scaledobjects.yaml"),
    (KEDA, "config/crd/bases/keda.sh_triggerauthentications.yaml"),
    (PROMETHEUS_OPERATOR, "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"),
)

INT_OR_STRING: JSON = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
QUANTITY: JSON = {"oneOf": [{"type": "string"}, {"type": "number"}]}  # "500m", "1Gi" or a bare 2
QUANTITY_DEFINITION = "io.k8s.apimachinery.pkg.api.resource.Quantity"
REF_PREFIX = "#/definitions/"


class SchemaError(Exception):
    """A pinned source does not hold what this script needs."""


def schema_filename(api_version: str, kind: str) -> str:
    """The file kubeconform reads for ``kind`` at ``api_version`` (its ``{{ .ResourceKind }}{{
    .KindSuffix }}.json`` template)."""
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind}{suffix}.json".lower()


def strict(node: JSON) -> JSON:
    """A copy of the schema ``node`` in which every object with declared properties admits no other
    key, except where the API keeps unknown fields (``x-kubernetes-preserve-unknown-fields``)."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, JSON] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):  # names are data, each value a schema
            out[key] = {name: strict(schema) for name, schema in value.items()}
        else:
            out[key] = strict(value)
    keeps_unknown = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in node and "additionalProperties" not in node and not keeps_unknown:
        out["additionalProperties"] = False
    return out


def _int_or_string(node: JSON) -> JSON:
    """``format: int-or-string`` (OpenAPI v2) as the JSON schema it means."""
    if isinstance(node, list):
        return [_int_or_string(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        return {key: value for key, value in node.items() if key not in ("type", "format")} | INT_OR_STRING
    return {key: _int_or_string(value) for key, value in node.items()}


def _refs(node: JSON) -> Iterable[str]:
    """The definition names ``node`` refers to."""
    if isinstance(node, list):
        for item in node:
            yield from _refs(item)
    elif isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref[len(REF_PREFIX) :]
        for value in node.values():
            yield from _refs(value)


def _reachable(definitions: Mapping[str, JSON], root: str) -> list[str]:
    """``root`` and every definition it reaches, in discovery order."""
    seen: dict[str, None] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in definitions:
            raise SchemaError(f"the OpenAPI spec refers to {name!r} but does not define it")
        seen[name] = None
        todo.extend(_refs(definitions[name]))
    return list(seen)


def _definition(name: str, schema: JSON) -> JSON:
    if name == QUANTITY_DEFINITION:
        return {"description": schema.get("description", "")} | QUANTITY
    return strict(_int_or_string(schema))


def kube_schemas(swagger: Mapping[str, JSON], kinds: Sequence[tuple[str, str]]) -> dict[str, JSON]:
    """Standalone strict schemas of ``kinds`` from a Kubernetes OpenAPI v2 spec, by file name.

    A schema is its kind's definition with the definitions it reaches under ``definitions`` (the
    spec's own ``#/definitions/…`` references resolve there unchanged)."""
    definitions: Mapping[str, JSON] = swagger["definitions"]
    by_kind: dict[tuple[str, str], str] = {}
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            by_kind.setdefault((api_version, gvk["kind"]), name)
    out: dict[str, JSON] = {}
    for api_version, kind in kinds:
        root = by_kind.get((api_version, kind))
        if root is None:
            raise SchemaError(f"{kind} {api_version} is not in the Kubernetes OpenAPI spec")
        names = _reachable(definitions, root)
        schema = dict(_definition(root, definitions[root]))
        schema["definitions"] = {name: _definition(name, definitions[name]) for name in names}
        out[schema_filename(api_version, kind)] = schema
    return out


def crd_schemas(crd: Mapping[str, JSON]) -> dict[str, JSON]:
    """Strict schemas of every served version of a CustomResourceDefinition, by file name."""
    if crd.get("kind") != "CustomResourceDefinition":
        raise SchemaError(f"expected a CustomResourceDefinition, got {crd.get('kind')!r}")
    spec = crd["spec"]
    out: dict[str, JSON] = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = version.get("schema", {}).get("openAPIV3Schema")
        if schema is None:
            raise SchemaError(f"{spec['names']['kind']} {version['name']} has no openAPIV3Schema")
        api_version = f"{spec['group']}/{version['name']}"
        out[schema_filename(api_version, spec["names"]["kind"])] = strict(schema)
    return out


def module_dir(module: Module, overrides: Mapping[str, Path], go: str) -> Path:
    """Where ``module`` is unpacked: an override, else the Go module cache (``go mod download``)."""
    if module.path in overrides:
        return overrides[module.path]
    done = subprocess.run(
        [go, "mod", "download", "-json", f"{module.path}@{module.version}"],
        capture_output=True,
        text=True,
        check=False,
    )
    info = json.loads(done.stdout) if done.stdout.strip() else {}
    if done.returncode != 0 or "Dir" not in info:
        reason = info.get("Error") or done.stderr.strip() or f"exit status {done.returncode}"
        raise SchemaError(f"go mod download {module.path}@{module.version}: {reason}")
    return Path(info["Dir"])


def build(overrides: Mapping[str, Path], go: str) -> dict[str, JSON]:
    """Every schema the chart needs, by file name."""
    swagger = json.loads((module_dir(KUBERNETES, overrides, go) / SWAGGER).read_text())
    schemas = kube_schemas(swagger, KUBE_KINDS)
    for module, path in CRDS:
        schemas |= crd_schemas(yaml.safe_load((module_dir(module, overrides, go) / path).read_text()))
    return schemas


def write(out: Path, schemas: Mapping[str, JSON]) -> None:
    """Replace the ``*.json`` files in ``out`` by ``schemas``."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):
        stale.unlink()
    for name, schema in sorted(schemas.items()):
        (out / name).write_text(json.dumps(schema, sort_keys=True) + "\n")


def _override(text: str) -> tuple[str, Path]:
    module, sep, directory = text.partition("=")
    if not sep or not module or not directory:
        raise argparse.ArgumentTypeError(f"expected MODULE=DIR, got {text!r}")
    return module, Path(directory)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="folder the schemas are written to")
    parser.add_argument(
        "--module-dir",
        type=_override,
        action="append",
        default=[],
        metavar="MODULE=DIR",
        help="read MODULE from DIR instead of the Go module cache",
    )
    parser.add_argument("--go", default=os.environ.get("GO", "go"), help="the go command ($GO or go)")
    args = parser.parse_args(argv)
    try:
        schemas = build(dict(args.module_dir), args.go)
    except (SchemaError, OSError, KeyError, ValueError) as exc:
        print(f"kube_schemas: {exc}", file=sys.stderr)
        return 1
    write(args.out, schemas)
    print(f"kube_schemas: {len(schemas)} schemas in {args.out}: {', '.join(sorted(schemas))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
