"""The native join (``native/src/join.rs``) against the Python one, on generated operation sequences.

Both joins get the same requests, results, expiries and revocations (with a small
``max_pending`` so eviction runs too) and must give the same outputs in the same order (same
kind, outcome, candidate, request, the very same record objects, releases and peers), the same
"done now" answers, counters and pending counts. ``ingest`` is held to the Python loop it replaces
on polls of encoded, duplicate, foreign and undecodable records. (``tests/unit/test_join.py``
runs every join example against both as well.)
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import encode
from schemas.envelope import Exposure
from tests.unit.helpers_unit import make_envelope, make_result
from workers.compare.join import Expired, JoinBuffer, Joined, Output
from workers.compare.join_native import NATIVE_JOIN, Join, NativeJoinBuffer, join_buffer
from workers.compare.prod_side import ProdSide

pytestmark = pytest.mark.skipif(NATIVE_JOIN is None, reason="shadowlane_native is not built")

WINDOW = 1_000
CANDIDATES = ("a", "b")
ENVS = [make_envelope(f"r{i}") for i in range(6)]
SIDES = [ProdSide.of(e) for e in ENVS]
SERVED = ProdSide.of(
    make_envelope("served").model_copy(
        update={"exposure": Exposure(flag="f", arm="candidate", served_by="m", strategy="ab", epoch=1)}
    )
)
RESULTS = {(i, c): make_result(e, c) for i, e in enumerate(ENVS) for c in ("a", "b", "zz")}


def _shape(outputs: list[Output]) -> list[tuple[Any, ...]]:
    """Everything an output carries; records by identity (both joins hold the objects given)."""
    shaped: list[tuple[Any, ...]] = []
    for out in outputs:
        if isinstance(out, Joined):
            peers = [(name, id(peer)) for name, peer in out.peers.items()]
            shaped.append(("joined", id(out.envelope), id(out.result), out.release, peers))
        else:
            assert isinstance(out, Expired)
            env, res = id(out.envelope) if out.envelope else None, id(out.result) if out.result else None
            shaped.append(("expired", out.outcome, out.candidate, out.req_hash, env, res, out.release))
    return shaped


ops = st.lists(
    st.one_of(
        st.tuples(st.just("req"), st.integers(0, 6), st.integers(0, 3_000), st.integers(0, 1)),
        st.tuples(st.just("res"), st.integers(0, 5), st.integers(0, 3_000), st.integers(0, 2)),
        st.tuples(st.just("expire"), st.integers(-1, 5_000), st.just(0), st.just(0)),
        st.tuples(st.just("drop"), st.integers(0, 1), st.just(0), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops=ops, max_pending=st.sampled_from([2, 5, 1_000]))
def test_the_native_join_gives_the_python_joins_outputs(
    ops: list[tuple[str, int, int, int]], max_pending: int
) -> None:
    python = JoinBuffer(CANDIDATES, WINDOW, max_pending=max_pending)
    native = NativeJoinBuffer(CANDIDATES, WINDOW, max_pending=max_pending)
    for offset, (op, i, t, extra) in enumerate(ops):
        partition = offset % 2
        got: list[Any] = []
        for join in (python, native):
            if op == "req":
                side = SERVED if i == 6 else SIDES[i]
                got.append(join.add_request(side, ("requests", partition, offset), t))
            elif op == "res":
                res = RESULTS[(i, ("a", "b", "zz")[extra])]
                got.append(join.add_result(res, ("results", partition, offset), t))
            elif op == "expire":
                got.append((join.expire(i), None))
            else:
                got.append(([], join.drop_partitions([("requests", i), ("results", i)])))
        (py_out, py_flag), (nat_out, nat_flag) = got
        assert _shape(nat_out) == _shape(py_out)
        assert nat_flag == py_flag
        assert native.stats == python.stats
        assert native.pending == python.pending


class _Record:
    """The fields of an aiokafka ``ConsumerRecord`` that the comparator reads."""

    def __init__(self, offset: int, value: bytes | None, timestamp: int) -> None:
        self.offset, self.value, self.timestamp = offset, value, timestamp


def _ingest_shape(join: Join, polls: list[tuple[bool, list[_Record]]]) -> list[Any]:
    seen: list[Any] = []
    for is_request, records in polls:
        topic = "requests" if is_request else "results"
        outputs, offsets, done, bad = join.ingest(records, topic, 0, is_request)
        keys = [
            (type(o).__name__, o.req_hash if isinstance(o, Expired) else o.envelope.req_hash, o.release)
            for o in outputs
        ]
        seen.append((keys, offsets, done, [(r.offset, e.reason, e.detail) for r, e in bad]))
    seen.append((join.stats, join.pending))
    return seen


def _expired(outputs: list[Output]) -> list[tuple[Any, ...]]:
    return [(o.outcome, o.candidate, o.req_hash, o.release) for o in outputs if isinstance(o, Expired)]


def test_ingest_reads_and_joins_a_poll_as_the_python_loop_does() -> None:
    envs = ENVS[:4]
    broken = encode(envs[3])[:-5]
    requests = [_Record(i, encode(e), 100 + i) for i, e in enumerate(envs[:3])]
    requests += [_Record(3, broken, 103), _Record(4, None, 104), _Record(5, encode(envs[0]), 105)]
    requests += [_Record(6, b'{"schema_version": 9}', 106), _Record(7, b"[1]", 107)]
    results = [_Record(10 + i, encode(make_result(e, c)), 200) for i, (e, c) in enumerate(
        [(envs[0], "a"), (envs[0], "b"), (envs[1], "a"), (envs[0], "a"), (envs[2], "zz"), (envs[3], "a")]
    )]  # fmt: skip
    results.append(_Record(20, b"not json", 201))
    polls = [(False, results[:2]), (True, requests), (False, results[2:])]
    python = JoinBuffer(CANDIDATES, WINDOW)
    native = NativeJoinBuffer(CANDIDATES, WINDOW)
    want = _ingest_shape(python, polls)
    assert _ingest_shape(native, polls) == want
    keys, _, done, bad = want[1]
    release = [("requests", 0, 0), ("results", 0, 10), ("results", 0, 11)]
    assert keys == [("Joined", envs[0].req_hash, []), ("Joined", envs[0].req_hash, release)]
    assert 5 in done  # the repeated request is released at once
    assert [reason for _, reason, _ in bad] == ["undecodable", "undecodable", "schema_version", "undecodable"]
    rest = [
        (o.outcome, o.candidate, o.req_hash, o.release)
        for o in python.expire(10_000)
        if isinstance(o, Expired)
    ]
    assert rest  # what still waited leaves when the window closes, alike
    assert [
        (o.outcome, o.candidate, o.req_hash, o.release)
        for o in native.expire(10_000)
        if isinstance(o, Expired)
    ] == rest


def test_join_buffer_picks_the_native_join_when_it_is_built() -> None:
    assert isinstance(join_buffer(CANDIDATES, WINDOW), NativeJoinBuffer)
