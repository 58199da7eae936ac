"""λ replays: the extra replays of a sampled request that measure how stable a candidate's answer is.

A request is λ-sampled when ``unit_hash(lambda_salt, req_hash) < lambda_ratio``: the choice
depends on the request alone, so every candidate's consumer group picks the same requests and
their λ figures compare like for like. A sampled request is replayed ``lambda_seeds`` more times
with ``seed = 1..k`` (variant ``seed:<n>``), then once per carried paraphrase (up to
``lambda_paraphrases``), the last user message reworded, with ``seed = 1`` (variant
``paraphrase:<i>``, ``i`` indexing ``envelope.paraphrases``).

This module builds the variant envelopes (pure) and runs them concurrently through a replay
function the worker supplies, which takes a token of the rate cap and a concurrency slot for
each one. The outcome is one :class:`StabilitySample` per variant, in variant order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult, StabilitySample
from shadowlane.hashing import unit_hash
from shadowlane.settings import ShadowSettings

log = logging.getLogger(__name__)

ReplayFn = Callable[[RequestEnvelope], Awaitable[ShadowResult]]
PARAPHRASE_SEED = 1


@dataclass(frozen=True, slots=True)
class Variant:
    """One extra replay: its name (``seed:<n>`` / ``paraphrase:<i>``), seed and envelope."""

    name: str
    seed: int
    envelope: RequestEnvelope


def lambda_sampled(req_hash: str, *, salt: str, ratio: float) -> bool:
    """Whether the request named ``req_hash`` gets λ replays (the same answer in every group)."""
    return ratio > 0.0 and unit_hash(salt, req_hash) < ratio


def with_seed(envelope: RequestEnvelope, seed: int) -> RequestEnvelope:
    """``envelope`` with ``seed`` set in the request parameters (anything else unchanged)."""
    request = envelope.request
    params = {**request.params, "seed": seed}
    return envelope.model_copy(update={"request": request.model_copy(update={"params": params})})


def with_last_user_message(envelope: RequestEnvelope, content: str) -> RequestEnvelope | None:
    """``envelope`` with the content of its last user message replaced; None without one."""
    messages = list(envelope.request.messages)
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            messages[index] = messages[index].model_copy(update={"content": content})
            request = envelope.request.model_copy(update={"messages": tuple(messages)})
            return envelope.model_copy(update={"request": request})
    return None


def stability_variants(envelope: RequestEnvelope, *, seeds: int, paraphrases: int) -> tuple[Variant, ...]:
    """The λ variants of ``envelope``: ``seeds`` seeded replays, then its first ``paraphrases``."""
    variants = [Variant(f"seed:{n}", n, with_seed(envelope, n)) for n in range(1, max(seeds, 0) + 1)]
    for index, text in enumerate(envelope.paraphrases[: max(paraphrases, 0)]):
        reworded = with_last_user_message(envelope, text)
        if reworded is not None:
            variants.append(
                Variant(f"paraphrase:{index}", PARAPHRASE_SEED, with_seed(reworded, PARAPHRASE_SEED))
            )
    return tuple(variants)


def sample_of(variant: Variant, result: ShadowResult) -> StabilitySample:
    return StabilitySample(
        variant=variant.name,
        seed=variant.seed,
        status=result.status,
        answer=result.answer,
        error_class=result.error_class,
        retrieved=result.retrieved,
    )


async def replay_variants(variants: Sequence[Variant], replay: ReplayFn) -> tuple[StabilitySample, ...]:
    """Replay every variant concurrently; a replay that raises becomes an ``exception`` sample."""

    async def one(variant: Variant) -> StabilitySample:
        try:
            return sample_of(variant, await replay(variant.envelope))
        except Exception:
            log.exception("λ replay %s of %s failed", variant.name, variant.envelope.req_hash)
            return StabilitySample(
                variant=variant.name, seed=variant.seed, status="error", error_class="exception"
            )

    return tuple(await asyncio.gather(*(one(v) for v in variants)))


async def stability_samples(
    envelope: RequestEnvelope, settings: ShadowSettings, replay: ReplayFn
) -> tuple[StabilitySample, ...]:
    """The λ samples of ``envelope`` (empty when it is not sampled or has no variants)."""
    if not lambda_sampled(envelope.req_hash, salt=settings.lambda_salt, ratio=settings.lambda_ratio):
        return ()
    variants = stability_variants(
        envelope, seeds=settings.lambda_seeds, paraphrases=settings.lambda_paraphrases
    )
    return await replay_variants(variants, replay) if variants else ()
