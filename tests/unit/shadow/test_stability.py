"""shadowlane/shadow/stability.py and its wiring in the shadow worker: λ selection, variants, replays."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition

from shadowlane.contracts.chat import ChatMessage
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.settings import CompareSettings, Settings, ShadowSettings
from shadowlane.shadow.candidates import CallableCandidate
from shadowlane.shadow.stability import (
    Variant,
    lambda_sampled,
    replay_variants,
    stability_samples,
    stability_variants,
    with_last_user_message,
)
from shadowlane.shadow.throttle import TokenBucket
from shadowlane.shadow.worker import ShadowWorker
from tests.support.factories import make_envelope, renamed

SALT = "shadowlane-lambda-v1"


def random_hashes(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


def conversation(paraphrases: tuple[str, ...] = ("reworded one", "reworded two")) -> RequestEnvelope:
    env = make_envelope("lam-1", user_text="first question")
    messages = (
        *env.request.messages,
        ChatMessage(role="assistant", content="first answer"),
        ChatMessage(role="user", content="second question", name="u1"),
        ChatMessage(role="tool", content="tool output", tool_call_id="t1"),
    )
    request = env.request.model_copy(update={"messages": messages, "params": {"temperature": 0.7}})
    return renamed(env.model_copy(update={"request": request, "paraphrases": paraphrases}), env.req_id)


# --------------------------------------------------------------------------- selection


def test_selection_depends_only_on_the_request_not_the_candidate() -> None:
    hashes = random_hashes(2_000)
    a = ShadowSettings(candidate="cand-a", lambda_ratio=0.3)
    b = ShadowSettings(candidate="baseline", lambda_ratio=0.3, rate_cap=3.0, pins={"x": "y"})
    picked_a = [lambda_sampled(h, salt=a.lambda_salt, ratio=a.lambda_ratio) for h in hashes]
    picked_b = [lambda_sampled(h, salt=b.lambda_salt, ratio=b.lambda_ratio) for h in hashes]
    assert picked_a == picked_b
    assert 0 < sum(picked_a) < len(hashes)
    # another salt picks another subset
    other = [lambda_sampled(h, salt="other-salt", ratio=0.3) for h in hashes]
    assert other != picked_a


@pytest.mark.parametrize("ratio", [0.1, 0.25])
def test_selection_rate_matches_the_ratio(ratio: float) -> None:
    hashes = random_hashes(20_000, seed=11)
    rate = sum(lambda_sampled(h, salt=SALT, ratio=ratio) for h in hashes) / len(hashes)
    assert abs(rate - ratio) <= 0.1 * ratio


def test_raising_the_ratio_only_adds_requests_and_zero_selects_none() -> None:
    hashes = random_hashes(5_000, seed=3)
    low = {h for h in hashes if lambda_sampled(h, salt=SALT, ratio=0.05)}
    high = {h for h in hashes if lambda_sampled(h, salt=SALT, ratio=0.2)}
    assert low < high
    assert not any(lambda_sampled(h, salt=SALT, ratio=0.0) for h in hashes)
    assert all(lambda_sampled(h, salt=SALT, ratio=1.0) for h in hashes)


# --------------------------------------------------------------------------- variants (pure)


def test_variants_are_seeds_then_paraphrases_in_order() -> None:
    env = conversation(("p zero", "p one", "p two"))
    variants = stability_variants(env, seeds=2, paraphrases=2)
    assert [(v.name, v.seed) for v in variants] == [
        ("seed:1", 1),
        ("seed:2", 2),
        ("paraphrase:0", 1),
        ("paraphrase:1", 1),
    ]
    for v in variants:
        assert v.envelope.request.params == {"temperature": 0.7, "seed": v.seed}
        assert v.envelope.req_hash == env.req_hash
    assert env.request.params == {"temperature": 0.7}  # the original is untouched
    assert [v.name for v in stability_variants(env, seeds=0, paraphrases=3)] == [
        "paraphrase:0",
        "paraphrase:1",
        "paraphrase:2",
    ]
    assert stability_variants(env, seeds=0, paraphrases=0) == ()
    assert [v.name for v in stability_variants(conversation(()), seeds=1, paraphrases=3)] == ["seed:1"]


def test_paraphrase_replaces_only_the_last_user_message() -> None:
    env = conversation()
    variants = stability_variants(env, seeds=0, paraphrases=3)
    assert len(variants) == 2
    for variant, text in zip(variants, env.paraphrases, strict=True):
        before, after = env.request.messages, variant.envelope.request.messages
        assert len(after) == len(before)
        changed = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
        assert changed == [3]
        assert after[3].content == text
        assert after[3].role == "user"
        assert after[3].name == "u1"  # other fields of the message are kept
        assert after[1].content == "first question"
        assert variant.envelope.request.tools == env.request.tools
    assert env.request.messages[3].content == "second question"


def test_no_user_message_means_no_paraphrase_variant() -> None:
    env = conversation()
    system_only = env.request.model_copy(update={"messages": env.request.messages[:1]})
    env = env.model_copy(update={"request": system_only})
    assert with_last_user_message(env, "x") is None
    assert [v.name for v in stability_variants(env, seeds=1, paraphrases=3)] == ["seed:1"]


# --------------------------------------------------------------------------- running the variants


def echo_result(env: RequestEnvelope, answer: str) -> ShadowResult:
    return ShadowResult(
        req_hash=env.req_hash,
        req_id=env.req_id,
        candidate="c",
        shadow_id="s",
        ts_ms=1,
        status="ok",
        answer=answer,
        latency_ms=1.0,
    )


async def test_replay_variants_keeps_order_and_turns_exceptions_into_samples() -> None:
    env = conversation()
    variants = stability_variants(env, seeds=2, paraphrases=3)

    async def replay(variant_env: RequestEnvelope) -> ShadowResult:
        seed = variant_env.request.params["seed"]
        text = variant_env.request.messages[3].content
        if text == "reworded one":
            raise RuntimeError("bug")
        await asyncio.sleep(0.01 * (4 - seed))  # finish out of order
        return echo_result(variant_env, f"{seed}|{text}")

    samples = await replay_variants(variants, replay)
    assert [(s.variant, s.seed, s.status, s.answer, s.error_class) for s in samples] == [
        ("seed:1", 1, "ok", "1|second question", None),
        ("seed:2", 2, "ok", "2|second question", None),
        ("paraphrase:0", 1, "error", None, "exception"),
        ("paraphrase:1", 1, "ok", "1|reworded two", None),
    ]


async def test_unsampled_requests_are_not_replayed() -> None:
    env = conversation()
    calls: list[Variant] = []

    async def replay(variant_env: RequestEnvelope) -> ShadowResult:
        calls.append(Variant("x", 0, variant_env))
        return echo_result(variant_env, "x")

    assert await stability_samples(env, ShadowSettings(lambda_ratio=0.0), replay) == ()
    assert calls == []
    assert len(await stability_samples(env, ShadowSettings(lambda_ratio=1.0), replay)) == 4
    assert len(calls) == 4


# --------------------------------------------------------------------------- the worker's wiring


class CountingBucket(TokenBucket):
    def __init__(self) -> None:
        super().__init__(1e6)
        self.acquired = 0

    async def acquire(self) -> None:
        self.acquired += 1
        await super().acquire()


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int | None]] = []

    async def send_and_wait(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        headers: object = None,
    ) -> None:
        self.sent.append((topic, value, key, partition))


class Candidate:
    """Answers ``seed|last user text``; records the peak number of concurrent calls."""

    def __init__(self, hold_s: float = 0.02, fail_seed: int | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.peak = 0
        self.hold_s = hold_s
        self.fail_seed = fail_seed

    async def __call__(self, body: dict[str, Any]) -> str:
        self.bodies.append(body)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.hold_s)
        finally:
            self.in_flight -= 1
        if body.get("seed") is not None and body.get("seed") == self.fail_seed:
            raise TimeoutError("slow seed")
        users = [m for m in body["messages"] if m["role"] == "user"]
        return f"{body.get('seed')}|{users[-1]['content']}"


def make_worker(
    fn: Candidate, *, name: str = "cand", ratio: float = 1.0, concurrency: int = 8
) -> tuple[ShadowWorker, CountingBucket, FakeProducer]:
    shadow = ShadowSettings(
        candidate=name,
        lambda_ratio=ratio,
        lambda_seeds=2,
        lambda_paraphrases=3,
        concurrency=concurrency,
        max_attempts=1,
        pins={"model_rev": "cfg"},
        exactly_once=False,  # results go straight to the producer this test reads
    )
    settings = Settings(shadow=shadow, compare=CompareSettings(baseline_candidate="baseline"))
    worker = ShadowWorker(settings, CallableCandidate(name, fn), {})
    bucket = CountingBucket()
    producer = FakeProducer()
    worker.bucket = bucket
    worker._producer = producer
    return worker, bucket, producer


async def handle(worker: ShadowWorker, env: RequestEnvelope, offset: int = 0) -> ShadowResult:
    tp = TopicPartition("requests", 0)
    worker.tracker.add(tp, offset)
    producer = worker._producer
    assert isinstance(producer, FakeProducer)
    before = len(producer.sent)
    await worker._handle(tp, Record("requests", 0, offset, env.req_hash.encode(), encode(env)))
    assert len(producer.sent) == before + 1
    return decode(producer.sent[-1][1], ShadowResult)


async def test_sampled_request_gets_lambda_replays_through_the_bucket_and_slots() -> None:
    fn = Candidate()
    worker, bucket, _producer = make_worker(fn)
    env = conversation()
    result = await handle(worker, env)
    assert result.status == "ok"
    assert result.answer == "None|second question"  # the main replay: no seed
    assert [(s.variant, s.seed, s.status, s.answer) for s in result.stability] == [
        ("seed:1", 1, "ok", "1|second question"),
        ("seed:2", 2, "ok", "2|second question"),
        ("paraphrase:0", 1, "ok", "1|reworded one"),
        ("paraphrase:1", 1, "ok", "1|reworded two"),
    ]
    assert bucket.acquired == 5  # the main replay and every extra one
    assert len(fn.bodies) == 5
    assert fn.peak == 4  # the extra replays ran concurrently
    assert worker.stats.lambda_replays == 4
    assert worker.stats.replayed == 1
    # paraphrase bodies differ from the main one only in the last user message and the seed
    main, para = fn.bodies[0], next(b for b in fn.bodies if "reworded one" in str(b["messages"]))
    assert [m["content"] for m in para["messages"]][:3] == [m["content"] for m in main["messages"]][:3]
    assert para["messages"][4] == main["messages"][4]


async def test_lambda_replays_respect_the_concurrency_slots() -> None:
    fn = Candidate()
    worker, bucket, _producer = make_worker(fn, concurrency=1)
    result = await handle(worker, conversation())
    assert len(result.stability) == 4
    assert fn.peak == 1
    assert bucket.acquired == 5


async def test_unsampled_request_has_no_stability_and_one_token() -> None:
    fn = Candidate()
    worker, bucket, _producer = make_worker(fn, ratio=0.0)
    result = await handle(worker, conversation())
    assert result.stability == ()
    assert bucket.acquired == 1
    assert worker.stats.lambda_replays == 0


async def test_lambda_errors_are_samples_and_counted_by_class() -> None:
    fn = Candidate(fail_seed=2)
    worker, _bucket, _producer = make_worker(fn)
    result = await handle(worker, conversation(()))
    assert result.status == "ok"
    assert [(s.variant, s.status, s.error_class) for s in result.stability] == [
        ("seed:1", "ok", None),
        ("seed:2", "error", "timeout"),
    ]
    assert worker.stats.error_classes == {"timeout": 1}
    assert worker.stats.errors == 0  # main-replay errors only
    assert worker.stats.lambda_replays == 2


async def test_two_candidates_sample_the_same_requests() -> None:
    envs = [make_envelope(f"same-{i}") for i in range(40)]
    sampled: dict[str, list[bool]] = {}
    for name in ("cand-a", "baseline"):
        worker, _bucket, _producer = make_worker(Candidate(hold_s=0.0), name=name, ratio=0.3)
        results = [await handle(worker, env, offset) for offset, env in enumerate(envs)]
        sampled[name] = [bool(r.stability) for r in results]
    assert sampled["cand-a"] == sampled["baseline"]
    assert 0 < sum(sampled["cand-a"]) < len(envs)


async def test_baseline_worker_reports_prod_pins_and_others_do_not() -> None:
    env = conversation().model_copy(update={"pins": {"model_rev": "prod", "index_hash": "i1"}})
    baseline, _b, _p = make_worker(Candidate(hold_s=0.0), name="baseline", ratio=0.0)
    other, _b2, _p2 = make_worker(Candidate(hold_s=0.0), name="cand", ratio=0.0)
    assert (await handle(baseline, env)).pins == {"model_rev": "cfg", "index_hash": "i1"}
    assert (await handle(other, env)).pins == {"model_rev": "cfg"}
