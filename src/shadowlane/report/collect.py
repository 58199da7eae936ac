"""Reads a report's records from Kafka: comparisons, A/B exposures and example answer texts.

Each topic is read with :func:`shadowlane.kafka.range_read.read_range` (no consumer group, a fixed
stop offset per partition) and kept by *event time* ``ts_ms`` in ``[from, to)``:

- compare topic: read up to ``to + 2 × join window + 60 s`` (a pair is emitted when it joins or
  when its window expires); a comparison re-emitted after a restart is kept once, a joined one
  winning over a timeout (as ``rescore --verify`` reads it). Only the report's candidate and the
  noise floor are kept.
- requests topic (when a flag is asked for, or answer texts are): read up to ``to + 60 s``;
  envelopes are deduplicated by ``req_hash``; those with an exposure of the flag become A/B rows;
  prod's answer and the gold answer are kept for the disagreement examples only.
- shadow-results topic (answer texts only): the candidate's answers for those examples.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shadowlane.contracts.codec import DecodeError, decode
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.request_check import check_request
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.kafka.range_read import read_range
from shadowlane.report.rows import AbRow, AnswerText, ShadowRow, ab_row, shadow_row
from shadowlane.settings import Settings

REQUEST_MARGIN_MS = 60_000

OnRecords = Callable[[str, int], None]
"""Progress: called with a topic and how many of its records a batch brought."""


@dataclass
class Collected:
    shadow: list[ShadowRow] = field(default_factory=list)
    ab: list[AbRow] = field(default_factory=list)
    answers: dict[str, AnswerText] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)


def compare_margin_ms(settings: Settings) -> int:
    return int(settings.compare.window_s * 1000) * 2 + 60_000


def _tell(on_records: OnRecords | None, topic: str, batches: dict[Any, list[Any]]) -> None:
    if on_records is not None:
        on_records(topic, sum(len(records) for records in batches.values()))


async def read_comparisons(
    settings: Settings,
    kwargs: dict[str, Any],
    from_ms: int,
    to_ms: int,
    candidates: Collection[str],
    on_records: OnRecords | None = None,
) -> tuple[list[ShadowRow], dict[str, int]]:
    """Rows of the given candidates' comparisons with event time in ``[from, to)``."""
    kept: dict[str, Comparison] = {}
    counts = {"compare_records": 0, "compare_undecodable": 0, "compare_duplicates": 0}
    topic = settings.topics.compare_topic
    async for batches in read_range(kwargs, [topic], from_ms, to_ms + compare_margin_ms(settings)):
        _tell(on_records, topic, batches)
        for records in batches.values():
            for record in records:
                counts["compare_records"] += 1
                try:
                    c = decode(record.value, Comparison)
                except DecodeError:
                    counts["compare_undecodable"] += 1
                    continue
                if c.candidate not in candidates or not from_ms <= c.ts_ms < to_ms:
                    continue
                seen = kept.get(c.comparison_id)
                if seen is not None:
                    counts["compare_duplicates"] += 1
                    if seen.complete and not c.complete:
                        continue  # a re-emit after a restart may disagree; joined wins
                kept[c.comparison_id] = c
    return [shadow_row(c) for c in kept.values()], counts


async def read_requests(
    settings: Settings,
    kwargs: dict[str, Any],
    from_ms: int,
    to_ms: int,
    flag: str | None,
    wanted: Collection[str],
    on_records: OnRecords | None = None,
) -> tuple[list[AbRow], dict[str, AnswerText], dict[str, int]]:
    """A/B rows of ``flag`` and (prod answer, gold) of the ``wanted`` request hashes."""
    rows: dict[str, AbRow] = {}
    texts: dict[str, AnswerText] = {}
    counts = {"request_records": 0, "request_undecodable": 0, "request_duplicates": 0}
    topic = settings.topics.requests_topic
    seen: set[str] = set()
    async for batches in read_range(kwargs, [topic], from_ms, to_ms + REQUEST_MARGIN_MS):
        _tell(on_records, topic, batches)
        for records in batches.values():
            for record in records:
                counts["request_records"] += 1
                key = record.key.decode(errors="replace") if record.key else None
                if flag is None and key is not None and key not in wanted:
                    continue  # only answer texts are asked for: skip the decode
                try:
                    env = check_request(record.value, record.key)
                except DecodeError:
                    counts["request_undecodable"] += 1
                    continue
                if not from_ms <= env.ts_ms < to_ms:
                    continue
                if env.req_hash in seen:
                    counts["request_duplicates"] += 1
                    continue
                seen.add(env.req_hash)
                if env.req_hash in wanted:
                    texts[env.req_hash] = AnswerText(
                        prod=env.prod.answer, gold=env.gold.answer if env.gold else None
                    )
                row = ab_row(env) if flag is not None else None
                if row is not None and row.flag == flag:
                    rows[env.req_hash] = row
    return list(rows.values()), texts, counts


async def read_shadow_answers(
    settings: Settings,
    kwargs: dict[str, Any],
    from_ms: int,
    to_ms: int,
    candidate: str,
    wanted: Collection[str],
    on_records: OnRecords | None = None,
) -> dict[str, str]:
    """The candidate's answers to the ``wanted`` request hashes."""
    out: dict[str, str] = {}
    topic = settings.topics.shadow_results_topic
    end = to_ms + compare_margin_ms(settings)
    async for batches in read_range(kwargs, [topic], from_ms, end):
        _tell(on_records, topic, batches)
        for records in batches.values():
            for record in records:
                key = record.key.decode(errors="replace") if record.key else None
                if key is not None and key not in wanted:
                    continue
                try:
                    res = decode(record.value, ShadowResult)
                except DecodeError:
                    continue
                if res.candidate == candidate and res.req_hash in wanted and res.answer is not None:
                    out.setdefault(res.req_hash, res.answer)
    return out


async def collect(
    settings: Settings,
    kwargs: dict[str, Any],
    from_ms: int,
    to_ms: int,
    *,
    candidate: str | None,
    noise_floor: str | None,
    flag: str | None,
    example_hashes: Callable[[Sequence[ShadowRow]], Collection[str]] | None = None,
    on_records: OnRecords | None = None,
) -> Collected:
    """Everything a report reads. ``example_hashes(shadow_rows) -> set[str]`` picks the requests
    whose answer texts to look up (None: no texts); ``on_records`` follows the reading."""
    out = Collected()
    t = settings.topics
    if candidate is not None:
        names = {candidate} | ({noise_floor} if noise_floor else set())
        out.shadow, counts = await read_comparisons(settings, kwargs, from_ms, to_ms, names, on_records)
        out.counts.update(counts)
        out.topics.append(t.compare_topic)
    wanted: set[str] = set(example_hashes(out.shadow)) if example_hashes is not None and out.shadow else set()
    if flag is not None or wanted:
        out.ab, texts, counts = await read_requests(
            settings, kwargs, from_ms, to_ms, flag, wanted, on_records
        )
        out.counts.update(counts)
        out.topics.append(t.requests_topic)
        if wanted and candidate is not None:
            shadow = await read_shadow_answers(
                settings, kwargs, from_ms, to_ms, candidate, wanted, on_records
            )
            out.topics.append(t.shadow_results_topic)
            for h in wanted:
                text = texts.get(h, AnswerText())
                texts[h] = replace(text, shadow=shadow.get(h))
        out.answers = {h: a for h, a in texts.items() if a != AnswerText()}
    return out
