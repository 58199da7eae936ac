"""The sticky router: which target serves a request, and where it is mirrored, under a rollout flag.

:func:`assign` is a pure function of its arguments (no I/O, no clock, no state): the same request
and the same :class:`~shadowlane.contracts.route_config.RouteConfig` always give the same :class:`Assignment`,
on any host, so assignments can be recomputed later (by the join, by an audit) from the logged
keys. It uses the one hash of the project, :func:`shadowlane.hashing.unit_hash`, the function the
publish hook samples with, so one hash runs from shadow sampling through the join to canary
assignment.

Semantics
---------
* Rules are tried in order; the first whose scope matches (tenant AND region AND endpoint, each
  exact or a ``*`` / ``all`` wildcard) decides. No match: ``off``, the config's baseline is served.
* ``kill`` on the config overrides every rule: the matched rule's baseline (or the config's) is
  served and nothing is mirrored.
* ``off``: serve the rule's baseline, mirror nothing.
* ``ab`` / ``canary``: ``bucket = unit_hash(epoch_salt(salt, epoch), sticky key)``; the candidate
  is served iff ``bucket < candidate_weight``. The candidate set at weight ``w`` is
  ``{key: bucket < w}``, so raising the weight only moves keys from baseline to candidate, never
  back (1% → 5% → 25% → 50% → 100% are nested sets), and lowering it is the exact reverse.
* The sticky key is the user id when the config says ``sticky_on="user_id"`` and the request
  carries one (a user keeps their arm across requests, sessions and retries), else the request id.

Epoch salt
----------
The arm hash is salted with ``epoch_salt(salt, epoch) = f"{salt}#epoch{epoch}"``. The epoch is an
integer, so the part after the last ``#epoch`` is all digits and the derivation is injective: two
different ``(salt, epoch)`` pairs never share a salt. Within an epoch a key keeps its arm whatever
the weights do; bumping the epoch reshuffles every key independently of the previous epoch (used to
start a fresh experiment with users who were not exposed before, or to undo a biased cohort).

Shadow bucket: the hook's own number
------------------------------------
The shadow decision is ``unit_hash(sampling_salt, request_id) < shadow_ratio`` where
``sampling_salt`` is the publish hook's salt (``HookSettings.salt``): it is *the very same number*
the hook samples with and records as ``SamplingDecision.bucket`` in the envelope. Not the arm hash,
and not the user id, because:

* the envelope contract defines the sampling bucket as ``hash(salt, req_id)``: a mirrored
  request's recorded bucket and ratio then explain exactly why it was mirrored, and the join and
  audits can recompute the decision from the envelope alone;
* the hook's ``sample_ratio`` and the rule's ``shadow_ratio`` compose as ``min(...)`` of one
  bucket (nested sets), not as a product of two independent draws, so a shadow ramp 1% → 5% only
  adds requests and mirrored traffic is what the config says (as long as the hook samples at least
  the shadow ratio);
* shadowing never changes what a user is served, so there is no user-visible arm to keep sticky:
  the same request id (a client retry) still gets the same decision, which is what dedupe needs.

Consequences: the shadow sample does not move with the flag's epoch (rotate the hook's salt to
reshuffle it), ``sticky_on="user_id"`` does not apply to shadow rules, and the shadowed requests are
independent of who a later canary serves (different salts). ``sampling_salt`` defaults to the
hook's default salt; a deployment that sets its own hook salt must pass it (a unit test pins the
default to ``HookSettings``).

Request ids
-----------
:func:`ensure_request_id` keeps a usable client id and generates a UUIDv4 otherwise. A generated id
is fresh on every attempt, so a client that sends no id and retries lands in a new bucket each time:
per-request stickiness then holds only for one attempt. Flags that must keep a person on one arm
across retries and sessions set ``sticky_on="user_id"``; that is what user stickiness is for.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from shadowlane.contracts.route_config import WILDCARDS, RouteConfig, StickyOn, Strategy
from shadowlane.hashing import unit_hash

Arm = Literal["baseline", "candidate"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where one request goes under one flag, and why (log it as the exposure event)."""

    arm: Arm
    """``candidate`` only when the candidate *serves* the request (ab / canary)."""
    serve: str
    """The target that answers the user."""
    mirror_to: str | None
    """The target the request is mirrored to (shadow), or None."""
    strategy: Strategy
    """The strategy that decided: ``off`` for kill, no match and off rules."""
    rule: int | None
    """Index of the matching rule, or None when no rule matches."""
    bucket: float | None
    """The unit hash that decided (arm bucket for ab / canary, the hook's bucket for shadow);
    None when no hash decided (kill, off, no match)."""
    epoch: int
    sticky_on: StickyOn
    """The key that was hashed: ``user_id`` only when the config asks for it and one was given."""
    reason: str


