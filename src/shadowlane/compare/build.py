"""Turns join outputs into ``Comparison`` records: ΔS raw / vs noise floor / vs gold, λ, tools, cost.

Shadow answers (and λ replays) are masked with the hook's sanitizer before comparing, because the
prod answer on the envelope was masked too: an e-mail both arms mention must not count as a
difference. Every ΔS a poll needs (prod vs candidate, prod vs baseline, gold vs each arm, the
pairwise λ replays) is embedded in one batch; texts equal after normalisation score 0 without
touching the embedder. Embeddings are batch-invariant (tested), and ``ts_ms`` is event time, so a
comparison is a pure function of its records and the metric config: ``rescore`` reproduces it.
Every joined comparison names the builder's embedder (``delta_s_embedder``, also where ΔS is 0
without embedding): ΔS values of different embedders are not comparable.

Plain pairs (nothing to grade, replay, score, price or mask) are built by the native path
(:mod:`shadowlane.compare.native.builder`), which a differential test holds equal to the code below; the
rest have their records made Python objects first (:mod:`shadowlane.compare.pair_records`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shadowlane.compare import quality as q
from shadowlane.compare import retrieval
from shadowlane.compare.agent_steps import agent_fields, answers_differ
from shadowlane.compare.embedder import Embedder
from shadowlane.compare.join import Built, Joined, Output
from shadowlane.compare.native import use_native
from shadowlane.compare.native.builder import NATIVE_PLAIN, PlainPath
from shadowlane.compare.pair_records import Gone, Pair, Records
from shadowlane.compare.pins import pin_check
from shadowlane.compare.prod_side import ProdSide
from shadowlane.compare.scores import Masked, Scores
from shadowlane.compare.trace_context import CompareTrace
from shadowlane.contracts.comparison import Comparison, traffic_arm_of
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.hashing import pair_id
from shadowlane.sanitize import Sanitizer
from shadowlane.settings import CompareSettings
from shadowlane.tracing import Tracing

normalise = q.normalise


def tool_agreement(env: ProdSide, res: ShadowResult) -> float | None:
    """Jaccard similarity of (tool, arguments) between prod's recorded calls and the shadow's."""
    prod = env.tool_keys
    if not res.tool_calls:
        return 0.0 if prod else None
    shadow = set(q.shadow_tool_keys(res))
    if not prod and not shadow:
        return None
    return len(prod & shadow) / len(prod | shadow)


def _same_text(a: str | None, b: str | None) -> bool | None:
    """Equal after normalisation (None when either is missing); equal strings skip normalising."""
    if a is None or b is None:
        return None
    return a == b or normalise(a) == normalise(b)


def _tool_dispositions(res: ShadowResult) -> tuple[int, int]:
    """(stubbed, blocked) tool calls of a replay."""
    if not res.tool_calls:
        return 0, 0
    stubbed = sum(1 for c in res.tool_calls if c.disposition.startswith("stubbed"))
    return stubbed, sum(1 for c in res.tool_calls if c.disposition == "blocked")


def _shadow_status(res: ShadowResult) -> str:
    return "ok" if res.status == "ok" else f"error:{res.error_class or 'unknown'}"


@dataclass(slots=True)
class Prepared:
    """One poll's outputs on their way to comparisons: per output, the comparison the native path
    built or the output as Python records for the Python builder, and the comparison's wire bytes
    when the native path wrote them."""

    items: list[Comparison | Pair | Gone]
    wire: list[bytes | None]


class ComparisonBuilder:
    """Builds comparisons from already-validated envelopes and results.

    Records are built with the validating constructor: pydantic-core validates them faster than
    the pure-Python ``model_construct`` (measured).
    """

    def __init__(
        self,
        embedder: Embedder | None,
        settings: CompareSettings | None = None,
        sanitizer: Sanitizer | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._embedder = embedder
        self.embedder_name = embedder.name if embedder is not None else None
        """``Comparison.delta_s_embedder`` of every joined comparison this builder builds."""
        self._s = settings or CompareSettings()
        self._sanitizer = sanitizer or Sanitizer(path=self._s.native_path, path_setting="compare.native_path")
        self._citations = re.compile(self._s.citation_pattern)
        self._citation_guard = q.first_literal(self._citations)
        self.grader = q.Grader(self._s)
        self._baseline = self._s.baseline_candidate
        self.native = use_native(self._s.native_path)
        """Whether this builder (and the join fed to it) runs the native hot path."""
        self.trace = CompareTrace(tracing)
        """The comparisons' ``shadowlane.compare`` spans and record headers."""
        self.plain = PlainPath(
            self._s,
            self.embedder_name,
            self._citation_guard,
            self._sanitizer,
            NATIVE_PLAIN if self.native else None,
        )

    def prepare(self, outputs: Sequence[Output]) -> Prepared:
        """Plain pairs built by the native path; every other output's records made Python."""
        plain, records = self.plain, Records()
        items: list[Comparison | Pair | Gone] = []
        wire: list[bytes | None] = []
        for item in outputs:
            if isinstance(item, Built):  # the native join built it
                items.append(Comparison.trusted(item.fields))
                wire.append(item.wire)
                continue
            done = plain.build(item) if isinstance(item, Joined) else None
            if done is not None:
                items.append(done[0])
                wire.append(done[1])
                continue
            items.append(records.pair(item) if isinstance(item, Joined) else records.gone(item))
            wire.append(None)
        return Prepared(items, wire)

    def needs_embedding(self, prepared: Prepared) -> bool:
        """A cheap over-approximation: True when some joined pair may need the embedder."""
        if self._embedder is None:
            return False
        for item in prepared.items:
            if isinstance(item, Pair):
                prod, shadow = item.envelope.prod.answer, item.result.answer
                if item.result.stability or item.envelope.gold is not None or len(item.peers) > 1:
                    return True
                if item.result.retrieved or item.envelope.retrieved:  # ΔS(question, retrieved)
                    return True
                if prod is not None and shadow is not None and normalise(prod) != normalise(shadow):
                    return True
        return False

    def finish(self, prepared: Prepared) -> list[Comparison]:
        """The comparisons of prepared outputs, in order (ΔS embedded in one batch)."""
        masked = Masked(self._sanitizer)
        scores = Scores(self._embedder is not None)
        if self._embedder is not None:  # without an embedder nothing is scored: nothing to plan
            for item in prepared.items:
                if isinstance(item, Pair):
                    self._plan(item, scores, masked)
            scores.compute(self._embedder)
        return [
            self._joined(item, scores, masked)
            if isinstance(item, Pair)
            else self._expired(item)
            if isinstance(item, Gone)
            else item
            for item in prepared.items
        ]

    def build(self, outputs: Sequence[Output]) -> list[Comparison]:
        """One comparison per output, in order: plain pairs by the native path, the rest here."""
        return self.finish(self.prepare(outputs))

    # ------------------------------------------------------------------ planning
    def _baseline_of(self, item: Pair) -> ShadowResult | None:
        if self._baseline is None or item.result.candidate == self._baseline:
            return None
        return item.peers.get(self._baseline)

    def _plan(self, item: Pair, scores: Scores, masked: Masked) -> None:
        prod = item.envelope.prod.answer
        shadow = masked.answer(item.result)
        scores.want(prod, shadow)
        gold = item.envelope.gold.answer if item.envelope.gold else None
        scores.want(gold, shadow)
        scores.want(gold, prod)
        base = self._baseline_of(item)
        if base is not None:
            scores.want(prod, masked.answer(base))
        for res in (item.result, base):
            if res is not None:
                for a, b in q.lambda_pairs(masked.lambda_texts(res)):
                    scores.want(a, b)
        retrieval.plan(item.envelope, item.result, scores, masked)

    # ------------------------------------------------------------------ assembly
    def _lambda(
        self, res: ShadowResult | None, scores: Scores, masked: Masked
    ) -> tuple[q.LambdaState | None, float | None, int]:
        if res is None or not res.stability:
            return None, None, 0
        texts = masked.lambda_texts(res)
        pairwise = [s for s in (scores.get(a, b) for a, b in q.lambda_pairs(texts)) if s is not None]
        state, worst = q.lambda_state(pairwise, self._s.lambda_threshold)
        return state, worst, len(texts)

    def _joined(self, item: Pair, scores: Scores, masked: Masked) -> Comparison:
        env, res = item.envelope, item.result
        prod = env.prod
        shadow_status = _shadow_status(res)
        prod_answer = prod.answer
        shadow = masked.answer(res)
        ds = scores.get(prod_answer, shadow)
        base = self._baseline_of(item)
        floor = scores.get(prod_answer, masked.answer(base)) if base is not None else None
        gold = env.gold
        gold_answer = gold.answer if gold else None
        if gold_answer is None:  # every gold score and verdict is None (a gold with ids only)
            ds_gold = prod_ds_gold = prod_solved = shadow_solved = None
        else:
            ds_gold = scores.get(gold_answer, shadow)
            prod_ds_gold = scores.get(gold_answer, prod_answer)
            prod_solved = self.grader.solved(prod_answer, gold_answer, prod_ds_gold)
            shadow_solved = self.grader.solved(shadow, gold_answer, ds_gold)
        lam, lam_max, lam_n = self._lambda(res, scores, masked)
        base_lam = self._lambda(base, scores, masked)[0] if base is not None else None
        flip = None if lam is None or base_lam is None else base_lam == "convergent" and lam == "divergent"
        target = (
            gold.cited_ids
            if gold and gold.cited_ids
            else q.cited_ids(prod_answer, prod.cited_ids, self._citations, self._citation_guard)
        )
        cited = (
            q.cited_ids(shadow, masked.texts(res.cited_ids), self._citations, self._citation_guard)
            if target
            else ()
        )
        if res.tool_calls:
            tools = q.tool_stats(res, env.tool_keys)
            agreement = tool_agreement(env, res)
            stubbed, blocked = _tool_dispositions(res)
        else:  # what those three give for a replay without tool calls
            tools = q.NO_TOOL_CALLS
            agreement = 0.0 if env.tool_keys else None
            stubbed = blocked = 0
        usage, prices = res.usage, self._s.prices
        shadow_cost = (
            q.cost_usd(res.model, usage.prompt_tokens, usage.completion_tokens, prices) if usage else None
        )
        status = str(prod.status)
        exact = _same_text(prod_answer, shadow)
        pin_mismatch, pin_keys = pin_check(res.pins, res.served_pins)
        prod_pin_mismatch, prod_pin_keys = pin_check(env.pins, env.served_pins)
        # field order = the contract's (trusted construction; test_build validates every shape)
        return Comparison.trusted(
            {
                "schema_version": 1,
                "comparison_id": pair_id(env.req_hash, res.candidate),
                "req_hash": env.req_hash,
                "req_id": env.req_id,
                "candidate": res.candidate,
                "traffic_arm": traffic_arm_of(res.candidate, self._baseline),
                "ts_ms": env.ts_ms,
                "endpoint": env.endpoint,
                "tenant": env.tenant,
                "buckets": env.buckets,
                "complete": True,
                "outcome": "joined",
                "delta_s": ds,
                "exact_match": exact,
                "prod_latency_ms": prod.latency_ms,
                "shadow_latency_ms": res.latency_ms,
                "latency_delta_ms": res.latency_ms - prod.latency_ms,
                "prod_status": status,
                "shadow_status": shadow_status,
                "status_pair": f"{status}/{shadow_status}",
                "shadow_error_class": res.error_class,
                "tool_agreement": agreement,
                "tools_stubbed": stubbed,
                "tools_blocked": blocked,
                "prod_pins": env.pins,
                "candidate_pins": res.pins,
                "delta_s_floor": floor,
                "delta_s_excess": None if ds is None or floor is None else round(ds - floor, 6),
                "delta_s_gold": ds_gold,
                "prod_delta_s_gold": prod_ds_gold,
                "grader": self.grader.name if gold_answer is not None else None,
                "prod_solved": prod_solved,
                "shadow_solved": shadow_solved,
                "lambda_state": lam,
                "lambda_max_ds": lam_max,
                "lambda_samples": lam_n,
                "lambda_threshold": self._s.lambda_threshold if lam is not None else None,
                "baseline_lambda_state": base_lam,
                "lambda_flip": flip,
                "coverage": q.coverage(target, cited) if target else None,
                "coverage_target": ("gold" if gold and gold.cited_ids else "prod") if target else None,
                "tool_calls": tools.calls,
                "tool_valid": tools.valid,
                "tool_success": tools.success,
                "tool_matched_prod": tools.matched_prod,
                "prod_cost_usd": q.cost_usd(prod.model, prod.prompt_tokens, prod.completion_tokens, prices),
                "shadow_cost_usd": shadow_cost,
                "traceparent": res.traceparent,
                "delta_s_embedder": self.embedder_name,
                # pins verified
                "candidate_served_pins": res.served_pins or None,
                "pin_mismatch": pin_mismatch,
                "pin_mismatch_keys": pin_keys,
                "prod_served_pins": env.served_pins or None,
                "prod_pin_mismatch": prod_pin_mismatch,
                "prod_pin_mismatch_keys": prod_pin_keys,
                # agent replay
                **agent_fields(
                    env.tool_steps,
                    q.shadow_tool_keys(res) if res.tool_calls else (),
                    res.status == "ok",
                    answers_differ(ds, exact, self._s.lambda_threshold),
                    prod_answer,
                    shadow,
                    masked.text,
                ),
                # retrieval drift
                **retrieval.figures(env, res, scores, masked, gold.cited_ids if gold else ()),
            }
        )

    def _expired(self, item: Gone) -> Comparison:
        env, res = item.envelope, item.result
        ts = env.ts_ms if env else (res.ts_ms if res else 0)
        return Comparison(
            comparison_id=pair_id(item.req_hash, item.candidate),
            req_hash=item.req_hash,
            req_id=env.req_id if env else (res.req_id if res else None),
            candidate=item.candidate,
            traffic_arm=traffic_arm_of(item.candidate, self._baseline),
            ts_ms=ts,
            endpoint=env.endpoint if env else None,
            tenant=env.tenant if env else None,
            buckets=env.buckets if env else {},
            complete=False,
            outcome=item.outcome,  # type: ignore[arg-type]
            prod_latency_ms=env.prod.latency_ms if env else None,
            shadow_latency_ms=res.latency_ms if res else None,
            prod_status=str(env.prod.status) if env else None,
            shadow_status=_shadow_status(res) if res else None,
            shadow_error_class=res.error_class if res else None,
            prod_pins=env.pins if env else {},
            candidate_pins=res.pins if res else {},
            traceparent=res.traceparent if res else None,
            **_expired_pins(env, res),
        )


def _expired_pins(env: ProdSide | None, res: ShadowResult | None) -> dict[str, Any]:
    """The pin checks an incomplete comparison can still make: each side present checks its own."""
    fields: dict[str, Any] = {}
    if res is not None and res.served_pins:
        mismatch, keys = pin_check(res.pins, res.served_pins)
        fields.update(candidate_served_pins=res.served_pins, pin_mismatch=mismatch, pin_mismatch_keys=keys)
    if env is not None and env.served_pins:
        mismatch, keys = pin_check(env.pins, env.served_pins)
        fields.update(
            prod_served_pins=env.served_pins, prod_pin_mismatch=mismatch, prod_pin_mismatch_keys=keys
        )
    return fields
