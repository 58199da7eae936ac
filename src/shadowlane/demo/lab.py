"""The demo's lab control: the signed route configs of the Shadow + A/B lab, and its report.

The lab runs in two phases on one flag (``grammar_b``): first a ``shadow`` rule (prod's model A
serves everyone, every request is mirrored to model B), then an ``ab`` rule (half the requests,
sticky by request id, are served by model B). Each phase starts by publishing a signed
``RouteConfig`` on the control topic through :class:`ControlPublisher` and waiting until the
in-process :class:`ControlWatcher` (which the prod service routes with and the hook's gate reads)
has it in force, exactly as an operator's ``shadowlane shadow-on`` would. The signing key is
made up per run and handed to the child workers through their environment only.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from shadowlane.contracts.route_config import RouteConfig, RouteRule, RouteScope
from shadowlane.report.model import Accuracy, Report
from shadowlane.rollout.control_plane import ControlWatcher
from shadowlane.rollout.control_publisher import ControlPublisher
from shadowlane.settings import Settings
from shadowlane.stats.proportions import ProportionCI

FLAG = "grammar_b"
ENDPOINT = "/v1/chat/completions"
KEY_ID = "demo"


def with_demo_key(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """Settings holding a fresh per-run signing key, and the env that gives it to child workers."""
    key = secrets.token_hex(32)
    control = settings.control.model_copy(
        update={"signing_keys": {KEY_ID: SecretStr(key)}, "active_key_id": KEY_ID}
    )
    env = {"SHADOWLANE_CONTROL__SIGNING_KEYS": orjson.dumps({KEY_ID: key}).decode()}
    return settings.model_copy(update={"control": control}), env


def phase_config(strategy: str, *, epoch: int = 1) -> RouteConfig:
    scope = RouteScope(endpoints=(ENDPOINT,))
    if strategy == "shadow":
        rule = RouteRule(scope=scope, strategy="shadow", candidate="grammar-b", shadow_ratio=1.0)
    else:
        rule = RouteRule(scope=scope, strategy="ab", candidate="grammar-b", candidate_weight=0.5)
    return RouteConfig(flag=FLAG, epoch=epoch, salt=f"{FLAG}-lab", baseline="grammar-a", rules=(rule,))


class LabControl:
    """Publishes the lab's phases and waits until they are in force."""

    def __init__(self, settings: Settings, kwargs: dict[str, Any]) -> None:
        self.watcher = ControlWatcher(settings, kwargs, observer="demo-prod")
        self._producer = AIOKafkaProducer(**kwargs, acks="all")
        self._publisher = ControlPublisher(settings, self._producer, self.watcher)

    async def start(self) -> None:
        await self._producer.start()
        await self.watcher.start()
        await self.watcher.wait_ready(30.0)

    async def stop(self) -> None:
        await self.watcher.stop()
        await self._producer.stop()

    def route(self) -> RouteConfig | None:
        return self.watcher.route_config(FLAG)

    def _in_force(self, version: int) -> bool:
        current = self.watcher.record("route_config", FLAG)
        return current is not None and current.version >= version

    async def enter(self, strategy: str, timeout_s: float = 10.0) -> RouteConfig:
        config = phase_config(strategy)
        record = await self._publisher.publish(
            "route_config", FLAG, config, who="shadowlane demo", why=f"lab phase: {strategy}"
        )
        async with asyncio.timeout(timeout_s):
            while not self._in_force(record.version):  # noqa: ASYNC110 (the watcher's own poll)
                await asyncio.sleep(0.02)
        return config


def _rate(ci: ProportionCI | None) -> float | None:
    return None if ci is None else round(ci.estimate, 4)


def _accuracy(acc: Accuracy) -> dict[str, Any]:
    test = acc.test
    return {
        "baseline": _rate(acc.baseline),
        "candidate": _rate(acc.candidate),
        "diff": None if test is None else round(test.diff, 4),
        "diff_ci95": None if test is None else [round(test.ci_low, 4), round(test.ci_high, 4)],
        "p_value": None if test is None else round(test.p_value, 4),
    }


def lab_summary(report: Report, out: Path) -> dict[str, Any]:
    """The lab report's headline figures for the demo's summary (the files hold the rest)."""
    summary: dict[str, Any] = {
        "report": str(out / "report.html"),
        "recommendation": report.recommendation.decision,
        "reasons": list(report.recommendation.reasons),
    }
    if report.shadow is not None:
        s = report.shadow
        summary["shadow"] = {
            "joined": s.joined,
            "accuracy": _accuracy(s.accuracy),
            "improved": s.disagreements.improved,
            "regressed": s.disagreements.regressed,
            "mcnemar_p": s.disagreements.mcnemar_p,
        }
    if report.ab is not None:
        ab = report.ab
        summary["ab"] = {
            "served": dict(ab.counts),
            "srm_p": round(ab.srm.p_value, 4),
            "srm_mismatch": ab.srm.mismatch,
            "accuracy": _accuracy(ab.accuracy),
            "latency_mwu_p": None if ab.latency.mwu is None else round(ab.latency.mwu.p_value, 4),
        }
    return summary
