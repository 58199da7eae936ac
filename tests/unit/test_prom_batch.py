"""BatchHistogram exposes exactly what prometheus_client's Histogram exposes for the same values."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from shadowlane.prom_batch import BatchHistogram


def _lines(registry: CollectorRegistry) -> list[str]:
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if not line.startswith("#") and "_created" not in line
    ]


@pytest.mark.parametrize(
    "buckets",
    [(0.0, 0.01, 0.1, 0.5, 1.0), (-0.3, -0.05, 0.0, 0.05, 0.3, 1.0), (0.005, 0.25, 2.5, 30.0, float("inf"))],
)
def test_same_exposition_as_histogram(buckets: tuple[float, ...]) -> None:
    rng = random.Random(3)
    reference, batched = CollectorRegistry(), CollectorRegistry()
    hist = Histogram("x", "doc", ("cand", "arm"), buckets=buckets, registry=reference)
    fast = BatchHistogram("x", "doc", ("cand", "arm"), buckets)
    batched.register(fast)
    for labels in (("a", "shadow"), ("b", "prod")):
        for _ in range(3):  # several polls per series
            values = [rng.choice((-0.05, 0.0, 0.1, 1.0, 40.0)) if rng.random() < 0.3 else rng.uniform(-1, 3)]
            values += [rng.uniform(-0.5, 2.0) for _ in range(rng.randrange(0, 200))]
            for v in values:
                hist.labels(*labels).observe(v)
            fast.observe_many(labels, values)
    assert _lines(batched) == _lines(reference)


def test_rejects_bad_buckets_and_labels() -> None:
    with pytest.raises(ValueError, match="increasing"):
        BatchHistogram("x", "doc", ("a",), (0.5, 0.1))
    with pytest.raises(ValueError, match="labels"):
        BatchHistogram("x", "doc", ("a",), (0.1,)).observe_many(("a", "b"), [1.0])
