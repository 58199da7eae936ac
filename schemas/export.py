"""Exports JSON Schema for every wire contract, for producers not written in Python.

``python -m schemas.export [DIR]`` writes ``<schema_name>.v<version>.json`` files (default:
``schemas/jsonschema/``). A unit test fails when the checked-in files drift from the models.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from schemas.topics import TOPICS

DEFAULT_DIR = Path(__file__).resolve().parent / "jsonschema"


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
