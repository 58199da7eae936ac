"""``schemas/asyncapi.json`` is a valid AsyncAPI 3.0.0 document: it validates against the official
JSON Schema of the specification (vendored from ``@asyncapi/specs``, see
``tests/support/asyncapi/README.md``), and it keeps the rules that schema cannot express (every
operation's channel exists, every address parameter is declared). That the file matches the topic
registry is ``test_contracts.py``'s drift test."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

from shadowlane.contracts.topics import TOPICS

ROOT = Path(__file__).resolve().parents[3]
DOCUMENT = ROOT / "schemas" / "asyncapi.json"
SPEC = ROOT / "tests" / "support" / "asyncapi" / "asyncapi-3.0.0.schema.json"
SPEC_SHA256 = "d4571a420e6ffb7fcc7066c95a6db1202f299a3c51daa103d0706bf30f95e626"


def _validator() -> Draft7Validator:
    """The specification's schema, its embedded definitions resolved by their ``$id`` (offline)."""
    spec = json.loads(SPEC.read_bytes())
    registry: Registry[Any] = Registry().with_resource(spec["$id"], DRAFT7.create_resource(spec)).crawl()
    return Draft7Validator(spec, registry=registry)


def _document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DOCUMENT.read_bytes())
    return doc


def _errors(doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(doc)]


def test_the_vendored_specification_is_the_documented_file() -> None:
    assert hashlib.sha256(SPEC.read_bytes()).hexdigest() == SPEC_SHA256
    assert json.loads(SPEC.read_bytes())["properties"]["asyncapi"]["const"] == "3.0.0"


def test_the_document_is_valid_asyncapi_3_0_0() -> None:
    doc = _document()
    assert doc["asyncapi"] == "3.0.0"
    assert _errors(doc) == []


@pytest.mark.parametrize(
    ("where", "breakage"),
    [
        ("an operation", lambda d: next(iter(d["operations"].values())).update(action="publish")),
        ("a channel", lambda d: next(iter(d["channels"].values())).update(topic="requests")),
        ("a Kafka binding", lambda d: _first_message(d)["bindings"]["kafka"].update(key=5)),
        ("info", lambda d: d["info"].pop("version")),
    ],
)
def test_the_validation_refuses_a_broken_document(where: str, breakage: Any) -> None:
    """The check is real: one wrong field anywhere, nested definitions included, is an error."""
    doc = copy.deepcopy(_document())
    breakage(doc)
    assert _errors(doc), where


def _first_message(doc: dict[str, Any]) -> dict[str, Any]:
    channel = next(iter(doc["channels"].values()))
    message: dict[str, Any] = next(iter(channel["messages"].values()))
    return message


def test_every_topic_has_a_channel_a_send_and_a_receive() -> None:
    doc = _document()
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert addresses == {"{prefix}" + topic.logical for topic in TOPICS}
    for name in doc["channels"]:
        actions = sorted(
            op["action"] for op in doc["operations"].values() if op["channel"]["$ref"] == f"#/channels/{name}"
        )
        assert actions == ["receive", "send"], name


def test_references_and_address_parameters_resolve() -> None:
    """Rules of the specification that its JSON Schema leaves to parsers."""
    doc = _document()
    for name, operation in doc["operations"].items():
        ref = operation["channel"]["$ref"]
        assert ref.startswith("#/channels/"), name
        assert ref.removeprefix("#/channels/") in doc["channels"], name
    for name, channel in doc["channels"].items():
        used = set(re.findall(r"\{([^}]+)\}", channel["address"]))
        assert used == set(channel.get("parameters", {})), name
