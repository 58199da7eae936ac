"""Per-request quality metrics that need no embedding: coverage, tool success, cost, grading, λ.

Each is a pure function of the records (and the metric config), so ``shadowlane rescore`` can
recompute it later without calling any model. The formulas are the README's, one per function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.hashing import canonical_json
from shadowlane.settings import CompareSettings, ModelPrice

GRADER_VERSION = 1
LambdaState = Literal["convergent", "divergent"]


def normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def first_literal(pattern: re.Pattern[str]) -> str | None:
    """The character every match of ``pattern`` starts with, when it starts with a plain literal
    and matches case-sensitively (``\\[`` for the default citation pattern); else None. A text
    without that character cannot match, which spares the regex scan of most answers."""
    if pattern.flags & re.IGNORECASE:
        return None
    try:
        parsed = re._parser.parse(pattern.pattern, pattern.flags)  # type: ignore[attr-defined]
    except Exception:  # the private parser moved: no guard, the regex always runs
        return None
    if parsed.state.flags & re.IGNORECASE or not len(parsed):
        return None
    op, arg = parsed[0]
    return chr(arg) if op is re._constants.LITERAL else None  # type: ignore[attr-defined]


def cited_ids(
    text: str | None, explicit: Sequence[str], pattern: re.Pattern[str], guard: str | None = None
) -> tuple[str, ...]:
    """Ids an answer cites: the explicit list (response ``citations``) plus regex hits in the text.
    ``guard`` is the pattern's :func:`first_literal`: a text without it is not scanned."""
    if not text or (guard is not None and guard not in text):
        if not explicit:  # the common case: nothing listed, nothing to scan
            return ()
        text = None
    seen = dict.fromkeys(explicit)
    if text is not None:
        for match in pattern.finditer(text):
            seen.setdefault(match.group(1))
    return tuple(seen)


def coverage(target: Sequence[str], cited: Sequence[str]) -> float | None:
    """``|target ∩ cited| / |target|``; None when there is no target to cover."""
    wanted = set(target)
    if not wanted:
        return None
    return len(wanted & set(cited)) / len(wanted)


def tool_key(name: str, arguments: Any) -> tuple[str, str]:
    """(tool, canonical arguments), the form :class:`ProdSide` stores prod's calls in. Arguments
    orjson cannot write (an integer past 64 bits) get the stdlib's sorted compact JSON instead,
    the same on both sides of the comparison, rather than crashing the comparator."""
    if not isinstance(arguments, dict):
        return name, str(arguments)
    try:
        return name, canonical_json(arguments).decode()
    except TypeError:  # orjson.JSONEncodeError
        return name, json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ToolStats:
    calls: int
    valid: int
    matched_prod: int

    @property
    def success(self) -> float | None:
        return self.valid / self.calls if self.calls else None


def shadow_tool_keys(res: ShadowResult) -> list[tuple[str, str]]:
    return [tool_key(c.name, c.arguments) for c in res.tool_calls]


NO_TOOL_CALLS = ToolStats(0, 0, 0)


def tool_stats(res: ShadowResult, prod_keys: frozenset[tuple[str, str]]) -> ToolStats:
    """Valid: names an offered tool and its arguments pass that tool's JSON schema (the shadow
    worker checks it against the request's tool definitions). Matched: equals a recorded prod call."""
    calls = res.tool_calls
    if not calls:
        return NO_TOOL_CALLS
    valid = sum(1 for c in calls if c.schema_valid is True)
    matched = sum(1 for key in shadow_tool_keys(res) if key in prod_keys)
    return ToolStats(len(calls), valid, matched)


def cost_usd(
    model: str | None, prompt: int | None, completion: int | None, prices: Mapping[str, ModelPrice]
) -> float | None:
    """``prompt × input price + completion × output price`` (per million tokens); None if unpriced."""
    if model is None or prompt is None or completion is None:
        return None
    price = prices.get(model)
    if price is None:
        return None
    return round((prompt * price.input_per_mtok + completion * price.output_per_mtok) / 1_000_000, 9)


class Grader:
    """Says whether an answer solves the request, given the gold answer.

    ``contains``: the normalised gold answer occurs in the normalised answer; ``exact``: they are
    equal; ``delta_s``: ΔS(gold, answer) ≤ ``solved_max_delta_s``.
    """

    def __init__(self, settings: CompareSettings) -> None:
        self.kind = settings.grader
        self.max_delta_s = settings.solved_max_delta_s
        self.name = f"{self.kind}@{GRADER_VERSION}"

    def solved(self, answer: str | None, gold: str | None, delta_s_gold: float | None) -> bool | None:
        if gold is None:
            return None
        if answer is None:
            return False
        if self.kind == "contains":
            return normalise(gold) in normalise(answer)
        if self.kind == "exact":
            return normalise(gold) == normalise(answer)
        return None if delta_s_gold is None else delta_s_gold <= self.max_delta_s


def lambda_texts(res: ShadowResult) -> list[str]:
    """The answers λ compares: every successful λ replay with an answer, in record order."""
    return [s.answer for s in res.stability if s.status == "ok" and s.answer is not None]


def lambda_pairs(texts: Sequence[str]) -> list[tuple[str, str]]:
    return list(combinations(texts, 2))


def lambda_state(pairwise: Sequence[float], threshold: float) -> tuple[LambdaState | None, float | None]:
    """Convergent when every pairwise ΔS among the λ replays is ≤ ``threshold``; needs ≥ 1 pair."""
    if not pairwise:
        return None, None
    worst = max(pairwise)
    return ("convergent" if worst <= threshold else "divergent"), worst
