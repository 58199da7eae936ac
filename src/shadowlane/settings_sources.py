"""Where settings come from, which source wins, and where a bad value was set.

Three sources, each read into values nested like the settings model (a :class:`Layer`), and
merged lowest first: the config file (YAML or TOML), then the environment, then explicit
overrides. A higher source replaces a value of a lower one whole (a map or a list is not merged
key by key); sections are merged field by field. The environment is read by pydantic-settings'
own ``EnvSettingsSource`` (nesting with ``__``, JSON for lists and maps, aliases).

Every problem is one line that says where the value was set: an unknown name (with the closest
real ones), a value that is not valid JSON, a value that fails validation. Secrets are never shown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource
from pydantic_settings.exceptions import SettingsError

from shadowlane.contracts.problems import problem_line
from shadowlane.errors import ConfigError
from shadowlane.settings_names import (
    NOT_FILE_KEYS,
    KeyPath,
    env_aliases,
    env_resolution,
    is_complex,
    is_secret,
    known_keys,
    model_of,
    resolve,
    unknown_variables,
)

CONFIG_VARIABLE = "SHADOWLANE_CONFIG"
"""The environment's way to name the config file (``--config`` wins over it)."""

YAML_SUFFIXES = (".yaml", ".yml")
TOML_SUFFIXES = (".toml",)


@dataclass(frozen=True, slots=True)
class Layer:
    """The values one source gives, nested like the settings model."""

    values: dict[str, Any]
    where: str
    """How problems name the source: ``config file /etc/shadowlane.yaml``, ``the environment``."""
    variables: dict[str, KeyPath] = field(default_factory=dict)
    """For the environment: each variable and the path it sets."""

    def covers(self, loc: KeyPath) -> bool:
        """Whether this source set ``loc``, something above it, or something below it."""
        if self.variables:
            return any(_related(path, loc) for path in self.variables.values())
        node: Any = self.values
        for part in loc:
            if not isinstance(node, Mapping):
                return True
            if part not in node:
                return False
            node = node[part]
        return True

    def setter(self, loc: KeyPath) -> str:
        """``set by SHADOWLANE_SHADOW__RATE_CAP`` / ``set in config file …`` for a value at ``loc``."""
        names = sorted(name for name, path in self.variables.items() if _related(path, loc))
        if names:
            return f"set by {', '.join(names[:3])}{' …' if len(names) > 3 else ''}"
        return f"set in {self.where}" if self.where.startswith("config file") else f"set by {self.where}"


def _related(path: KeyPath, loc: KeyPath) -> bool:
    """One of the two paths starts the other."""
    shorter = min(len(path), len(loc))
    return path[:shorter] == loc[:shorter]


class _Hidden:
    """Stands for a secret's value in a message."""

    def __repr__(self) -> str:
        return "a secret, not shown"


