"""shadowlane/hashing.py: the salted unit hash behind sampling, and the request hash behind the join."""

from __future__ import annotations

import hashlib
import math
import re

import pytest

from shadowlane.hashing import canonical_json, pair_id, req_hash, unit_hash

N_IDS = 20_000
IDS = [f"req-{i:06d}" for i in range(N_IDS)]
SALT = "shadowlane-v1"


@pytest.fixture(scope="module")
def buckets() -> list[float]:
    return [unit_hash(SALT, rid) for rid in IDS]


def test_unit_hash_is_in_the_unit_interval(buckets: list[float]) -> None:
    assert all(0.0 <= b < 1.0 for b in buckets)
    # a constant or badly scaled hash would not cover the interval
    assert min(buckets) < 0.001
    assert max(buckets) > 0.999


def test_unit_hash_is_deterministic(buckets: list[float]) -> None:
    assert [unit_hash(SALT, rid) for rid in IDS[:500]] == buckets[:500]
    assert unit_hash("s", "k") == unit_hash("s", "k")


def test_salt_changes_the_hash() -> None:
    other = [unit_hash("another-salt", rid) for rid in IDS[:1000]]
    mine = [unit_hash(SALT, rid) for rid in IDS[:1000]]
    assert sum(a != b for a, b in zip(other, mine, strict=True)) == 1000


def test_salt_and_key_are_separated() -> None:
    # "ab" + "c" must not collide with "a" + "bc"
    assert unit_hash("ab", "c") != unit_hash("a", "bc")


def test_raising_the_ratio_only_adds_ids(buckets: list[float]) -> None:
    at_10 = {rid for rid, b in zip(IDS, buckets, strict=True) if b < 0.1}
    at_30 = {rid for rid, b in zip(IDS, buckets, strict=True) if b < 0.3}
    assert at_10  # non-trivial
    assert at_10 <= at_30
    assert len(at_30) > len(at_10)


@pytest.mark.parametrize("ratio", [0.05, 0.3, 0.9])
def test_empirical_sampling_ratio_on_20k_ids(buckets: list[float], ratio: float) -> None:
    # ±2 % relative, widened to 3 binomial standard errors where 20k ids cannot resolve 2 %:
    # at ratio 0.05 one standard error is already 3.1 % relative (sqrt(0.95 / (0.05 * 20k))).
    observed = sum(1 for b in buckets if b < ratio) / N_IDS
    three_sigma_rel = 3 * math.sqrt((1 - ratio) / (ratio * N_IDS))
    assert observed == pytest.approx(ratio, rel=max(0.02, three_sigma_rel))
    if ratio >= 0.3:  # here 2 % relative is at least 1.8 standard errors: assert it strictly
        assert observed == pytest.approx(ratio, rel=0.02)


def test_empirical_sampling_ratio_within_two_percent_on_a_large_sample() -> None:
    # 450k ids make ±2 % relative a >3-sigma bound even at ratio 0.05
    n = 450_000
    large = [unit_hash(SALT, f"big-{i:07d}") for i in range(n)]
    for ratio in (0.05, 0.3, 0.9):
        observed = sum(1 for b in large if b < ratio) / n
        assert observed == pytest.approx(ratio, rel=0.02), ratio


def test_req_hash_is_32_lowercase_hex_chars() -> None:
    h = req_hash("r1", canonical_json({"a": 1}))
    assert re.fullmatch(r"[0-9a-f]{32}", h)


def test_req_hash_depends_on_req_id_and_payload() -> None:
    payload = canonical_json({"messages": [{"role": "user", "content": "hi"}]})
    base = req_hash("r1", payload)
    assert req_hash("r1", payload) == base
    assert req_hash("r2", payload) != base
    assert req_hash("r1", canonical_json({"messages": [{"role": "user", "content": "hi!"}]})) != base


def test_req_hash_separates_id_from_payload() -> None:
    assert req_hash("ab", b"c") != req_hash("a", b"bc")


def test_canonical_equal_payloads_give_equal_req_hash() -> None:
    a = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "params": {"x": 1, "y": [1, 2]}}
    b = {"params": {"y": [1, 2], "x": 1}, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert canonical_json(a) == canonical_json(b)
    assert req_hash("r", canonical_json(a)) == req_hash("r", canonical_json(b))
    # list order is meaningful, so it must change the hash
    c = {**a, "params": {"x": 1, "y": [2, 1]}}
    assert req_hash("r", canonical_json(c)) != req_hash("r", canonical_json(a))


def test_canonical_json_is_compact_and_sorted() -> None:
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == b'{"a":{"c":3,"d":2},"b":1}'


def test_pair_id_is_deterministic_and_candidate_specific() -> None:
    h = req_hash("r", b"{}")
    assert pair_id(h, "a") == pair_id(h, "a")
    assert pair_id(h, "a") != pair_id(h, "b")
    assert re.fullmatch(r"[0-9a-f]{24}", pair_id(h, "a"))


def test_pair_id_is_blake2b_of_hash_and_candidate_whatever_came_before() -> None:
    """The id is part of the wire contract (consumers dedupe on it, rescore reproduces it): it is
    BLAKE2b-96 of ``req_hash \\x00 candidate``, and no earlier call leaks into a later one."""
    h = req_hash("r1", b"{}")
    for candidate in ("a", "b", "a", "cand-x"):
        expected = hashlib.blake2b(f"{h}\x00{candidate}".encode(), digest_size=12).hexdigest()
        assert pair_id(h, candidate) == expected
