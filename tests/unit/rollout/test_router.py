"""shadowlane/rollout/router.py and shadowlane/contracts/route_config.py: sticky, monotone, scoped assignment.

The statistical checks use a tolerance of 5 binomial standard deviations: a correct hash fails
one with probability below 1e-6, a biased or non-monotone one fails it for sure at 100k ids.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.route_config import RouteConfig
from shadowlane.hashing import unit_hash
from shadowlane.rollout.router import assign, ensure_request_id, epoch_salt, is_usable_request_id
from shadowlane.settings import HookSettings

N = 100_000
RAMP = (0.01, 0.05, 0.25, 0.5, 1.0)
EXAMPLE = Path(__file__).resolve().parents[3] / "schemas" / "examples" / "route_config.v1.json"
HOOK_SALT = "shadowlane-v1"


def make_config(*rules: dict[str, Any], **top: Any) -> RouteConfig:
    base: dict[str, Any] = {"flag": "f", "epoch": 1, "salt": "router-test", "baseline": "a"}
    return RouteConfig.model_validate({**base, **top, "rules": list(rules)})


def canary(weight: float, **rule: Any) -> dict[str, Any]:
    return {"strategy": "canary", "candidate": "b", "candidate_weight": weight, **rule}


def within(count: int, n: int, p: float, sds: float = 5.0) -> bool:
    """``count`` successes of ``n`` draws is within ``sds`` binomial sd of ``n * p``."""
    return abs(count - n * p) <= sds * math.sqrt(n * p * (1.0 - p)) + 1e-9


@pytest.fixture(scope="module")
def ids() -> tuple[str, ...]:
    return tuple(f"req-{i:06d}" for i in range(N))


@pytest.fixture(scope="module")
def candidates(ids: tuple[str, ...]) -> Callable[[float], frozenset[str]]:
    """The ids served the candidate at a canary weight (epoch 1), each weight computed once."""
    cache: dict[float, frozenset[str]] = {}

    def at(weight: float) -> frozenset[str]:
        if weight not in cache:
            config = make_config(canary(weight))
            cache[weight] = frozenset(r for r in ids if assign(r, config).arm == "candidate")
        return cache[weight]

    return at


# ------------------------------------------------------------------ stickiness and ramp-up
def test_the_same_request_id_always_lands_on_the_same_arm(
    ids: tuple[str, ...], candidates: Callable[[float], frozenset[str]]
) -> None:
    first = candidates(0.25)
    # an equal config parsed from JSON (another host, a restart) and the ids in another order
    again = RouteConfig.model_validate_json(make_config(canary(0.25)).model_dump_json())
    second = frozenset(r for r in reversed(ids) if assign(r, again).arm == "candidate")
    assert first == second
    assert within(len(first), N, 0.25)


def test_user_stickiness_keeps_a_user_on_one_arm_across_request_ids() -> None:
    users, per_user = 10_000, 10
    by_user = make_config(canary(0.3), sticky_on="user_id")
    by_request = make_config(canary(0.3), sticky_on="request_id")
    arms: dict[str, set[str]] = {}
    mixed = 0
    for u in range(users):
        uid = f"user-{u}"
        rids = [f"{uid}-req-{k}" for k in range(per_user)]
        got = {assign(r, by_user, user_id=uid) for r in rids}
        arms[uid] = {a.arm for a in got}
        assert {a.sticky_on for a in got} == {"user_id"}
        if u < 1_000:
            mixed += len({assign(r, by_request, user_id=uid).arm for r in rids}) > 1
    assert all(len(a) == 1 for a in arms.values())
    assert within(sum(a == {"candidate"} for a in arms.values()), users, 0.3)
    # keyed on request ids, a user's 10 requests split (all 10 agree with probability 0.7^10 + 0.3^10)
    assert mixed > 900


def test_user_stickiness_falls_back_to_the_request_id_without_a_user_id() -> None:
    config = make_config(canary(0.5), sticky_on="user_id")
    for uid in (None, ""):
        got = assign("req-1", config, user_id=uid)
        assert got.sticky_on == "request_id"
        assert got.bucket == unit_hash(epoch_salt("router-test", 1), "req-1")


@pytest.mark.parametrize(("lo", "hi"), list(itertools.pairwise(RAMP)))
def test_raising_the_canary_weight_only_moves_ids_from_baseline_to_candidate(
    lo: float, hi: float, candidates: Callable[[float], frozenset[str]]
) -> None:
    low, high = candidates(lo), candidates(hi)
    assert low <= high, f"{len(low - high)} ids went back to baseline when the weight rose {lo} -> {hi}"
    assert within(len(low), N, lo), f"{len(low)} candidates at weight {lo}"
    assert within(len(high), N, hi), f"{len(high)} candidates at weight {hi}"


def test_full_weight_serves_everyone_the_candidate_and_zero_weight_nobody() -> None:
    full, none = make_config(canary(1.0)), make_config(canary(0.0))
    rids = [f"edge-{i}" for i in range(5_000)]
    assert {assign(r, full).serve for r in rids} == {"b"}
    assert {assign(r, none).serve for r in rids} == {"a"}


def test_a_new_epoch_reshuffles_independently(
    ids: tuple[str, ...], candidates: Callable[[float], frozenset[str]]
) -> None:
    before = candidates(0.5)
    next_epoch = make_config(canary(0.5), epoch=2)
    after = frozenset(r for r in ids if assign(r, next_epoch).arm == "candidate")
    assert within(len(after), N, 0.5)
    # independent draws: an id is candidate in both epochs with probability 0.5 * 0.5
    assert within(len(before & after), N, 0.25)


def test_epoch_salt_is_injective_on_salt_and_epoch() -> None:
    pairs = [("s", 1), ("s", 11), ("s#epoch1", 1), ("s1", 1), ("s#epoch", 11)]
    assert len({epoch_salt(s, e) for s, e in pairs}) == len(pairs)


# ------------------------------------------------------------------ strategies
def test_shadow_serves_the_baseline_and_mirrors_the_hooks_sample() -> None:
    lo = make_config({**canary(0.0), "strategy": "shadow", "shadow_ratio": 0.05})
    hi = make_config({**canary(0.0), "strategy": "shadow", "shadow_ratio": 0.25})
    n = 20_000
    mirrored_lo: set[str] = set()
    mirrored_hi: set[str] = set()
    for i in range(n):
        rid = f"shadow-{i}"
        a, b = assign(rid, lo, user_id="u-1"), assign(rid, hi)
        assert (a.arm, a.serve, a.strategy, a.sticky_on) == ("baseline", "a", "shadow", "request_id")
        # the very number the publish hook samples with and records in SamplingDecision.bucket
        assert a.bucket == unit_hash(HOOK_SALT, rid)
        if a.mirror_to is not None:
            assert a.mirror_to == "b"
            mirrored_lo.add(rid)
        if b.mirror_to is not None:
            mirrored_hi.add(rid)
    assert within(len(mirrored_lo), n, 0.05)
    assert within(len(mirrored_hi), n, 0.25)
    assert mirrored_lo <= mirrored_hi


def test_the_default_sampling_salt_is_the_hooks() -> None:
    default = inspect.signature(assign).parameters["sampling_salt"].default
    assert default == HookSettings.model_fields["salt"].default == HOOK_SALT
    shadow = make_config({**canary(0.0), "strategy": "shadow", "shadow_ratio": 0.5})
    assert assign("r", shadow, sampling_salt="other").bucket == unit_hash("other", "r")


def test_ab_splits_by_weight_and_serves_the_rules_targets() -> None:
    config = make_config({**canary(0.5), "strategy": "ab", "baseline": "model-a", "candidate": "model-b"})
    n = 20_000
    got = [assign(f"ab-{i}", config) for i in range(n)]
    assert {(a.arm, a.serve) for a in got} == {("baseline", "model-a"), ("candidate", "model-b")}
    assert all(a.mirror_to is None and a.strategy == "ab" and a.rule == 0 for a in got)
    assert within(sum(a.arm == "candidate" for a in got), n, 0.5)


def test_the_kill_switch_serves_every_baseline_and_mirrors_nothing() -> None:
    live = RouteConfig.model_validate_json(EXAMPLE.read_bytes())
    killed = RouteConfig.model_validate({**live.model_dump(), "kill": True})
    for i in range(2_000):
        for tenant in ("acme", "lab", "other"):
            for region in ("us-east-1", "eu-west-1"):
                got = assign(f"k-{i}", killed, tenant=tenant, region=region, user_id=f"u-{i}")
                rule = live.rules[got.rule] if got.rule is not None else None
                expected = (rule.baseline if rule else None) or live.baseline
                assert (got.arm, got.serve, got.mirror_to, got.strategy) == (
                    "baseline",
                    expected,
                    None,
                    "off",
                )
                assert got.bucket is None
                assert "kill" in got.reason


def test_an_off_rule_serves_its_baseline() -> None:
    config = make_config({"strategy": "off", "baseline": "pinned", "candidate": "b", "candidate_weight": 0.5})
    got = assign("r", config)
    assert (got.arm, got.serve, got.mirror_to, got.strategy, got.rule, got.bucket) == (
        "baseline",
        "pinned",
        None,
        "off",
        0,
        None,
    )


# ------------------------------------------------------------------ scope
def test_scope_first_match_wins_and_no_match_is_off() -> None:
    config = make_config(
        canary(1.0, scope={"tenants": ["acme"], "regions": ["us-east-1"], "endpoints": ["/rag/reason"]}),
        {
            "strategy": "shadow",
            "candidate": "c",
            "shadow_ratio": 1.0,
            "scope": {"tenants": ["acme"], "regions": ["all"], "endpoints": ["*"]},
        },
        {"strategy": "off", "baseline": "eu-pinned", "scope": {"regions": ["eu-west-1"]}},
    )
    hit = assign("r", config, tenant="acme", region="us-east-1", endpoint="/rag/reason")
    assert (hit.rule, hit.serve) == (0, "b")
    other_endpoint = assign("r", config, tenant="acme", region="us-east-1", endpoint="/v1/chat/completions")
    assert (other_endpoint.rule, other_endpoint.serve, other_endpoint.mirror_to) == (1, "a", "c")
    first_match = assign("r", config, tenant="acme", region="eu-west-1")  # rules 1 and 2 both match
    assert first_match.rule == 1
    eu = assign("r", config, tenant="globex", region="eu-west-1")
    assert (eu.rule, eu.serve, eu.strategy) == (2, "eu-pinned", "off")
    miss = assign("r", config, tenant="globex", region="us-east-1")
    assert (miss.rule, miss.serve, miss.mirror_to, miss.strategy) == (None, "a", None, "off")
    assert "no rule matches" in miss.reason


def test_a_config_without_rules_is_off() -> None:
    got = assign("r", make_config())
    assert (got.rule, got.serve, got.strategy) == (None, "a", "off")


# ------------------------------------------------------------------ contract
def test_the_example_validates_round_trips_and_routes() -> None:
    raw = EXAMPLE.read_bytes()
    config = RouteConfig.model_validate_json(raw)
    assert decode(encode(config), RouteConfig) == config
    assert json.loads(encode(config)) == json.loads(raw)
    got = assign("req-1", config, tenant="acme", region="us-east-1", user_id="u-7")
    assert (got.rule, got.strategy, got.sticky_on, got.epoch) == (0, "canary", "user_id", 3)


def _bad(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(EXAMPLE.read_bytes())
    change(obj)
    return obj


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = obj
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(last) if last.isdigit() else last] = value

    return change


def _dup_first_rule(obj: dict[str, Any]) -> None:
    obj["rules"].insert(1, dict(obj["rules"][0]))


def _narrow_after_wildcard(obj: dict[str, Any]) -> None:
    obj["rules"].append({"strategy": "off", "scope": {"tenants": ["acme"]}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("rules.0.candidate_weight", 1.5), "candidate_weight"),
        (_set("rules.0.candidate_weight", -0.1), "candidate_weight"),
        (_set("rules.2.shadow_ratio", float("nan")), "shadow_ratio"),
        (_set("salt", ""), "salt is empty"),
        (_set("salt", "   "), "salt is empty"),
        (_set("epoch", -1), "epoch"),
        (_set("flag", ""), "flag"),
        (_set("baseline", "has space"), "baseline"),
        (_set("sticky_on", "session"), "sticky_on"),
        (_set("rules.0.candidate", None), "candidate: strategy 'canary' needs a candidate"),
        (_set("rules.0.candidate", "grammar-a"), "is the baseline itself"),
        (_set("rules.1.baseline", "grammar-c"), "is the baseline itself"),
        (_set("rules.2.candidate_weight", 0.1), "candidate_weight: strategy 'shadow' serves only"),
        (_set("rules.0.shadow_ratio", 0.1), "shadow_ratio: strategy 'canary' does not mirror"),
        (_set("rules.0.strategy", "blue_green"), "strategy"),
        (_set("rules.0.scope.tenants", []), "scope.tenants is empty"),
        (_set("rules.0.scope.regions", ["*", "us-east-1"]), "scope.regions mixes a wildcard"),
        (_set("rules.0.scope.endpoints", ["/a", "/a"]), "scope.endpoints lists a value twice"),
        (_set("rules.0.scope.tenants", [" acme"]), "scope.tenants holds an empty or whitespace"),
        (_dup_first_rule, "rules[1]: duplicate or contradicting rule"),
        (_narrow_after_wildcard, "rules[3] (tenants=*"),
        (_set("surprise", 1), "surprise"),
        (_set("schema_version", 2), "schema_version"),
    ],
)
def test_bad_configs_are_rejected_with_a_message_naming_the_field(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        RouteConfig.model_validate(_bad(change))
    assert message in str(exc.value)


def test_a_narrower_rule_after_a_partly_overlapping_one_is_allowed() -> None:
    config = make_config(
        canary(0.1, scope={"tenants": ["acme"], "regions": ["us-east-1"]}),
        canary(0.5, scope={"tenants": ["acme", "globex"]}),
        canary(0.9, scope={"regions": ["us-east-1"]}),
    )
    assert assign("r", config, tenant="globex", region="us-east-1").rule == 1
    assert assign("r", config, tenant="initech", region="us-east-1").rule == 2


# ------------------------------------------------------------------ request ids
@pytest.mark.parametrize(
    "value", [None, "", "   ", " padded", "a" * 257, "bad\nid", "tab\tid", "café", "nul\x00"]
)
def test_missing_or_unusable_request_ids_get_a_fresh_uuid4(value: str | None) -> None:
    first, second = ensure_request_id(value), ensure_request_id(value)
    assert uuid.UUID(first).version == 4
    assert str(uuid.UUID(first)) == first
    assert first != second  # generated ids are fresh each time: not sticky across retries
    assert is_usable_request_id(first)


@pytest.mark.parametrize(
    "value", ["req-1", "a" * 256, "abc-123_XYZ:9/x", str(uuid.uuid4()), "with inner space"]
)
def test_usable_request_ids_are_kept(value: str) -> None:
    assert ensure_request_id(value) == value