def by_field_name(root: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level values keyed by field name, whichever alias they came under
    (``KAFKA_BOOTSTRAP_SERVERS`` -> ``bootstrap_servers``)."""
    out = dict(values)
    for name, info in root.model_fields.items():
        for alias in env_aliases(info):
            for key in [k for k in out if k.upper() == alias.upper()]:
                out.setdefault(name, out.pop(key))
    return out


def read_config_file(path: Path, named_by: str) -> dict[str, Any]:
    """The file's contents as nested values; a file that cannot be read or parsed is a
    :class:`ConfigError` that names it (``named_by``: how the file was chosen)."""
    where = f"config file {path} ({named_by})"
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES + TOML_SUFFIXES:
        kind = suffix or "(no suffix)"
        raise ConfigError(f"{where}: unknown kind of file {kind!r}; use .yaml, .yml or .toml")
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror or exc})") from exc
    try:
        data = _parse_yaml(text) if suffix in YAML_SUFFIXES else _parse_toml(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if data is None:  # an empty YAML file
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of sections (shadow: …, kafka: …)")
    return data


def _parse_yaml(text: bytes) -> Any:
    try:
        import yaml
    except ImportError as exc:  # a core install: PyYAML comes with the extras
        raise ValueError(
            "reading YAML needs PyYAML (pip install pyyaml, or 'shadowlane[workers]'); or write it as TOML"
        ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ValueError(f"not valid YAML ({at}{exc.problem})") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML ({' '.join(str(exc).split())})") from exc


def _parse_toml(text: bytes) -> Any:
    import tomllib

    try:
        return tomllib.loads(text.decode())
    except UnicodeDecodeError as exc:
        raise ValueError("not valid TOML (not UTF-8 text)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML ({exc})") from exc


def file_layer(root: type[BaseModel], path: Path, named_by: str) -> tuple[Layer, list[str]]:
    """The config file's values, and one problem line per key that is not a setting."""
    where = f"config file {path}"
    data, problems = known_keys(root, read_config_file(path, named_by), where)
    for key in [k for k in data if k in NOT_FILE_KEYS]:
        problems.append(f"{where}: {key}: not a key of a config file; {NOT_FILE_KEYS[key]}")
        del data[key]
    return Layer(data, where), problems


def env_layer(root: type[BaseSettings]) -> tuple[Layer, list[str]]:
    """The process environment's values, and one problem line per ``SHADOWLANE_*`` variable that is not a
    setting or whose list or map is not JSON."""
    environ = dict(os.environ)
    problems = unknown_variables(root, environ)
    variables: dict[str, KeyPath] = {}
    for name, raw in sorted(environ.items()):
        found = env_resolution(root, name)
        if found is None or not found.ok or found.path == ("config_file",):
            continue
        variables[name] = found.path
        if is_complex(found.target) and raw:
            try:
                json.loads(raw)
            except ValueError:
                # a section's text may hold its secrets: only a plain field's value is shown
                hidden = model_of(found.target) is not None or is_secret(found.target)
                shown = "" if hidden else f" (got {raw[:60]!r})"
                problems.append(
                    f"{name}: {'.'.join(found.path)}: must be JSON in the environment, e.g. "
                    f'\'["a", "b"]\' for a list or \'{{"key": "value"}}\' for a mapping{shown}'
                )
    if problems:
        return Layer({}, "the environment", variables), problems
    try:
        values = EnvSettingsSource(root)()
    except SettingsError as exc:  # what the checks above did not foresee
        return Layer({}, "the environment", variables), [f"the environment: {exc}"]
    values = by_field_name(root, values)
    values.pop("config_file", None)
    return Layer(values, "the environment", variables), []


def config_file_choice(config_file: str | Path | None, environ: Mapping[str, str]) -> tuple[Path, str] | None:
    """The config file to read and what chose it: the argument (``--config``), else
    ``$SHADOWLANE_CONFIG``, else none."""
    if config_file is not None and str(config_file):
        return Path(config_file).expanduser().absolute(), "--config"
    named = next((v for k, v in environ.items() if k.upper() == CONFIG_VARIABLE), "")
    return (Path(named).expanduser().absolute(), CONFIG_VARIABLE) if named else None


def merge(model: type[BaseModel], low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """``high`` over ``low``: sections merge field by field, any other value is replaced whole."""
    out = dict(low)
    for key, value in high.items():
        info = model.model_fields.get(key)
        inner = model_of(info.annotation) if info is not None else None
        below = out.get(key)
        if inner is not None and isinstance(value, Mapping) and isinstance(below, Mapping):
            out[key] = merge(inner, below, value)
        else:
            out[key] = value
    return out


def validation_problems(root: type[BaseModel], exc: ValidationError, layers: list[Layer]) -> list[str]:
    """One line per pydantic error: the field, what is wrong with it, and which source set it
    (``layers`` highest first). A secret's value is never shown."""
    lines = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"] if not isinstance(part, int))
        found = resolve(root, loc, "file") if loc else None
        shown: ErrorDetails = err
        if found is not None and found.ok and is_secret(found.target):
            shown = {**err, "input": _Hidden()}
        at = loc[:-1] if err["type"] == "missing" else loc  # a missing field: whoever set its parent
        setters = [layer for layer in layers if at and layer.covers(at)]
        if found is None or not found.ok or model_of(found.target) is None:
            setters = setters[:1]  # a value: the source that won; a section: every source in it
        where = ", and ".join(layer.setter(at) for layer in setters)
        lines.append(f"{problem_line(shown, root)}{'; ' + where if where else ''}")
    return lines
