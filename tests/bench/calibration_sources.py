"""The hand-written material of the ΔS calibration set, read and checked from its TOML files.

``tests/bench/data/delta_s_calibration_sources/`` holds what people wrote: prose scenarios
(claims in two wordings and a denial), answers with code (the code, the same code renamed or
reformatted, the code with its logic changed) and tool calls (arguments and a summary of the
result). This module turns them into typed, validated objects; :mod:`tests.bench.calibration_set`
assembles the pairs from them. Validation catches what would make a pair silently wrong: two
wordings that do not mention the same slots, a headline a ``different_fact`` pair could not change.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

SOURCES: Final = Path(__file__).parent / "data" / "delta_s_calibration_sources"

ArgValue = str | int | bool


def slots(template: str) -> set[str]:
    """The ``{names}`` a template fills."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True)
class Claim:
    """One statement in two wordings of the same meaning, and its denial ("" when neutral)."""

    a: str
    b: str
    deny: str


@dataclass(frozen=True)
class Style:
    """How an answer of one kind starts, ends and moves on to a second topic of the same area."""

    openers: tuple[str, ...]
    closers: tuple[str, ...]
    joins: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    """One prose answer: claims (headline first), slot bundles and extra values for fact swaps."""

    key: str
    group: str
    style: Style
    bundles: tuple[Mapping[str, str], ...]
    swaps: Mapping[str, tuple[str, ...]]
    claims: tuple[Claim, ...]

    def alternatives(self, slot: str, current: str) -> list[str]:
        """Values ``slot`` can change to in a ``different_fact`` pair (sorted, without ``current``)."""
        values = {bundle[slot] for bundle in self.bundles} | set(self.swaps.get(slot, ()))
        return sorted(values - {current})


@dataclass(frozen=True)
class CodeSample:
    """An answer with code: the code, its equivalent, and a changed-logic version."""

    key: str
    lang: str
    change: str
    intro: tuple[str, str]
    code: str
    same: str
    changed: str
    notes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Tool:
    """A tool call: each argument's possible values and a summary of the result in two wordings."""

    key: str
    name: str
    args: Mapping[str, tuple[ArgValue, ...]]
    summary: tuple[tuple[str, str], ...]

    @property
    def variable(self) -> list[str]:
        """The arguments a ``changed`` pair can change (those with two values or more)."""
        return [name for name, values in self.args.items() if len(values) > 1]


@dataclass(frozen=True)
class Sources:
    scenarios: tuple[Scenario, ...]
    code: tuple[CodeSample, ...]
    tools: tuple[Tool, ...]


def _load(name: str) -> dict[str, Any]:
    with (SOURCES / name).open("rb") as f:
        return tomllib.load(f)


def _pair(value: Any, where: str) -> tuple[str, str]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) and v for v in value)):
        raise ValueError(f"{where}: expected [wording A, wording B]")
    if value[0] == value[1]:
        raise ValueError(f"{where}: the two wordings are identical")
    return value[0], value[1]


def _claim(value: Any, where: str, known: set[str]) -> Claim:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
        raise ValueError(f"{where}: expected [wording A, wording B, denial or empty]")
    a, b = _pair(value[:2], where)
    if slots(a) != slots(b):
        raise ValueError(f"{where}: the wordings fill different slots: {slots(a)} vs {slots(b)}")
    unknown = (slots(a) | slots(value[2])) - known
    if unknown:
        raise ValueError(f"{where}: slots {sorted(unknown)} are in no bundle")
    return Claim(a, b, value[2])


def _scenarios(raw: dict[str, Any]) -> tuple[Scenario, ...]:
    styles = {
        name: Style(tuple(s["openers"]), tuple(s["closers"]), tuple(s["joins"]))
        for name, s in raw["styles"].items()
    }
    out: list[Scenario] = []
    for s in raw["scenario"]:
        bundles = tuple({k: str(v) for k, v in b.items()} for b in s["bundles"])
        known = set(bundles[0])
        if any(set(b) != known for b in bundles):
            raise ValueError(f"{s['key']}: every bundle must fill the same slots")
        claims = tuple(_claim(c, f"{s['key']} claim {i}", known) for i, c in enumerate(s["claims"]))
        if not slots(claims[0].a):
            raise ValueError(f"{s['key']}: the headline needs a slot, so a different_fact pair can change it")
        if not claims[0].deny:
            raise ValueError(f"{s['key']}: the headline needs a denial")
        swaps = {k: tuple(str(v) for v in vs) for k, vs in s.get("swaps", {}).items()}
        scenario = Scenario(s["key"], s["group"], styles[s["style"]], bundles, swaps, claims)
        fixed = sorted(k for k in known if not scenario.alternatives(k, bundles[0][k]))
        if fixed:
            raise ValueError(f"{s['key']}: slots {fixed} have one value; add a swap so a fact can change")
        out.append(scenario)
    return tuple(out)


def _code(raw: dict[str, Any]) -> tuple[CodeSample, ...]:
    out: list[CodeSample] = []
    for s in raw["sample"]:
        code, same, changed = (s[k].strip("\n") for k in ("code", "same", "changed"))
        if len({code, same, changed}) != 3:
            raise ValueError(f"{s['key']}: code, same and changed must all differ")
        notes = tuple(_pair(n, f"{s['key']} note {i}") for i, n in enumerate(s["notes"]))
        out.append(
            CodeSample(
                s["key"], s["lang"], s["change"], _pair(s["intro"], s["key"]), code, same, changed, notes
            )
        )
    return tuple(out)


def _tools(raw: dict[str, Any]) -> tuple[Tool, ...]:
    out: list[Tool] = []
    for t in raw["tool"]:
        args = {name: tuple(values) for name, values in t["args"].items()}
        summary = tuple(_pair(s, f"{t['key']} summary {i}") for i, s in enumerate(t["summary"]))
        tool = Tool(t["key"], t["name"], args, summary)
        for i, (a, b) in enumerate(summary):
            if slots(a) != slots(b) or not slots(a) <= set(args):
                raise ValueError(
                    f"{t['key']} summary {i}: slots must be arguments, the same in both wordings"
                )
        if not slots(summary[0][0]) & set(tool.variable):
            raise ValueError(f"{t['key']}: the first summary sentence must mention an argument that varies")
        out.append(tool)
    return tuple(out)


def load_sources() -> Sources:
    """Everything in the sources directory, validated."""
    return Sources(
        _scenarios(_load("prose.toml")),
        _code(_load("code.toml")),
        _tools(_load("tools.toml")),
    )
