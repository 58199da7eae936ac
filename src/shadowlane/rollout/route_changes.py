"""Route-config changes a control command publishes: a new rule first in a flag's route config.

``shadow-on`` puts a shadow rule for one endpoint (serve PROD, mirror a ratio of requests to
SHADOW) first; ``shadow-off`` puts an ``off`` rule there. Rules the new rule's scope covers are
dropped (they could never match again); other rules and the flag's settings stay. Pure functions:
the CLI reads the current config, calls one of these, signs and publishes the result.
"""

from __future__ import annotations

from shadowlane.contracts.route_config import RouteConfig, RouteRule, RouteScope


def merge_rule(current: RouteConfig | None, *, flag: str, baseline: str, rule: RouteRule) -> RouteConfig:
    """``current`` with ``rule`` first; rules it covers are dropped, the flag's settings kept."""
    if current is None:
        return RouteConfig(flag=flag, epoch=0, salt=flag, baseline=baseline, rules=(rule,))
    kept = [r for r in current.rules if not rule.scope.covers(r.scope)]
    data = current.model_dump(mode="json")
    data["rules"] = [r.model_dump(mode="json") for r in (rule, *kept)]
    return RouteConfig.model_validate(data)  # validated again: the merged rules must hold together


def shadow_on_config(
    current: RouteConfig | None, *, flag: str, endpoint: str, prod: str, shadow: str, ratio: float
) -> RouteConfig:
    rule = RouteRule(
        scope=RouteScope(endpoints=(endpoint,)),
        strategy="shadow",
        baseline=prod,
        candidate=shadow,
        shadow_ratio=ratio,
    )
    return merge_rule(current, flag=flag, baseline=prod, rule=rule)


def shadow_off_config(current: RouteConfig | None, *, flag: str, endpoint: str, prod: str) -> RouteConfig:
    rule = RouteRule(scope=RouteScope(endpoints=(endpoint,)), strategy="off")
    return merge_rule(current, flag=flag, baseline=prod, rule=rule)
