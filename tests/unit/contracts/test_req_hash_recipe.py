"""docs/contracts.md: the documented ``req_hash`` recipe, run with the standard library only
(``json`` and ``hashlib``, not Shadowlane's code), gives the documented hash, the code's hash, and
the hash of what the hook puts on the wire."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import orjson

from shadowlane.contracts.envelope import REQ_HASH_RECIPE, RequestEnvelope
from shadowlane.hashing import canonical_json, req_hash
from shadowlane.hook.context import RawMirror
from shadowlane.hook.envelope_builder import EnvelopeBuilder
from shadowlane.sanitize import Sanitizer

DOCS = Path(__file__).resolve().parents[3] / "docs" / "contracts.md"


def _documented() -> dict[str, str]:
    text = DOCS.read_text()
    block = text.split("<!-- req_hash example -->", 1)[1].split("```", 2)[1]
    fields = {}
    for line in block.strip().splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    return fields


def _recipe(req_id: str, request: object) -> str:
    """The recipe as the docs state it, with the standard library."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(req_id.encode() + b"\x00" + canonical.encode(), digest_size=16).hexdigest()


def test_the_worked_example_holds() -> None:
    doc = _documented()
    request = json.loads(doc["request"])
    assert json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == doc["canonical"]
    assert _recipe(doc["req_id"], request) == doc["req_hash"]
    assert req_hash(doc["req_id"], canonical_json(request)) == doc["req_hash"]


def test_the_recipe_gives_the_hash_of_what_the_hook_sends() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "Grüße, call 415-555-0132"}],
        "temperature": 0.7,
        "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": {"b": 1, "a": [1.5, None]}}}
        ],
    }
    raw = RawMirror("r-ü", "/v1/chat/completions", orjson.dumps(body), None, 200, 1.0, 0, 0.5)
    record = EnvelopeBuilder(Sanitizer(), ratio=1.0, salt_id="s").record(raw)
    wire = json.loads(record.value)
    assert _recipe(wire["req_id"], wire["request"]) == wire["req_hash"] == record.req_hash


def test_the_recipe_is_the_schema_description() -> None:
    schema = RequestEnvelope.model_json_schema()
    assert schema["properties"]["req_hash"]["description"] == REQ_HASH_RECIPE
    assert "zero byte" in REQ_HASH_RECIPE
