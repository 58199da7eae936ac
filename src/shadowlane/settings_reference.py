"""``docs/settings-reference.md``, rendered from the settings model: every field of every section
with its config-file key, environment variable, type and bounds, default and description.

Regenerate with ``make docs-settings`` (``python -m shadowlane.settings_reference >
docs/settings-reference.md``); a unit test fails when the checked-in file differs.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from shadowlane.settings import Settings
from shadowlane.settings_names import (
    NESTED,
    NOT_FILE_KEYS,
    env_aliases,
    env_name,
    is_complex,
    is_map,
    is_secret,
    leaves,
    map_values,
    model_of,
    unwrap_optional,
)

OUTPUT = "docs/settings-reference.md"

_KINDS: dict[Any, str] = {str: "text", int: "integer", float: "number", bool: "true/false", SecretStr: "text"}


def kind(annotation: Any) -> str:
    """A setting's type in words: ``number``, ``one of `a`, `b` ``, ``list of text``, …"""
    inner = unwrap_optional(annotation)
    optional = " or none" if inner is not annotation else ""
    if get_origin(inner) is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in get_args(inner)) + optional
    if is_map(inner):
        values = map_values(inner)
        model = model_of(values)
        shown = "{" + ", ".join(model.model_fields) + "}" if model is not None else kind(values)
        return f"map of name to {shown}" + optional
    if get_origin(inner) in (tuple, list):
        return f"list of {kind(get_args(inner)[0])}" + optional
    name = _KINDS.get(inner, getattr(inner, "__name__", str(inner)).lower())
    return name + optional


def bounds(info: FieldInfo) -> str:
    """``≥ 1``, ``> 0``, ``0 to 1``: the field's numeric constraints."""
    limits: dict[str, Any] = {}
    for item in info.metadata:
        for cls, key in ((Ge, "ge"), (Gt, "gt"), (Le, "le"), (Lt, "lt")):
            if isinstance(item, cls):
                limits[key] = getattr(item, key)
    low = ("ge", limits.get("ge")) if "ge" in limits else ("gt", limits.get("gt"))
    high = ("le", limits.get("le")) if "le" in limits else ("lt", limits.get("lt"))
    if low[0] == "ge" and low[1] is not None and high[0] == "le" and high[1] is not None:
        return f"{_num(low[1])} to {_num(high[1])}"
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    return ", ".join(f"{signs[k]} {_num(v)}" for k, v in (low, high) if v is not None)


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def default(info: FieldInfo) -> str:
    """The default as it would be written in a config file."""
    if info.default_factory is not None:
        made = info.default_factory()  # type: ignore[call-arg]
        return f"`{json.dumps(made)}`" if made in ({}, [], ()) else "see description"
    value = info.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return f"`{json.dumps(list(value), ensure_ascii=False)}`"
    return f"`{_num(value)}`"


def variables(path: tuple[str, ...], info: FieldInfo) -> str:
    """The environment variables that set a field (``…__<name>`` for one entry of a map)."""
    names = list(env_aliases(info)) if len(path) == 1 else [env_name(Settings, path)]
    if not names:
        names = [env_name(Settings, path)]
    shown = [f"`{n}`" for n in names]
    if is_map(info.annotation):
        shown.append(f"`{names[0]}{NESTED}<name>`")
    return ", ".join(shown)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def row(path: tuple[str, ...], info: FieldInfo) -> str:
    reason = NOT_FILE_KEYS.get(path[0]) if len(path) == 1 else None
    key = f"(not in the file: {reason})" if reason else f"`{'.'.join(path)}`"
    what = kind(info.annotation)
    limits = bounds(info)
    if limits:
        what += f", {limits}"
    if is_complex(info.annotation):
        what += " (JSON in the environment)"
    if is_secret(info.annotation):
        what = f"**secret** {what}"
    cells = (key, variables(path, info), what, default(info), info.description or "")
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(rows: list[str]) -> list[str]:
    return ["| key | environment | type | default | meaning |", "|---|---|---|---|---|", *rows, ""]


def render_reference() -> str:
    """The whole page."""
    lines = [
        "# Settings reference",
        "",
        "Generated from the settings model (`shadowlane.settings`) by `make docs-settings`; do not edit",
        "by hand. How the sources combine, config files and errors: [configuration.md](configuration.md).",
        "",
        "Each setting has a key in the config file (YAML or TOML, nested by section: `shadow.rate_cap` is",
        "`rate_cap` under `shadow`) and an environment variable. Lists and maps are JSON in the",
        "environment. Secrets are never printed.",
        "",
        "## Top level",
        "",
    ]
    top = [
        row((name,), info)
        for name, info in Settings.model_fields.items()
        if model_of(info.annotation) is None
    ]
    lines += _table(top)
    for name, info in Settings.model_fields.items():
        section = model_of(info.annotation)
        if section is None:
            continue
        lines += [f"## {name}", "", _summary(section), ""]
        lines += _table([row(path, field) for path, field in leaves(section, (name,))])
    return "\n".join(lines).rstrip() + "\n"


def _summary(section: type[BaseModel]) -> str:
    """The first paragraph of a section's docstring, on one line."""
    doc = (section.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.split()).replace("``", "`")


def main() -> None:
    sys.stdout.write(render_reference())


if __name__ == "__main__":
    main()
