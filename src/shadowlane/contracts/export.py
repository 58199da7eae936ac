"""Exports the wire contracts for teams not written in Python: JSON Schema and AsyncAPI.

``python -m shadowlane.contracts.export [DIR]`` writes ``DIR/jsonschema/<schema_name>.v<version>.json``
for every contract and ``DIR/asyncapi.json`` (AsyncAPI 3.0: one channel per registered topic, its
key and its message's schema by reference), default ``schemas/``. A unit test fails when the
checked-in files drift from the models.
Besides the topic values, documents that travel inside them are exported (``EXTRA_SCHEMAS``):
the flag manifest and the route config (control-record payloads), in validation mode since people
write them (fields with defaults optional).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from shadowlane.contracts.flag_manifest import FlagManifest
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.contracts.topics import TOPICS

DEFAULT_DIR = Path("schemas")
"""The checkout's folder of exported contracts, relative to the working directory (the repository root)."""
ASYNCAPI_VERSION = "3.0.0"

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


def asyncapi_document(version: str) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the topic registry; ``version`` is the package's."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in TOPICS:
        model = topic.value
        channel = topic.logical.replace(".", "-")
        message = {
            "name": model.SCHEMA_NAME,
            "title": model.__name__,
            "contentType": "application/json",
            "payload": {"$ref": f"./jsonschema/{model.SCHEMA_NAME}.v{model.SCHEMA_VERSION}.json"},
            "bindings": {"kafka": {"key": {"type": "string", "description": topic.key}}},
        }
        channels[channel] = {
            "address": "{prefix}" + topic.logical,
            "description": topic.description,
            "parameters": {"prefix": {"default": "shadowlane.", "description": "TopicSettings.prefix"}},
            "messages": {model.SCHEMA_NAME: message},
        }
        if topic.co_partitioned_with:
            channels[channel]["x-co-partitioned-with"] = list(topic.co_partitioned_with)
        ref = {"$ref": f"#/channels/{channel}"}
        operations[f"produce-{channel}"] = {
            "action": "send",
            "channel": ref,
            "description": "producers: " + "; ".join(topic.producers),
        }
        operations[f"consume-{channel}"] = {
            "action": "receive",
            "channel": ref,
            "description": "consumers: " + "; ".join(topic.consumers),
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Shadowlane",
            "version": version,
            "description": "Shadow traffic for LLM services, carried by Kafka: the topics and their records.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
    }


def contract_files(version: str = "1") -> dict[str, bytes]:
    """Relative path -> bytes of every exported file: the JSON Schemas and the AsyncAPI document.
    ``version`` is the AsyncAPI ``info.version`` (the contracts' own version, not the package's,
    so a release does not change the files)."""
    out = {f"jsonschema/{name}": data for name, data in schema_files().items()}
    doc = asyncapi_document(version)
    out["asyncapi.json"] = orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DEFAULT_DIR
    for name, data in contract_files().items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
