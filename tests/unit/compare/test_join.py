"""shadowlane/compare/join.py: requests and shadow results meet by req_hash; every record leaves once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowlane.compare.join import Expired, JoinBuffer, Joined, Output, RecordRef
from shadowlane.compare.native.join import NATIVE_JOIN, Join, NativeJoinBuffer
from shadowlane.compare.prod_side import as_side
from shadowlane.contracts.envelope import Exposure
from tests.support.factories import make_envelope, make_result

REQ_TOPIC = "shadowlane.requests"
RES_TOPIC = "shadowlane.shadow-results"
WINDOW = 1_000


JoinFactory = Callable[..., Join]


@pytest.fixture(params=["python", "native"])
def make_join(request: pytest.FixtureRequest) -> JoinFactory:
    """Every test below runs against both joins (the Python one and ``native/src/join/``)."""
    if request.param == "python":
        return JoinBuffer
    if NATIVE_JOIN is None:
        pytest.skip("shadowlane_native is not built")
    return NativeJoinBuffer


def req_ref(offset: int, partition: int = 0) -> RecordRef:
    return (REQ_TOPIC, partition, offset)


def res_ref(offset: int, partition: int = 0) -> RecordRef:
    return (RES_TOPIC, partition, offset)


def released(outputs: list[Output]) -> list[RecordRef]:
    return [ref for out in outputs for ref in out.release]


def test_request_then_result_joins_and_releases_both(make_join: JoinFactory) -> None:
    buf = make_join(["a"], WINDOW)
    env = make_envelope("r1")
    outs, done = buf.add_request(env, req_ref(0), 100)
    assert (outs, done) == ([], False)
    assert buf.pending == 1

    outs, done = buf.add_result(make_result(env, "a"), res_ref(7), 150)
    assert done is False
    assert len(outs) == 1
    joined = outs[0]
    assert isinstance(joined, Joined)
    assert joined.envelope.req_hash == env.req_hash
    assert as_side(joined.envelope).prod.answer == env.prod.answer
    assert joined.result.candidate == "a"
    assert joined.release == [req_ref(0), res_ref(7)]
    assert buf.pending == 0
    assert buf.stats.joined == 1
    assert buf.stats.requests == 1
    assert buf.stats.results == 1


def test_result_then_request_joins(make_join: JoinFactory) -> None:
    buf = make_join(["a"], WINDOW)
    env = make_envelope("r1")
    outs, done = buf.add_result(make_result(env, "a"), res_ref(3), 100)
    assert (outs, done) == ([], False)
    assert buf.pending == 1

    outs, done = buf.add_request(env, req_ref(9), 120)
    assert done is False
    assert len(outs) == 1
    assert isinstance(outs[0], Joined)
    assert outs[0].release == [req_ref(9), res_ref(3)]
    assert buf.pending == 0
    # nothing is left to expire later
    assert buf.expire(10**12) == []


def test_multi_candidate_request_leaves_together_once_all_candidates_joined(make_join: JoinFactory) -> None:
    buf = make_join(["a", "b", "c"], WINDOW)
    env = make_envelope("r1")
    buf.add_request(env, req_ref(0), 100)

    out_a, _ = buf.add_result(make_result(env, "a"), res_ref(1), 110)
    out_c, _ = buf.add_result(make_result(env, "c"), res_ref(2), 120)
    assert out_a + out_c == []  # "b" still outstanding: the request's outputs leave together
    assert buf.pending == 1

    out_b, _ = buf.add_result(make_result(env, "b"), res_ref(3), 130)
    assert [type(o) for o in out_b] == [Joined, Joined, Joined]
    assert [o.result.candidate for o in out_b if isinstance(o, Joined)] == ["a", "c", "b"]
    # every output sees its peers (how a candidate learns the baseline's floor and λ)
    assert all(isinstance(o, Joined) and sorted(o.peers) == ["a", "b", "c"] for o in out_b)
    assert [o.release for o in out_b[:-1]] == [[], []]
    assert sorted(out_b[-1].release) == sorted([req_ref(0), res_ref(1), res_ref(2), res_ref(3)])
    assert buf.pending == 0
    assert buf.stats.joined == 3


def test_multi_candidate_early_results_join_when_the_request_arrives(make_join: JoinFactory) -> None:
    buf = make_join(["a", "b"], WINDOW)
    env = make_envelope("r1")
    buf.add_result(make_result(env, "a"), res_ref(1), 100)
    buf.add_result(make_result(env, "b"), res_ref(2), 100)
    outs, done = buf.add_request(env, req_ref(0), 110)
    assert done is False
    assert sorted(o.result.candidate for o in outs if isinstance(o, Joined)) == ["a", "b"]
    assert sorted(released(outs)) == sorted([req_ref(0), res_ref(1), res_ref(2)])
    assert buf.pending == 0


def test_partially_joined_request_is_released_with_shadow_timeout_for_the_rest(
    make_join: JoinFactory,
) -> None:
    buf = make_join(["a", "b", "c"], WINDOW)
    env = make_envelope("r1")
    buf.add_request(env, req_ref(0), 100)
    buf.add_result(make_result(env, "b"), res_ref(5), 200)

    assert buf.expire(100 + WINDOW) == []  # deadline is not *before* the watermark yet
    outs = buf.expire(100 + WINDOW + 1)
    assert [type(o) for o in outs] == [Joined, Expired, Expired]
    joined = outs[0]
    assert isinstance(joined, Joined)
    assert joined.result.candidate == "b"
    assert joined.release == []
    expired = [o for o in outs if isinstance(o, Expired)]
    assert [(o.outcome, o.candidate) for o in expired] == [("shadow_timeout", "a"), ("shadow_timeout", "c")]
    assert all(
        o.envelope is not None
        and o.envelope.req_hash == env.req_hash
        and o.result is None
        and o.req_hash == env.req_hash
        for o in expired
    )
    # released exactly once, on the last output, together with the joined result record
    assert expired[0].release == []
    assert sorted(expired[1].release) == sorted([req_ref(0), res_ref(5)])
    assert buf.pending == 0
    assert buf.stats.shadow_timeouts == 2


def test_request_without_any_result_expires_as_shadow_timeout(make_join: JoinFactory) -> None:
    buf = make_join(["a"], WINDOW)
    env = make_envelope("r1")
    buf.add_request(env, req_ref(4), 500)
    outs = buf.expire(500 + WINDOW + 1)
    assert len(outs) == 1
    out = outs[0]
    assert isinstance(out, Expired)
    assert (out.outcome, out.candidate, out.release) == ("shadow_timeout", "a", [req_ref(4)])
    # a result after that is late (not a duplicate), released at once
    late, done = buf.add_result(make_result(env, "a"), res_ref(1), 5_000)
    assert (late, done) == ([], True)
    assert (buf.stats.late_results, buf.stats.duplicate_results) == (1, 0)
    # a redelivered copy of that late result is a duplicate, not a second late one
    assert buf.add_result(make_result(env, "a"), res_ref(2), 5_001) == ([], True)
    assert (buf.stats.late_results, buf.stats.duplicate_results) == (1, 1)


def test_late_and_duplicate_results_are_counted_apart(make_join: JoinFactory) -> None:
    """Late: the request left without the candidate's result (shadow_timeout, also after an
    eviction). Duplicate: a copy of a result that joined, waits, or left as request_missing."""
    buf = make_join(["a", "b"], WINDOW)
    env = make_envelope("r1")
    buf.add_request(env, req_ref(0), 100)
    buf.add_result(make_result(env, "a"), res_ref(0), 150)
    outs = buf.expire(100 + WINDOW + 1)
    assert sorted((type(o).__name__, getattr(o, "outcome", "")) for o in outs) == [
        ("Expired", "shadow_timeout"),
        ("Joined", ""),
    ]
    assert buf.add_result(make_result(env, "b"), res_ref(1), 2_000) == ([], True)  # b: late
    assert buf.add_result(make_result(env, "a"), res_ref(2), 2_000) == ([], True)  # a: redelivered
    assert (buf.stats.late_results, buf.stats.duplicate_results) == (1, 1)

    orphan = make_envelope("orphan")
    buf.add_result(make_result(orphan, "a"), res_ref(3), 3_000)
    assert buf.add_result(make_result(orphan, "a"), res_ref(4), 3_001) == ([], True)  # still waiting
    assert [o.outcome for o in buf.expire(3_000 + WINDOW + 1) if isinstance(o, Expired)] == [
        "request_missing"
    ]
    assert buf.add_result(make_result(orphan, "a"), res_ref(5), 9_000) == ([], True)  # after it left
    assert (buf.stats.late_results, buf.stats.duplicate_results) == (1, 3)

    small = make_join(["a"], WINDOW, max_pending=1)
    first, second = make_envelope("first"), make_envelope("second")
    small.add_request(first, req_ref(0), 100)
    small.add_request(second, req_ref(1), 100)  # evicts ``first`` as shadow_timeout
    assert small.stats.evicted == 1
    assert small.add_result(make_result(first, "a"), res_ref(0), 101) == ([], True)
    assert (small.stats.late_results, small.stats.duplicate_results) == (1, 0)


def test_orphan_result_expires_as_request_missing(make_join: JoinFactory) -> None:
    buf = make_join(["a"], WINDOW)
    env = make_envelope("orphan")
    res = make_result(env, "a")
    buf.add_result(res, res_ref(2), 100)
    assert buf.expire(100 + WINDOW) == []
    outs = buf.expire(100 + WINDOW + 1)
    assert len(outs) == 1
    out = outs[0]
    assert isinstance(out, Expired)
    assert out.outcome == "request_missing"
    assert out.candidate == "a"
    assert out.envelope is None
    assert out.result == res
    assert out.release == [res_ref(2)]
    assert buf.stats.requests_missing == 1
    assert buf.pending == 0


def test_expire_uses_each_entrys_own_deadline(make_join: JoinFactory) -> None:
    buf = make_join(["a"], WINDOW)
    old, new = make_envelope("old"), make_envelope("new")
    buf.add_request(old, req_ref(0), 100)
    buf.add_request(new, req_ref(1), 900)
    outs = buf.expire(100 + WINDOW + 1)
    assert [o.req_hash for o in outs if isinstance(o, Expired)] == [old.req_hash]
    assert buf.pending == 1


def test_duplicate_request_is_counted_and_released_immediately(make_join: JoinFactory) -> None:
    buf = make_join(["a"], WINDOW)
    env = make_envelope("r1")
    buf.add_request(env, req_ref(0), 100)
    outs, done = buf.add_request(env, req_ref(1), 101)  # redelivery while waiting
    assert (outs, done) == ([], True)
    assert buf.stats.duplicate_requests == 1

    buf.add_result(make_result(env, "a"), res_ref(0), 102)
    outs, done = buf.add_request(env, req_ref(2), 103)  # redelivery after it completed
    assert (outs, done) == ([], True)
    assert buf.stats.duplicate_requests == 2
    assert buf.pending == 0


def test_pairs_marked_finished_elsewhere_make_copies_duplicates(make_join: JoinFactory) -> None:
    """A partition's new owner marks the pairs its previous owner emitted: a copy of such a
    request is a duplicate; a request still waiting for another candidate waits only for it."""
    buf = make_join(["a", "b"], WINDOW)
    both, half = make_envelope("both"), make_envelope("half")
    buf.mark_finished([(both.req_hash, "a"), (both.req_hash, "b"), (half.req_hash, "a")])
    buf.mark_finished([(both.req_hash, "a")])  # learning twice changes nothing
    assert buf.add_request(both, req_ref(0), 100) == ([], True)
    assert buf.stats.duplicate_requests == 1
    outs, done = buf.add_request(half, req_ref(1), 100)
    assert (outs, done) == ([], False)
    outs, _ = buf.add_result(make_result(half, "b"), res_ref(0), 101)
    assert [type(o) for o in outs] == [Joined]  # "a" was not waited for
    assert buf.pending == 0


def test_pairs_forgotten_after_a_given_up_build_join_again_when_read_again(make_join: JoinFactory) -> None:
    """The comparator gave up building these pairs (its ΔS backlog outlasted a revocation's
    drain): their records, read again, are new pairs, neither duplicates nor late results."""
    buf = make_join(["a", "b"], WINDOW)
    env, timed = make_envelope("r1"), make_envelope("r2")
    buf.add_request(env, req_ref(0), 100)
    buf.add_result(make_result(env, "a"), res_ref(0), 101)
    buf.add_result(make_result(env, "b"), res_ref(1), 102)  # r1 left, joined with both
    buf.add_request(timed, req_ref(1), 100)
    buf.expire(100 + WINDOW + 1)  # r2 left as shadow_timeout for a and b
    buf.forget_finished([(env.req_hash, "b"), (timed.req_hash, "a"), (timed.req_hash, "b")])
    buf.forget_finished([(make_envelope("never").req_hash, "a")])  # unknown: nothing to forget
    outs, done = buf.add_request(env, req_ref(2), 5_000)
    assert (outs, done) == ([], False)  # waits for b only: a's comparison did leave
    outs, _ = buf.add_result(make_result(env, "b"), res_ref(2), 5_001)
    assert [type(o) for o in outs] == [Joined]
    assert buf.add_request(timed, req_ref(3), 5_000) == ([], False)
    outs, _ = buf.add_result(make_result(timed, "a"), res_ref(3), 5_001)
    assert outs == []
    assert buf.stats.late_results == 0
    assert buf.stats.duplicate_results == 0
    assert buf.add_result(make_result(env, "a"), res_ref(4), 5_002) == ([], True)  # still a copy


def test_duplicate_results_are_counted_and_released_immediately(make_join: JoinFactory) -> None:
    buf = make_join(["a"], WINDOW)
    env = make_envelope("r1")
    buf.add_result(make_result(env, "a"), res_ref(0), 100)
    outs, done = buf.add_result(make_result(env, "a"), res_ref(1), 101)  # waiting already
    assert (outs, done) == ([], True)

    joined, _ = buf.add_request(env, req_ref(0), 102)
    assert joined[0].release == [req_ref(0), res_ref(0)]  # the first copy, not the duplicate
    outs, done = buf.add_result(make_result(env, "a"), res_ref(2), 103)  # after the join
    assert (outs, done) == ([], True)
    assert buf.stats.duplicate_results == 2
    assert buf.stats.joined == 1


def test_results_of_unexpected_candidates_are_ignored(make_join: JoinFactory) -> None:
    buf = make_join(["a"], WINDOW)
    env = make_envelope("r1")
    buf.add_request(env, req_ref(0), 100)
    outs, done = buf.add_result(make_result(env, "stranger"), res_ref(0), 101)
    assert (outs, done) == ([], True)
    assert buf.stats.ignored_candidates == 1
    assert buf.pending == 1  # the request still waits for "a"
    assert buf.stats.joined == 0


def test_eviction_past_max_pending_expires_the_oldest_request(make_join: JoinFactory) -> None:
    buf = make_join(["a"], WINDOW, max_pending=2)
    envs = [make_envelope(f"r{i}") for i in range(3)]
    buf.add_request(envs[0], req_ref(0), 100)
    buf.add_request(envs[1], req_ref(1), 100)
    outs, done = buf.add_request(envs[2], req_ref(2), 100)
    assert done is False
    assert len(outs) == 1
    out = outs[0]
    assert isinstance(out, Expired)
    assert (out.outcome, out.req_hash, out.release) == ("shadow_timeout", envs[0].req_hash, [req_ref(0)])
    assert buf.stats.evicted == 1
    assert buf.pending == 2


def test_eviction_of_waiting_results(make_join: JoinFactory) -> None:
    buf = make_join(["a"], WINDOW, max_pending=1)
    e1, e2 = make_envelope("r1"), make_envelope("r2")
    buf.add_result(make_result(e1, "a"), res_ref(0), 100)
    outs, _ = buf.add_result(make_result(e2, "a"), res_ref(1), 100)
    assert len(outs) == 1
    out = outs[0]
    assert isinstance(out, Expired)
    assert (out.outcome, out.req_hash, out.release) == ("request_missing", e1.req_hash, [res_ref(0)])
    assert buf.stats.evicted == 1
    assert buf.pending == 1


def test_drop_partitions_forgets_only_entries_of_revoked_partitions(make_join: JoinFactory) -> None:
    buf = make_join(["a"], WINDOW)
    e0, e1, e2 = make_envelope("p0"), make_envelope("p1"), make_envelope("p2")
    buf.add_request(e0, req_ref(0, partition=0), 100)
    buf.add_request(e1, req_ref(0, partition=1), 100)
    buf.add_result(make_result(e2, "a"), res_ref(0, partition=1), 100)
    assert buf.pending == 3

    dropped = buf.drop_partitions([(REQ_TOPIC, 1), (RES_TOPIC, 1)])
    assert dropped == 2
    assert buf.pending == 1
    # the dropped ones never expire here: their new owner handles them
    outs = buf.expire(10**12)
    assert [o.req_hash for o in outs if isinstance(o, Expired)] == [e0.req_hash]
    assert buf.drop_partitions([("other", 0)]) == 0


def test_a_request_the_candidate_arm_served_is_released_at_once_and_never_waits(
    make_join: JoinFactory,
) -> None:
    buf = make_join(("cand", "baseline"), 100)
    exposure = Exposure(flag="f", arm="candidate", served_by="cand", strategy="ab", epoch=1, bucket=0.1)
    outs, done = buf.add_request(
        make_envelope("r9").model_copy(update={"exposure": exposure}), req_ref(0), 100
    )
    assert (outs, done) == ([], True)
    assert buf.stats.candidate_served == 1
    assert buf.pending == 0
    assert buf.expire(10_000) == []  # nothing waits for a shadow of it, so nothing times out


def _expired_keys(outputs: list[Output]) -> list[tuple[str, str, str]]:
    return [(o.outcome, o.req_hash, o.candidate) for o in outputs if isinstance(o, Expired)]


def test_expire_finds_an_earlier_deadline_that_arrived_later(make_join: JoinFactory) -> None:
    """Deadlines are not monotonic in arrival order (partitions interleave): the lower bound that
    lets ``expire`` skip its scan must follow a later record with an earlier deadline."""
    buf = make_join(["a"], WINDOW)
    late, early = make_envelope("late"), make_envelope("early")
    buf.add_request(late, req_ref(0), 1_000)
    assert buf.expire(WINDOW + 500) == []
    buf.add_request(early, req_ref(1), 100)
    assert _expired_keys(buf.expire(WINDOW + 500)) == [("shadow_timeout", early.req_hash, "a")]
    assert buf.expire(WINDOW + 1_000) == []  # the bound is back at the late request's deadline
    assert _expired_keys(buf.expire(WINDOW + 1_001)) == [("shadow_timeout", late.req_hash, "a")]
    assert buf.pending == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["req", "res", "expire"]), st.integers(0, 7), st.integers(0, 4_000)),
        max_size=60,
    )
)
def test_expire_with_its_skip_equals_a_full_scan_every_time(ops: list[tuple[str, int, int]]) -> None:
    """Differential: a buffer that may skip the scan gives the outputs of one forced to scan."""
    envs = [make_envelope(f"r{i}") for i in range(8)]
    lazy, eager = JoinBuffer(["a", "b"], WINDOW), JoinBuffer(["a", "b"], WINDOW)
    for offset, (op, i, t) in enumerate(ops):
        for buf in (lazy, eager):
            if op == "req":
                buf.add_request(envs[i], req_ref(offset), t)
            elif op == "res":
                buf.add_result(make_result(envs[i], "ab"[t % 2]), res_ref(offset), t)
        if op == "expire":
            eager._earliest_deadline = -1  # forces the scan
            assert _expired_keys(lazy.expire(t + WINDOW // 2)) == _expired_keys(eager.expire(t + WINDOW // 2))
        assert lazy.pending == eager.pending


def test_the_memory_of_finished_pairs_is_capped_oldest_first(make_join: JoinFactory) -> None:
    """A redelivered record of a finished pair is a duplicate while the pair is remembered; the
    memory keeps the newest ``max(10_000, max_pending)`` requests."""
    buf = make_join(["a", "b"], WINDOW, max_pending=10)
    envs = [make_envelope(f"c{i}") for i in range(10_001)]
    for i, env in enumerate(envs):
        buf.add_request(env, req_ref(i), 0)
        buf.add_result(make_result(env, "a"), res_ref(2 * i), 0)
        buf.add_result(make_result(env, "b"), res_ref(2 * i + 1), 0)
    assert buf.stats.joined == 20_002
    assert buf.pending == 0
    outs, done = buf.add_result(make_result(envs[1], "b"), res_ref(99_999), 0)
    assert (outs, done) == ([], True)
    assert buf.stats.duplicate_results == 1
    outs, done = buf.add_request(envs[0], req_ref(99_999), 0)  # forgotten: waits again
    assert (outs, done) == ([], False)
    assert buf.pending == 1
