"""Hand-run probe: where the comparator's time goes against the raw baseline (not collected by pytest).

    .venv/bin/python -m tests.bench.compare_probe [--requests 20000] [--rounds 3]

Per round, CPU time per pair (``time.process_time``) of four runs over the same records:

- ``raw in-process`` / ``comparator in-process``: the records' bytes copied afresh per
  2,000-record poll (as a fetch hands them over, before the clock starts), then decoded (the
  baseline) or ingested (read and joined), built, encoded, windowed, observed and released (the
  comparator's per-pair work, no Kafka);
- ``raw via Kafka`` / ``comparator via Kafka``: the ``compare`` benchmark's two variants.

The ratios say whether the gap is the comparator's own work or its Kafka traffic. Needs the
local broker (or ``KAFKA_BOOTSTRAP_SERVERS``); its topics are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.native.join import join_buffer
from shadowlane.compare.prom import CompareMetrics
from shadowlane.contracts.codec import decode, encode
from shadowlane.contracts.envelope import RequestEnvelope
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.gc_tuning import tune_for_workers
from shadowlane.kafka.admin import ensure_topics
from shadowlane.kafka.offsets import OffsetTracker
from shadowlane.malloc_tuning import tune_allocator
from shadowlane.settings import CompareSettings
from shadowlane.windows.aggregate import WindowAggregator
from tests.bench import bench_compare as bc
from tests.bench.common import bench_settings, delete_topics, kafka_kwargs
from tests.support.factories import result

POLL = 2_000
Records = list[tuple[bool, bytes]]  # (is a request, value)


def _records(n: int) -> Records:
    out: Records = []
    for env in bc.envelopes(n):
        out += [(True, encode(env)), (False, encode(result(env, "cand")))]
    return out


def _polls(records: Records) -> list[Records]:
    """Each poll's records with their bytes copied afresh, as a fetch hands them over."""
    return [
        [(kind, bytes(bytearray(v))) for kind, v in records[i : i + POLL]]
        for i in range(0, len(records), POLL)
    ]


Fetched = list[ConsumerRecord[bytes, bytes]]


def _fetched(records: Records) -> list[tuple[Fetched, Fetched]]:
    """Each poll as the consumer hands it over: the requests' and the results' records."""
    polls: list[tuple[Fetched, Fetched]] = []
    offsets = {True: 0, False: 0}
    for poll in _polls(records):
        by_kind: dict[bool, Fetched] = {True: [], False: []}
        for is_request, value in poll:
            offset = offsets[is_request]
            offsets[is_request] += 1
            topic = "req" if is_request else "res"
            by_kind[is_request].append(
                ConsumerRecord(topic, 0, offset, 0, 0, b"k", value, None, 1, len(value), ())
            )
        polls.append((by_kind[True], by_kind[False]))
    return polls


def raw_in_process(records: Records) -> float:
    polls = _polls(records)
    started = time.process_time()
    for poll in polls:
        for is_request, value in poll:
            decode(value, RequestEnvelope if is_request else ShadowResult)
    return (time.process_time() - started) / (len(records) / 2) * 1e6


def comparator_in_process(records: Records) -> float:
    join = join_buffer(("cand",), 3_600_000, max_pending=len(records))
    builder = ComparisonBuilder(None, CompareSettings(candidates=("cand",)))
    windows, metrics, tracker = (
        WindowAggregator(3_600_000, 0, member="probe"),
        CompareMetrics(),
        OffsetTracker(),
    )
    parts = {
        "req": tracker.partition(TopicPartition("req", 0)),
        "res": tracker.partition(TopicPartition("res", 0)),
    }
    polls = _fetched(records)
    started = time.process_time()
    for requests, results in polls:
        outputs = []
        for topic, fetched in (("req", requests), ("res", results)):  # as Comparator._ingest does
            out, offsets, done, _bad = join.ingest(fetched, topic, 0, topic == "req")
            parts[topic].add_many(offsets)
            for offset in done:
                parts[topic].done(offset)
            outputs += out
        comparisons = builder.build(outputs)
        _encoded = [encode(c) for c in comparisons]
        windows.add_many(comparisons)
        metrics.observe(comparisons)
        tracker.done_refs([ref for item in outputs for ref in item.release])
    return (time.process_time() - started) / (len(records) / 2) * 1e6


async def main(n: int, rounds: int) -> None:
    tune_for_workers()
    tune_allocator()
    records = _records(n)
    settings = bench_settings("probe")
    kwargs = kafka_kwargs(settings)
    await ensure_topics(settings.topics, kwargs)
    pairs = await bc._prefill(settings, kwargs, n, 0)
    try:
        for _ in range(rounds):
            raw, cmp = raw_in_process(records), comparator_in_process(records)
            started = time.process_time()
            await bc._raw(settings, kwargs, n + pairs, pairs)
            raw_kafka = (time.process_time() - started) / pairs * 1e6
            started = time.process_time()
            await bc._comparator(settings, kwargs, pairs)
            cmp_kafka = (time.process_time() - started) / pairs * 1e6
            kafka_ratio = cmp_kafka / raw_kafka
            print(
                f"CPU µs per pair  in-process: raw {raw:.1f}, comparator {cmp:.1f} ({cmp / raw:.2f}×)"
                f"  via Kafka: raw {raw_kafka:.1f}, comparator {cmp_kafka:.1f} ({kafka_ratio:.2f}×)",
                flush=True,
            )
    finally:
        t = settings.topics
        await delete_topics(kwargs, [t.requests_topic, t.shadow_results_topic, t.compare_topic, t.dlq_topic])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
