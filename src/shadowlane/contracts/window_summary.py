"""``WindowSummary``: one tumbling window of comparisons, per candidate and bucket.

A summary is a *partial*: each comparator member summarises the partitions it owns, so the full
picture of a window is the merge of its partials (``partitions`` says which each one covers).
Everything in it is mergeable: counts and sums add, and percentiles are read from the
HdrHistograms the record carries (HdrHistogram's compressed encoding, base64), so summaries of
several windows or members merge later without losing precision: decode, add, read.

Besides the figures dashboards read, a summary carries the additive moments the rollout gates need
for honest confidence intervals (``shadowlane.rollout.gates``): Σ coverage², the paired discordance of
the graded rows (``solved_gained`` / ``solved_lost``: McNemar's off-diagonal cells), and the sums of
squares and cross products of cost and solves behind a delta-method interval for the cost uplift.
They default to 0, so records written before them still decode (the gates then fall back to
conservative intervals).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field, model_validator

from shadowlane.contracts.base import Nested, WireModel


class LatencyStats(Nested):
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    count: int = 0


#: The names of the excess ΔS in records written before it had one name (same values).
LEGACY_NAMES: Final = {
    "delta_s_adjusted_mean": "delta_s_excess_mean",
    "delta_s_adjusted_median": "delta_s_excess_median",
    "delta_s_adjusted_p95": "delta_s_excess_p95",
}


class WindowSummary(WireModel):
    SCHEMA_NAME: ClassVar[str] = "window_summary"
    schema_version: Literal[1] = 1

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """Records (and window states) written before the rename read as if written after it."""
        if isinstance(data, dict) and any(old in data for old in LEGACY_NAMES):
            return {LEGACY_NAMES.get(k, k): v for k, v in data.items()}
        return data

    summary_id: str = Field(description="hash(window, candidate, endpoint, tenant, member, partitions)")
    window_start_ms: int = Field(ge=0)
    window_end_ms: int = Field(ge=0)
    candidate: str
    traffic_arm: str = "shadow"
    endpoint: str | None = None
    tenant: str | None = None
    member: str = Field(default="", description="comparator member that wrote this partial")
    partitions: tuple[int, ...] = Field(default=(), description="requests partitions this partial covers")
    # --- counts
    count: int = Field(ge=0, description="comparisons in the window")
    joined: int = 0
    shadow_timeouts: int = 0
    requests_missing: int = 0
    late: int = Field(
        default=0, description="records that arrived after the key's window closed (counted, not merged)"
    )
    exact_matches: int = 0
    exact_known: int = 0
    exact_match_rate: float | None = None
    shadow_errors: int = 0
    prod_errors: int = 0
    shadow_error_rate: float | None = None
    prod_error_rate: float | None = None
    # --- ΔS raw, against the noise floor, against gold
    delta_s_count: int = 0
    delta_s_sum: float = 0.0
    delta_s_mean: float | None = None
    delta_s_median: float | None = None
    delta_s_p95: float | None = None
    excess_count: int = Field(default=0, description="comparisons with both ΔS and a noise floor")
    excess_sum: float = 0.0
    delta_s_excess_mean: float | None = Field(
        default=None, description="excess ΔS, mean: mean(ΔS) − mean(floor) over the requests with both"
    )
    delta_s_excess_median: float | None = Field(
        default=None, description="excess ΔS, median: median(ΔS) − median(floor) over the requests with both"
    )
    delta_s_excess_p95: float | None = Field(
        default=None, description="excess ΔS, p95: p95(ΔS) − p95(floor) over the requests with both"
    )
    delta_s_floor_median: float | None = None
    delta_s_floor_p95: float | None = None
    gold_count: int = 0
    delta_s_gold_median: float | None = None
    # --- λ
    lambda_sampled: int = Field(default=0, description="comparisons with a λ state")
    lambda_divergent: int = 0
    lambda_paired: int = Field(default=0, description="comparisons where baseline and candidate both have λ")
    lambda_flips: int = 0
    lambda_flip_rate: float | None = Field(default=None, description="lambda_flips / lambda_paired")
    # --- pins verified (served vs expected; shadowlane.compare.pins)
    pin_checked: int = Field(default=0, description="comparisons whose candidate pins were checked")
    pin_mismatches: int = Field(default=0, description="of those, the candidate served other pins")
    pin_mismatch_rate: float | None = Field(default=None, description="pin_mismatches / pin_checked")
    prod_pin_checked: int = Field(default=0, description="comparisons whose prod pins were checked")
    prod_pin_mismatches: int = Field(default=0, description="of those, prod served other pins")
    # --- coverage, tools
    coverage_count: int = 0
    coverage_sum: float = 0.0
    coverage_sq_sum: float = Field(default=0.0, description="Σ coverage², for the coverage interval")
    coverage_mean: float | None = None
    # --- retrieval drift (shadowlane.compare.retrieval); defaults: records written before it decode
    retrieval_count: int = Field(
        default=0, description="comparisons with the candidate's ΔS(question, retrieved)"
    )
    retrieval_delta_s_median: float | None = Field(
        default=None,
        description="median over requests of the candidate's ΔS(question, retrieved), each the worst "
        "over the request and its λ paraphrases",
    )
    retrieval_delta_s_p95: float | None = Field(
        default=None, description="p95 of the same (the retrieval_delta_s_max gate reads it)"
    )
    prod_retrieval_count: int = Field(default=0, description="comparisons with prod's retrieval ΔS")
    prod_retrieval_delta_s_median: float | None = None
    prod_retrieval_delta_s_p95: float | None = None
    retrieval_overlap_count: int = 0
    retrieval_overlap_sum: float = 0.0
    retrieval_overlap_mean: float | None = Field(
        default=None, description="mean Jaccard of the retrieved ids, prod vs candidate"
    )
    retrieval_coverage_count: int = 0
    retrieval_coverage_sum: float = 0.0
    retrieval_coverage_sq_sum: float = Field(default=0.0, description="Σ retrieval coverage²")
    retrieval_coverage_mean: float | None = Field(
        default=None,
        description="mean share of the gold label's cited ids (the expected section) the candidate "
        "retrieved, over the requests with such a label; coverage of prod's ids is not in it",
    )
    tool_calls: int = 0
    tool_valid: int = 0
    tool_matched_prod: int = 0
    tool_success_rate: float | None = None
    # --- agent replay (shadowlane.compare.agent_steps)
    agent_compared: int = Field(
        default=0,
        description="joined comparisons of a finished replay with tool steps on either side, judged (a "
        "step differs, or both sides answered)",
    )
    agent_diverged: int = Field(default=0, description="of those, a step where the candidate left prod's run")
    agent_divergence_rate: float | None = Field(default=None, description="agent_diverged / agent_compared")
    # --- cost and outcome
    graded: int = Field(default=0, description="comparisons a grader scored (both arms)")
    prod_solved: int = 0
    shadow_solved: int = 0
    solved_gained: int = Field(default=0, description="graded rows the candidate solved and prod did not")
    solved_lost: int = Field(default=0, description="graded rows prod solved and the candidate did not")
    priced: int = Field(default=0, description="comparisons with a cost for both arms")
    prod_cost_usd: float = 0.0
    shadow_cost_usd: float = 0.0
    prod_cost_sq: float = Field(default=0.0, description="Σ prod cost² over priced rows (USD²)")
    shadow_cost_sq: float = 0.0
    cost_cross: float = Field(default=0.0, description="Σ prod cost × shadow cost over priced rows")
    priced_graded: int = Field(default=0, description="comparisons both priced and graded")
    graded_prod_cost_usd: float = Field(default=0.0, description="prod cost over priced and graded rows")
    graded_shadow_cost_usd: float = 0.0
    priced_prod_solved: int = Field(default=0, description="prod solves among priced and graded rows")
    priced_shadow_solved: int = 0
    priced_both_solved: int = Field(default=0, description="priced and graded rows both arms solved")
    graded_prod_cost_sq: float = Field(default=0.0, description="Σ prod cost² over priced and graded rows")
    graded_shadow_cost_sq: float = 0.0
    graded_cost_cross: float = Field(default=0.0, description="Σ prod × shadow cost, priced and graded rows")
    graded_prod_cost_prod_solved: float = Field(
        default=0.0, description="prod cost of the priced and graded rows prod solved"
    )
    graded_prod_cost_shadow_solved: float = Field(
        default=0.0, description="prod cost of the priced and graded rows the candidate solved"
    )
    graded_shadow_cost_prod_solved: float = 0.0
    graded_shadow_cost_shadow_solved: float = 0.0
    prod_cost_per_solved_usd: float | None = None
    shadow_cost_per_solved_usd: float | None = None
    cost_uplift: float | None = Field(
        default=None, description="shadow / prod cost per solved request − 1 (per request when ungraded)"
    )
    # --- latency per arm
    latency_prod: LatencyStats = LatencyStats()
    latency_shadow: LatencyStats = LatencyStats()
    latency_p95_uplift: float | None = Field(default=None, description="shadow p95 / prod p95 − 1")
    hist_latency_prod_us: str = Field(description="HdrHistogram, base64 compressed, microseconds")
    hist_latency_shadow_us: str
    hist_delta_s_e4: str = Field(description="HdrHistogram of round(ΔS × 10,000) + 1")
    hist_delta_s_paired_e4: str = Field(description="ΔS of the requests that also have a noise floor")
    hist_delta_s_floor_e4: str
    hist_delta_s_gold_e4: str
    hist_retrieval_delta_s_e4: str = Field(
        default="", description="the candidate's ΔS(question, retrieved), as hist_delta_s_e4 ('': none)"
    )
    hist_prod_retrieval_delta_s_e4: str = Field(default="", description="prod's ΔS(question, retrieved)")
