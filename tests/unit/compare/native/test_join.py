"""The native join (``native/src/join/``) against the Python one, on generated operation sequences.

Both joins get the same requests, results, expiries and revocations (with a small
``max_pending`` so eviction runs too) and must give the same outputs in the same order (same
kind, outcome, candidate, request, the very same record objects, releases and peers), the same
"done now" answers, counters and pending counts. ``ingest`` is held to the Python loop it replaces
on polls of encoded, duplicate, foreign and undecodable records. (``tests/unit/compare/test_join.py``
runs every join example against both as well.)
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowlane.compare.join import Expired, JoinBuffer, Joined, Output
from shadowlane.compare.native.join import NATIVE_JOIN, Join, NativeJoinBuffer, join_buffer
from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.codec import encode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.envelope import Exposure
from tests.support.factories import make_envelope, make_result, renamed
from tests.support.plain_pairs import Pair, builders, exact, pairs

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

    def __init__(self, offset: int, value: bytes | None, timestamp: int, key: bytes | None = None) -> None:
        self.offset, self.value, self.timestamp, self.key = offset, value, timestamp, key


def _key(out: Output) -> tuple[Any, ...]:
    if isinstance(out, Expired):
        return ("Expired", out.req_hash, out.release)
    if isinstance(out, Joined):
        return ("Joined", out.envelope.req_hash, out.release)
    return ("Built", out.fields["req_hash"], out.release)


def _ingest_shape(join: Join, polls: list[tuple[bool, list[_Record]]]) -> list[Any]:
    seen: list[Any] = []
    for is_request, records in polls:
        topic = "requests" if is_request else "results"
        outputs, offsets, done, bad = join.ingest(records, topic, 0, is_request)
        keys = [_key(o) for o in outputs]
        seen.append((keys, offsets, done, [(r.offset, e.reason, e.detail) for r, e in bad]))
    seen.append((join.stats, join.pending))
    return seen


def _expired(outputs: list[Output]) -> list[tuple[Any, ...]]:
    return [(o.outcome, o.candidate, o.req_hash, o.release) for o in outputs if isinstance(o, Expired)]


def test_ingest_reads_and_joins_a_poll_as_the_python_loop_does() -> None:
    envs = ENVS[:4]
    broken = encode(envs[3])[:-5]
    requests = [_Record(i, encode(e), 100 + i, e.req_hash.encode()) for i, e in enumerate(envs[:3])]
    requests += [
        _Record(3, broken, 103),
        _Record(4, None, 104),
        _Record(5, encode(envs[0]), 105, envs[0].req_hash.encode()),
    ]
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


def _wire_pairs(generated: list[Pair]) -> tuple[list[_Record], list[_Record]]:
    """Each generated pair as records on the wire, under a request id of its own."""
    requests: list[_Record] = []
    results: list[_Record] = []
    for i, (env, _res, peers) in enumerate(generated):
        request = renamed(env, f"p{i}")
        ids = {"req_id": request.req_id, "req_hash": request.req_hash}
        key = request.req_hash.encode()
        requests.append(_Record(i, encode(request), 100, key))
        for peer in peers.values():
            results.append(_Record(len(results), encode(peer.model_copy(update=ids)), 100, key))
    return requests, results


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    generated=st.lists(pairs(), min_size=1, max_size=4),
    embedder=st.booleans(),
    baseline=st.sampled_from(["baseline", None]),
    results_first=st.booleans(),
)
def test_the_native_join_builds_plain_pairs_as_the_python_join_and_builder_do(
    generated: list[Pair], embedder: bool, baseline: str | None, results_first: bool
) -> None:
    """Join and build natively (plain pairs leave the join built) against the Python join and
    the Python builder alone: the same comparisons, in the same order, and the same bytes."""
    native_builder, python_builder = builders(embedder, baseline_candidate=baseline)
    requests, results = _wire_pairs(generated)
    polls = [(False, results), (True, requests)] if results_first else [(True, requests), (False, results)]
    got: list[Comparison] = []
    want: list[Comparison] = []
    wire: list[bytes | None] = []
    native = NativeJoinBuffer(("baseline", "cand"), WINDOW, plain=native_builder.plain.config)
    python = JoinBuffer(("baseline", "cand"), WINDOW)
    for is_request, records in [*polls, (None, [])]:
        if is_request is None:  # the window closes: what still waits for a candidate leaves
            native_out, python_out = native.expire(2**62), python.expire(2**62)
        else:
            topic = "requests" if is_request else "results"
            native_out = native.ingest(records, topic, 0, is_request)[0]
            python_out = python.ingest(records, topic, 0, is_request)[0]
        assert [_key(o)[2] for o in native_out] == [_key(o)[2] for o in python_out]  # same releases
        prepared = native_builder.prepare(native_out)
        got += native_builder.finish(prepared)
        wire += prepared.wire
        want += python_builder.build(python_out)
    assert [exact(c) for c in got] == [exact(c) for c in want]
    assert [data for data in wire if data is not None] == [
        encode(c) for c, data in zip(want, wire, strict=True) if data is not None
    ]


def test_plain_pairs_leave_the_native_join_built() -> None:
    """The benchmark's pairs: every one leaves the join as a Built, none as a Joined."""
    native_builder, _ = builders(embedder=False)
    envs = [make_envelope(f"b{i}") for i in range(5)]
    requests = [_Record(i, encode(e), 100, e.req_hash.encode()) for i, e in enumerate(envs)]
    results = [_Record(i, encode(make_result(e, "cand")), 100) for i, e in enumerate(envs)]
    join = NativeJoinBuffer(("cand",), WINDOW, plain=native_builder.plain.config)
    join.ingest(requests, "requests", 0, True)
    outputs = join.ingest(results, "results", 0, False)[0]
    assert [type(o).__name__ for o in outputs] == ["Built"] * 5
    assert [o.release for o in outputs] == [[("requests", 0, i), ("results", 0, i)] for i in range(5)]


def test_a_candidate_with_a_baseline_peer_leaves_joined_for_its_noise_floor() -> None:
    """The noise floor needs the baseline's ΔS, which only the Python builder scores: the
    candidate's pair leaves as a Joined even when it is plain; the baseline's own is Built."""
    native_builder, python_builder = builders(True, baseline_candidate="baseline")
    env = make_envelope("floor")
    requests = [_Record(0, encode(env), 100, env.req_hash.encode())]
    same = [make_result(env, c).model_copy(update={"answer": env.prod.answer}) for c in ("baseline", "cand")]
    results = [_Record(i, encode(res), 100) for i, res in enumerate(same)]
    join = NativeJoinBuffer(("baseline", "cand"), WINDOW, plain=native_builder.plain.config)
    join.ingest(requests, "requests", 0, True)
    outputs = join.ingest(results, "results", 0, False)[0]
    assert [type(o).__name__ for o in outputs] == ["Built", "Joined"]
    got = native_builder.build(outputs)
    python = JoinBuffer(("baseline", "cand"), WINDOW)
    python.ingest(requests, "requests", 0, True)
    want = python_builder.build(python.ingest(results, "results", 0, False)[0])
    assert [exact(c) for c in got] == [exact(c) for c in want]
    assert got[1].delta_s_floor == 0.0  # the same answer as the baseline's: no noise
