"""Shared benchmark machinery: A/B rounds alternated in one run, medians, ratios, one result row.

Machines here are shared and noisy, so no benchmark reports an absolute number alone: each
measures a baseline (raw aiokafka, bare onnxruntime, the app without the hook, ...) and the
Shadowlane variant in alternating rounds (A B A B ...), takes the median of each, and reports the
ratio against a target. Nothing here asserts; ``run.py`` prints the table and the JSON lines.
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shadowlane.kafka.bootstrap import client_kwargs, configured_bootstrap
from shadowlane.kafka.local import LocalKafka
from shadowlane.settings import ControlSettings, Settings, TopicSettings, load_settings


@dataclass
class BenchResult:
    """One row of the table: the variants' medians, their ratio, the target and the verdict."""

    name: str
    unit: str
    baseline_name: str
    baseline: float
    variant_name: str
    variant: float
    ratio: float
    target: str
    passed: bool
    higher_is_better: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "variants": {self.baseline_name: self.baseline, self.variant_name: self.variant},
            "ratio": round(self.ratio, 4),
            "target": self.target,
            "pass": self.passed,
            **self.extra,
        }


def at_least(
    name: str,
    unit: str,
    baseline: tuple[str, float],
    variant: tuple[str, float],
    min_ratio: float,
    extra: dict[str, Any] | None = None,
    target: str | None = None,
    digits: int | None = None,
) -> BenchResult:
    """A higher-is-better result whose target is ``variant / baseline >= min_ratio``; the two rates
    are shown to ``digits`` decimals (None: whole numbers)."""
    ratio = variant[1] / baseline[1]
    return BenchResult(
        name=name,
        unit=unit,
        baseline_name=baseline[0],
        baseline=round(baseline[1], digits),
        variant_name=variant[0],
        variant=round(variant[1], digits),
        ratio=ratio,
        target=target or f"≥ {min_ratio:.2f}×",
        passed=ratio >= min_ratio,
        extra=extra or {},
    )


async def alternate(
    baseline: Callable[[], Awaitable[float]], variant: Callable[[], Awaitable[float]], rounds: int
) -> tuple[float, float, list[float], list[float]]:
    """Run A B A B ... ``rounds`` times each; return the medians and all samples."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a.append(await baseline())
        b.append(await variant())
    return statistics.median(a), statistics.median(b), a, b


def bench_settings(tag: str, partitions: int = 6) -> Settings:
    """Settings with a fresh topic prefix so runs never read each other's data, and no control
    plane (a worker without signing keys refuses to start with it; no benchmark follows a kill
    switch)."""
    base = load_settings()
    prefix = f"bench-{tag}-{uuid.uuid4().hex[:8]}."
    topics = TopicSettings(prefix=prefix, partitions=partitions)
    return base.model_copy(update={"topics": topics, "control": ControlSettings(enabled=False)})


def kafka_kwargs(settings: Settings) -> dict[str, Any]:
    """The configured cluster's client kwargs, else the local broker's (started when it is not running)."""
    bootstrap = configured_bootstrap(settings) or LocalKafka.from_settings(settings).start()
    return client_kwargs(settings, bootstrap)


async def create_topic(kwargs: dict[str, Any], name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(**kwargs)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def delete_topics(kwargs: dict[str, Any], names: list[str]) -> None:
    admin = AIOKafkaAdminClient(**kwargs)
    await admin.start()
    try:
        await admin.delete_topics(names)
    except Exception:  # cleanup is best effort; a leftover bench topic is harmless
        pass
    finally:
        await admin.close()
