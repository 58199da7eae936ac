"""Shared pieces of the differential tests that hold the native readers equal to Python's.

JSON value strategies (edge numbers past 64 bits, control characters, escapes, empty and
nested containers) and helpers that break a record at a dotted path.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

Json = Any
Change = tuple[str, Json, bool]  # (dotted path, value, delete instead of set)

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "default", "candidate", "baseline", "a\u0000b", "\u2028", "é", "😀", "\x7f"])
)
_edges = st.sampled_from(
    [-1, 0, 1, -0.0, -1e-9, 0.5, 2**63, 2**64, -(2**63) - 1, 1e308, "", "x" * 257, "a" * 32, {}, [], [{}]]
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
values = _edges | json_values


def set_path(obj: dict[str, Json], path: str, value: Json, delete: bool) -> None:
    """Set or delete the value at ``path`` (dotted; digits index lists); no-op if it is not there."""
    parts = path.split(".")
    target: Any = obj
    for depth, part in enumerate(parts):
        if isinstance(target, list) and part.isdigit() and int(part) < len(target):
            key: Any = int(part)
        elif isinstance(target, dict) and not part.isdigit():
            key = part
        else:
            return
        if depth < len(parts) - 1:
            target = target.get(key) if isinstance(target, dict) else target[key]
        elif not delete:
            # A copy: strategies such as ``sampled_from`` hand out the same container object on
            # every draw, and setting one inside itself would make the record circular.
            target[key] = copy.deepcopy(value)
        elif isinstance(target, list) or key in target:
            del target[key]


def changes_of(paths: Sequence[str]) -> st.SearchStrategy[list[Change]]:
    """Two to four changes at once, each at one of ``paths``."""
    return st.lists(st.tuples(st.sampled_from(paths), values, st.booleans()), min_size=2, max_size=4)


def broken(obj: dict[str, Json], changes: Sequence[Change], ascii_only: bool) -> bytes:
    """``obj`` with every change applied, as JSON bytes (``ascii_only``: non-ASCII escaped)."""
    for path, value, delete in changes:
        set_path(obj, path, value, delete)
    return json.dumps(obj, ensure_ascii=ascii_only).encode()


def ints_in(value: Json) -> list[int]:
    """Every integer inside a JSON value (booleans excluded)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in ints_in(v)]
    if isinstance(value, list):
        return [n for v in value for n in ints_in(v)]
    return []


def has_float(value: Json) -> bool:
    """True when a JSON value holds a float anywhere."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(has_float(v) for v in value)
    return False