def epoch_salt(salt: str, epoch: int) -> str:
    """The arm-hash salt of ``(salt, epoch)``: injective, so every epoch draws afresh."""
    return f"{salt}#epoch{epoch}"


def match_rule(config: RouteConfig, *, tenant: str, region: str, endpoint: str) -> int | None:
    """Index of the first rule whose scope matches, or None.

    A validated scope list holds a wildcard only alone, so checking its first value suffices.
    """
    for index, rule in enumerate(config.rules):
        scope = rule.scope
        if (
            (tenant in scope.tenants or scope.tenants[0] in WILDCARDS)
            and (region in scope.regions or scope.regions[0] in WILDCARDS)
            and (endpoint in scope.endpoints or scope.endpoints[0] in WILDCARDS)
        ):
            return index
    return None


def assign(
    request_id: str,
    config: RouteConfig,
    *,
    tenant: str = "default",
    region: str = "default",
    endpoint: str = "/v1/chat/completions",
    user_id: str | None = None,
    sampling_salt: str = "shadowlane-v1",
) -> Assignment:
    """The arm, served target and mirror target of one request (pure; see the module docstring).

    ``request_id`` should come from :func:`ensure_request_id`; ``sampling_salt`` must be the
    publish hook's salt so the shadow bucket is the one the hook records.
    """
    index = match_rule(config, tenant=tenant, region=region, endpoint=endpoint)
    if index is None:
        reason = f"no rule matches tenant={tenant} region={region} endpoint={endpoint}"
        if config.kill:
            reason = f"kill switch; {reason}"
        return _baseline(config, config.baseline, index, reason)
    rule = config.rules[index]
    baseline = rule.baseline or config.baseline
    if config.kill:
        return _baseline(config, baseline, index, f"kill switch overrides rules[{index}] ({rule.strategy})")
    if rule.strategy == "off":
        return _baseline(config, baseline, index, f"rules[{index}] is off")
    if rule.strategy == "shadow":
        bucket = unit_hash(sampling_salt, request_id)
        mirrored = bucket < rule.shadow_ratio
        return Assignment(
            arm="baseline",
            serve=baseline,
            mirror_to=rule.candidate if mirrored else None,
            strategy="shadow",
            rule=index,
            bucket=bucket,
            epoch=config.epoch,
            sticky_on="request_id",
            reason=f"rules[{index}] shadow: bucket < shadow_ratio, mirror"
            if mirrored
            else f"rules[{index}] shadow: bucket >= shadow_ratio, no mirror",
        )
    by_user = config.sticky_on == "user_id" and bool(user_id)
    key = user_id if by_user and user_id else request_id
    bucket = unit_hash(epoch_salt(config.salt, config.epoch), key)
    chosen = bucket < rule.candidate_weight
    candidate = rule.candidate if rule.candidate is not None else baseline  # validated: always set
    return Assignment(
        arm="candidate" if chosen else "baseline",
        serve=candidate if chosen else baseline,
        mirror_to=None,
        strategy=rule.strategy,
        rule=index,
        bucket=bucket,
        epoch=config.epoch,
        sticky_on="user_id" if by_user else "request_id",
        reason=f"rules[{index}] {rule.strategy}: bucket < candidate_weight, candidate"
        if chosen
        else f"rules[{index}] {rule.strategy}: bucket >= candidate_weight, baseline",
    )


def _baseline(config: RouteConfig, serve: str, index: int | None, reason: str) -> Assignment:
    return Assignment(
        arm="baseline",
        serve=serve,
        mirror_to=None,
        strategy="off",
        rule=index,
        bucket=None,
        epoch=config.epoch,
        sticky_on="request_id",
        reason=reason,
    )


def is_usable_request_id(value: str) -> bool:
    """A client id the router can hash as is: 1..256 printable ASCII chars, no outer whitespace."""
    return 0 < len(value) <= 256 and value.isascii() and value.isprintable() and value == value.strip()


def ensure_request_id(value: str | None) -> str:
    """``value`` when it is a usable request id, else a fresh UUIDv4 (not sticky across retries)."""
    if value is not None and is_usable_request_id(value):
        return value
    return str(uuid.uuid4())
