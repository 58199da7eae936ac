"""Loads flag manifests (YAML or JSON) into :class:`~shadowlane.contracts.flag_manifest.FlagManifest`.

Every problem in a document is reported at once, one line each, as ``<field path>: <problem>``
(``flags.grammar_b.gates.delta_s.p95_max: must be ≤ 1 (got 3)``), so an operator fixes a manifest
in one pass. YAML syntax errors and duplicate keys (which plain YAML silently resolves to the
last one) are reported with their line and column.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shadowlane.contracts.flag_manifest import FlagManifest


class ManifestError(ValueError):
    """A manifest that cannot be used; ``problems`` holds one ``path: problem`` line each."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid flag manifest {source}: {count} problem{'s' * (count != 1)}\n{lines}")


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first defined on line {first})", key_node.start_mark
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def load_manifest(source: str | Path) -> FlagManifest:
    """Parse and validate a manifest: a :class:`~pathlib.Path` is read as a file, a ``str`` is the
    document itself (YAML, or JSON, which YAML reads too). Raises :class:`ManifestError`."""
    if isinstance(source, Path):
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(str(source), [f"cannot read the file: {exc}"]) from None
        return parse_manifest(text, str(source))
    return parse_manifest(source)


def parse_manifest(text: str, source: str = "<string>") -> FlagManifest:
    """Validate manifest ``text`` (YAML or JSON); ``source`` names it in errors."""
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ManifestError(source, [_yaml_problem(exc)]) from None
    return manifest_from_obj(document, source)


def manifest_from_obj(document: object, source: str = "<object>") -> FlagManifest:
    """Validate an already parsed document (a mapping with a ``flags`` key)."""
    if document is None:
        raise ManifestError(source, ["manifest: the document is empty (expected a mapping with 'flags')"])
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise ManifestError(source, [f"manifest: must be a mapping with a 'flags' key (got a {kind})"])
    try:
        return FlagManifest.model_validate(document)
    except ValidationError as exc:
        raise ManifestError(source, validation_problems(exc, FlagManifest)) from None


def validation_problems(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """One ``path: problem`` line per pydantic error of a ``root`` document."""
    problems = []
    for err in exc.errors():
        loc = err["loc"]
        if loc and loc[-1] == "[key]":  # a mapping key failed its constraints: name the key
            problems.append(f"{_path(loc[:-1])}: the name {_problem(err, root)}")
        else:
            problems.append(f"{_path(loc)}: {_problem(err, root)}")
    return problems


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
    detail = f"{problem} ({context})" if context and context != problem else problem
    return f"yaml syntax, {where}: {detail}"


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
