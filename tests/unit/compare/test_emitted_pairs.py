"""emitted_pair: the (req_hash, candidate) of a comparison record, nothing for anything else."""

from __future__ import annotations

import pytest

from shadowlane.compare.emitted_pairs import emitted_pair
from shadowlane.compare.join import Joined
from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.codec import encode
from tests.support.contracts import CheckedBuilder
from tests.support.factories import envelope, result


def test_a_comparison_record_gives_its_pair() -> None:
    env = envelope(1)
    comparison = CheckedBuilder(None).build([Joined(ProdSide.of(env), result(env), [])])[0]
    assert emitted_pair(encode(comparison)) == [(env.req_hash, "cand")]


@pytest.mark.parametrize(
    "value",
    [None, b"", b"not json", b"[1, 2]", b'{"req_hash": "h"}', b'{"req_hash": 1, "candidate": "c"}'],
)
def test_anything_else_gives_nothing(value: bytes | None) -> None:
    assert emitted_pair(value) == []
