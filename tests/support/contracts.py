"""Test helpers that hold hot-path producers to the wire contracts they skip validating.

The comparator builds ``Comparison`` records with ``WireModel.trusted`` (no validation) and
encodes flat records straight from ``__dict__``; :class:`CheckedBuilder` validates every record
it builds and checks that the fast encoding equals the dumped one, so every unit test of the
builder is also a contract test of what it emits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.join import Output
from shadowlane.contracts.base import WireModel
from shadowlane.contracts.codec import encode
from shadowlane.contracts.comparison import Comparison


def assert_valid(records: Iterable[WireModel]) -> None:
    for record in records:
        model = type(record)
        assert list(record.__dict__) == list(model.model_fields), "fields missing or out of order"
        validated = model.model_validate(record.__dict__)
        assert validated == record
        dumped = orjson.dumps(validated.model_dump(mode="python"))
        assert encode(record) == dumped
        assert model.model_validate_json(encode(record)) == record


class CheckedBuilder(ComparisonBuilder):
    def build(self, outputs: Sequence[Output]) -> list[Comparison]:
        comparisons = super().build(outputs)
        assert_valid(comparisons)
        return comparisons
