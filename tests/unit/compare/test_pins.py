"""Pin verification: the rule (``shadowlane.compare.pins``) and the comparisons that carry it."""

from __future__ import annotations

import pytest

from shadowlane.compare.join import Expired, Joined, Output
from shadowlane.compare.pins import ABSENT, MAX_PIN_CHARS, pin_check, served_value
from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import RequestEnvelope
from tests.support.contracts import CheckedBuilder
from tests.support.factories import envelope, result

EXPECTED = {"model_rev": "b@v3", "index_hash": "i1", "prompt_ver": "p1"}


@pytest.mark.parametrize(
    ("served", "want"),
    [
        ({}, (None, None)),  # nothing served: nothing to check
        ({"other": "x"}, (None, None)),  # a served pin nobody expects is not judged
        ({"model_rev": "b@v3"}, (False, ())),
        ({"model_rev": "b@v3", "index_hash": "i1", "extra": "z"}, (False, ())),
        ({"model_rev": "b@v2"}, (True, ("model_rev",))),
        ({"model_rev": "b@v2", "index_hash": "i0", "prompt_ver": "p1"}, (True, ("index_hash", "model_rev"))),
        ({"model_rev": "b@v3", "index_hash": ABSENT}, (True, ("index_hash",))),  # a source said nothing
    ],
)
def test_only_expected_keys_a_source_covers_are_checked(
    served: dict[str, str], want: tuple[bool | None, tuple[str, ...] | None]
) -> None:
    assert pin_check(EXPECTED, served) == want


def test_nothing_expected_checks_nothing() -> None:
    assert pin_check({}, {"model_rev": "b@v3"}) == (None, None)


def test_an_absent_source_mismatches_even_an_empty_expectation() -> None:
    assert pin_check({"k": ""}, {"k": ABSENT}) == (True, ("k",))


@pytest.mark.parametrize(
    ("raw", "recorded"),
    [(None, ABSENT), ("", ABSENT), ("   ", ABSENT), (3, ABSENT), (" v1 ", "v1"), (b"v2", "v2")],
)
def test_served_values_are_trimmed_strings_or_absent(raw: object, recorded: str) -> None:
    assert served_value(raw) == recorded


def test_a_long_served_value_is_cut() -> None:
    assert served_value("x" * 1000) == "x" * MAX_PIN_CHARS


def _with_prod_served(env: RequestEnvelope, served: dict[str, str]) -> RequestEnvelope:
    return env.model_copy(update={"prod": env.prod.model_copy(update={"served_pins": served})})


def test_joined_comparisons_carry_both_sides_pin_checks() -> None:
    env = _with_prod_served(envelope(1), {"model_rev": "a"})  # the factory's prod pins: model_rev a
    consistent = result(env).model_copy(
        update={"pins": {"model_rev": "b"}, "served_pins": {"model_rev": "b"}}
    )
    stale_env = _with_prod_served(envelope(2), {"model_rev": "a-old"})
    stale = result(stale_env).model_copy(
        update={
            "pins": {"model_rev": "b", "index_hash": "i1"},
            "served_pins": {"model_rev": "b", "index_hash": ""},
        }
    )
    silent = result(envelope(3)).model_copy(update={"pins": {"model_rev": "b"}})  # served nothing
    outputs: list[Output] = [
        Joined(ProdSide.of(env), consistent, []),
        Joined(ProdSide.of(stale_env), stale, []),
        Joined(ProdSide.of(envelope(3)), silent, []),
    ]
    ok, bad, unchecked = CheckedBuilder(None).build(outputs)
    assert (ok.pin_mismatch, ok.pin_mismatch_keys, ok.candidate_served_pins) == (
        False,
        (),
        {"model_rev": "b"},
    )
    assert (ok.prod_pin_mismatch, ok.prod_pin_mismatch_keys, ok.prod_served_pins) == (
        False,
        (),
        {"model_rev": "a"},
    )
    assert (bad.pin_mismatch, bad.pin_mismatch_keys) == (True, ("index_hash",))
    assert (bad.prod_pin_mismatch, bad.prod_pin_mismatch_keys) == (True, ("model_rev",))
    assert unchecked.pin_mismatch is unchecked.prod_pin_mismatch is None
    assert unchecked.candidate_served_pins is unchecked.prod_served_pins is None
    for comp in (ok, bad, unchecked):
        assert decode(encode(comp), Comparison) == comp


def test_incomplete_comparisons_check_the_side_they_have() -> None:
    env = _with_prod_served(envelope(4), {"model_rev": "a-old"})
    orphan = result(envelope(5)).model_copy(
        update={"pins": {"model_rev": "b"}, "served_pins": {"model_rev": "c"}}
    )
    outputs: list[Output] = [
        Expired("shadow_timeout", "cand", env.req_hash, ProdSide.of(env), None, []),
        Expired("request_missing", "cand", orphan.req_hash, None, orphan, []),
    ]
    timed_out, missing = CheckedBuilder(None).build(outputs)
    assert (timed_out.prod_pin_mismatch, timed_out.prod_pin_mismatch_keys) == (True, ("model_rev",))
    assert timed_out.pin_mismatch is None
    assert (missing.pin_mismatch, missing.pin_mismatch_keys) == (True, ("model_rev",))
    assert missing.prod_pin_mismatch is None


def test_the_prod_projection_keeps_prod_served_pins() -> None:
    env = _with_prod_served(envelope(6), {"model_rev": "a"})
    assert ProdSide.of(env).served_pins == {"model_rev": "a"}
    assert ProdSide.of(envelope(6)).served_pins == {}
