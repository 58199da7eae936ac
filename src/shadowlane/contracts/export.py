"""Exports JSON Schema for every wire contract, for producers not written in Python.

``python -m shadowlane.contracts.export [DIR]`` writes ``<schema_name>.v<version>.json`` files (default:
``schemas/jsonschema/``). A unit test fails when the checked-in files drift from the models.
Besides the topic values, documents that travel inside them are exported (``EXTRA_SCHEMAS``):
the flag manifest and the route config (control-record payloads), in validation mode since people
write them (fields with defaults optional).
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from pydantic import BaseModel

from shadowlane.contracts.flag_manifest import FlagManifest
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.contracts.topics import TOPICS

DEFAULT_DIR = Path("schemas") / "jsonschema"
"""The checkout's folder of exported schemas, relative to the working directory (the repository root)."""

EXTRA_SCHEMAS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("flag_manifest", FlagManifest),
    ("route_config", RouteConfig),
)
"""(schema name, model) of documents that are not topic values; all version 1."""


def schema_files() -> dict[str, bytes]:
    """File name -> pretty JSON Schema bytes, for every registered value schema."""
    out: dict[str, bytes] = {}
    for topic in TOPICS:
        model = topic.value
        doc = model.model_json_schema(mode="serialization")
        doc["$id"] = f"shadowlane:{model.SCHEMA_NAME}:v{model.SCHEMA_VERSION}"
        doc["x-topic"] = topic.logical
        doc["x-key"] = topic.key
        name = f"{model.SCHEMA_NAME}.v{model.SCHEMA_VERSION}.json"
        out[name] = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    for schema_name, extra in EXTRA_SCHEMAS:
        doc = extra.model_json_schema(mode="validation")
        doc["$id"] = f"shadowlane:{schema_name}:v1"
        pretty = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        out[f"{schema_name}.v1.json"] = pretty + b"\n"
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DEFAULT_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name, data in schema_files().items():
        (target / name).write_bytes(data)
        print(target / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
