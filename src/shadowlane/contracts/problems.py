"""Pydantic validation errors as one ``<field path>: <problem>`` line each, for people to act on.

``flags.grammar_b.gates.delta_s.p95_max: must be ≤ 1 (got 3)``; an unknown field names the allowed
ones and the closest match. Flag manifests (:mod:`shadowlane.rollout.manifest`) and signed control
payloads (:mod:`shadowlane.rollout.signing`) report their problems through :func:`validation_problems`,
the settings (:mod:`shadowlane.settings_sources`) through :func:`problem_line`.
"""

from __future__ import annotations

import difflib
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails


def validation_problems(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """One ``path: problem`` line per pydantic error of a ``root`` document."""
    return [problem_line(err, root) for err in exc.errors()]


def problem_line(err: ErrorDetails, root: type[BaseModel]) -> str:
    """The ``path: problem`` line of one pydantic error of a ``root`` document."""
    loc = err["loc"]
    if loc and loc[-1] == "[key]":  # a mapping key failed its constraints: name the key
        return f"{_path(loc[:-1])}: the name {_problem(err, root)}"
    return f"{_path(loc)}: {_problem(err, root)}"


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "manifest"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _problem(err: ErrorDetails, root: type[BaseModel]) -> str:
    kind, ctx, got = err["type"], err.get("ctx") or {}, _show(err.get("input"))
    bounds = {"less_than_equal": "≤", "greater_than_equal": "≥", "less_than": "<", "greater_than": ">"}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"must be {bounds[kind]} {_num(limit)} (got {got})"
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return _unknown_field(err["loc"], root)
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')} (got {got})"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    simple = {
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "finite_number": "must be a finite number",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be a whole number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "string_type": "must be a string (quote it in YAML)",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "tuple_type": "must be a list",
        "list_type": "must be a list",
    }
    if kind in simple:
        return f"{simple[kind]} (got {got})"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern', '?')} (got {got})"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length', '?')} characters"
    if kind == "too_short":
        least = ctx.get("min_length", "?")
        return f"must have at least {least} entr{'y' if least == 1 else 'ies'}"
    message = err["msg"]
    return f"{message[:1].lower()}{message[1:]} (got {got})"


def _unknown_field(loc: tuple[int | str, ...], root: type[BaseModel]) -> str:
    allowed = _fields_at(root, loc[:-1])
    if not allowed:
        return "unknown field"
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown field ({hint}allowed: {', '.join(allowed)})"


def _fields_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model found at ``loc`` under ``root`` ([] if not a model)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap_optional(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(part))
            if info is None:
                return []
            tp = info.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is tuple:
            tp = get_args(tp)[0]
        else:
            return []
    tp = _unwrap_optional(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _unwrap_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp
