"""Wire contracts: example payloads validate, round-trip, and the exported JSON Schema is current."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from shadowlane.contracts.base import WireModel
from shadowlane.contracts.codec import DecodeError, decode, encode
from shadowlane.contracts.export import contract_files, schema_files
from shadowlane.contracts.topics import TOPICS, TopicSpec, spec

EXAMPLES = Path(__file__).resolve().parents[3] / "schemas" / "examples"


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.logical)
def test_example_payload_validates_and_round_trips(topic: TopicSpec) -> None:
    model: type[WireModel] = topic.value
    raw = (EXAMPLES / f"{model.SCHEMA_NAME}.v{model.SCHEMA_VERSION}.json").read_bytes()
    record = decode(raw, model)
    assert decode(encode(record), model) == record
    assert orjson.loads(encode(record)) == orjson.loads(raw)


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.logical)
def test_wrong_version_and_unknown_fields_are_rejected(topic: TopicSpec) -> None:
    model: type[WireModel] = topic.value
    obj = orjson.loads((EXAMPLES / f"{model.SCHEMA_NAME}.v1.json").read_bytes())
    with pytest.raises(DecodeError) as exc:
        decode(orjson.dumps({**obj, "schema_version": 2}), model)
    assert exc.value.reason == "schema_version"
    with pytest.raises(DecodeError) as exc:
        decode(orjson.dumps({**obj, "surprise": 1}), model)
    assert exc.value.reason == "validation"


@pytest.mark.parametrize("topic", [t for t in TOPICS if t.value.FLAT], ids=lambda t: t.logical)
def test_flat_contracts_have_only_json_native_fields_and_encode_like_a_dump(topic: TopicSpec) -> None:
    """``FLAT`` lets ``encode`` serialize ``__dict__`` directly: no field may hold a nested model."""
    model: type[WireModel] = topic.value
    for name, info in model.model_fields.items():
        kinds = (info.annotation, *get_args(info.annotation))
        nested = [k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)]
        assert not nested, f"{model.__name__}.{name} is nested: the model cannot be FLAT"
    record = decode((EXAMPLES / f"{model.SCHEMA_NAME}.v1.json").read_bytes(), model)
    assert encode(record) == orjson.dumps(record.model_dump(mode="python"))
    assert model.trusted(dict(record.__dict__)) == record


def test_trusted_construction_refuses_a_record_with_missing_or_unknown_fields() -> None:
    flat = next(t.value for t in TOPICS if t.value.FLAT)
    values = dict(decode((EXAMPLES / f"{flat.SCHEMA_NAME}.v1.json").read_bytes(), flat).__dict__)
    values.pop(next(iter(values)))
    with pytest.raises(ValueError, match="missing"):
        flat.trusted(values)


@pytest.mark.parametrize("topic", list(TOPICS), ids=lambda t: t.logical)
def test_trusted_records_behave_like_validated_ones(topic: TopicSpec) -> None:
    """Every contract is frozen (trusted records share one fields-set); a trusted record equals,
    dumps and copies like the validated one, and a copy's update never leaks into another."""
    model: type[WireModel] = topic.value
    assert model.model_config.get("frozen") is True
    record = decode((EXAMPLES / f"{model.SCHEMA_NAME}.v1.json").read_bytes(), model)
    first, second = model.trusted(dict(record.__dict__)), model.trusted(dict(record.__dict__))
    assert first == second == record
    assert first.model_dump() == record.model_dump()
    assert first.model_fields_set == set(model.model_fields)
    field = next(iter(model.model_fields))
    with pytest.raises(ValidationError):
        setattr(first, field, getattr(first, field))
    copied = first.model_copy(update={"surprise": 1})
    assert "surprise" in copied.model_fields_set
    assert second.model_fields_set == set(model.model_fields)


def test_checked_in_contracts_match_the_models() -> None:
    files = contract_files()
    assert {f"jsonschema/{name}" for name in schema_files()} | {"asyncapi.json"} == set(files)
    for name, data in files.items():
        path = EXAMPLES.parent / name
        assert path.exists(), f"{path} missing: run `make schemas`"
        assert path.read_bytes() == data, f"{path} is stale: run `make schemas`"


def test_asyncapi_names_every_topic_its_key_and_schema() -> None:
    doc = orjson.loads(contract_files()["asyncapi.json"])
    assert doc["asyncapi"].startswith("3.")
    assert len(doc["channels"]) == len(TOPICS)
    for topic in TOPICS:
        channel = doc["channels"][topic.logical.replace(".", "-")]
        assert channel["address"] == "{prefix}" + topic.logical
        (message,) = channel["messages"].values()
        ref = message["payload"]["$ref"]
        assert (EXAMPLES.parent / ref).is_file()  # the reference resolves to an exported schema
        assert message["bindings"]["kafka"]["key"]["description"] == topic.key


def test_registry_keys_per_request_data_by_req_hash_and_co_partitions_the_join() -> None:
    assert spec("requests").co_partitioned_with == ("shadow-results",)
    assert spec("shadow-results").co_partitioned_with == ("requests",)
    not_per_request = {  # per window, or per config / flag
        "compare.summary": "candidate",
        "alerts": "candidate",
        "control": "kind:name",
        "control-log": "kind:name",
        "audit": "name",
        "compare.state": "<comparator group>/<input partition>",
    }
    for topic in TOPICS:
        if topic.logical in not_per_request:
            assert topic.key == not_per_request[topic.logical]
        else:
            assert topic.key.startswith("req_hash")
        assert topic.producers
        assert topic.consumers


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"\xff\x00", "undecodable"), (b"[]", "undecodable"), (None, "undecodable"), (b"{}", "schema_version")],
)
def test_decode_errors_name_the_reason(data: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decode(data, spec("requests").value)
    assert exc.value.reason == reason
