"""Which names are settings: environment variables and config-file keys, mapped onto the model.

A setting is reached by a path of field names through the settings model: ``("shadow",
"rate_cap")`` is ``shadow.rate_cap`` in a config file and ``SHADOWLANE_SHADOW__RATE_CAP`` in the
environment. A map-valued field (``shadow.pins``, ``compare.prices``) takes any key below it
(``SHADOWLANE_SHADOW__PINS__TEMPERATURE``). A top-level field with a validation alias is reached in
the environment by its alias only (``SHADOWLANE_HOME``, ``KAFKA_BOOTSTRAP_SERVERS``).

A name that reaches no setting is an error, reported with the closest real names
(:func:`explain_unknown`).
Variables starting with ``SHADOWLANE_TEST_`` belong to the test suite and are never settings.
Nor are Kubernetes' service links (:data:`SERVICE_LINK`) that reach no setting: a Service named
``shadowlane-…`` in the namespace gives every container ``SHADOWLANE_…_SERVICE_HOST`` and the like.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel, SecretStr
from pydantic.fields import FieldInfo

PREFIX = "SHADOWLANE_"
NESTED = "__"
RESERVED_PREFIX = "SHADOWLANE_TEST_"
"""Variables of the test suite's own (never settings)."""

SERVICE_LINK = re.compile(
    r"SHADOWLANE(?:_[A-Z0-9]+)*"  # the Service's name, upper case, "-" as "_" (it has no "__")
    r"_(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9]+)*"  # the port's name, when it has one
    r"|PORT(?:_[1-9][0-9]{0,4}_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)"
)
"""The variables Kubernetes makes for a Service whose name starts with ``shadowlane``
(``enableServiceLinks``): ``<NAME>_SERVICE_HOST``, ``<NAME>_SERVICE_PORT[_<PORTNAME>]``,
``<NAME>_PORT``, ``<NAME>_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]``."""

Style = Literal["env", "file"]
KeyPath = tuple[str, ...]


def unwrap_optional(annotation: Any) -> Any:
    """``X | None`` as ``X``; anything else unchanged."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class an annotation holds (``X | None`` included), else None."""
    inner = unwrap_optional(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def is_map(annotation: Any) -> bool:
    return get_origin(unwrap_optional(annotation)) is dict


def map_values(annotation: Any) -> Any:
    """The value type of a ``dict[str, V]`` annotation."""
    return get_args(unwrap_optional(annotation))[1]


def is_complex(annotation: Any) -> bool:
    """A value the environment gives as JSON: a model, a map or a list."""
    inner = unwrap_optional(annotation)
    return model_of(inner) is not None or get_origin(inner) in (dict, tuple, list, set, frozenset)


def is_secret(annotation: Any, _seen: frozenset[type[BaseModel]] = frozenset()) -> bool:
    """Whether the annotation holds a ``SecretStr`` anywhere: ``dict[str, SecretStr]``, and a
    model (a section) with such a field at any depth."""
    if annotation is SecretStr:
        return True
    model = model_of(annotation)
    if model is not None and model not in _seen:
        return any(is_secret(f.annotation, _seen | {model}) for f in model.model_fields.values())
    return any(is_secret(a, _seen) for a in get_args(annotation))


NOT_FILE_KEYS = {
    "config_file": "it names the file",
    "bootstrap_servers": "use kafka.bootstrap_servers",
}
"""Top-level settings a config file may not set, and why. The top-level ``bootstrap_servers``
beats ``kafka.bootstrap_servers`` whatever set each, so from a file it would beat the
environment's ``SHADOWLANE_KAFKA__BOOTSTRAP_SERVERS``."""


def env_aliases(info: FieldInfo) -> tuple[str, ...]:
    """The environment names of a top-level field with a validation alias (else ())."""
    alias = info.validation_alias
    if isinstance(alias, str):
        return (alias,)
    if isinstance(alias, AliasChoices):
        return tuple(c for c in alias.choices if isinstance(c, str))
    return ()


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where ``path`` leads. ``ok``: a setting (or a key under a map); otherwise ``rest`` starts
    with the name ``owner`` (reached by ``owner_path``) has no field for."""

    path: KeyPath
    ok: bool
    owner: type[BaseModel]
    owner_path: KeyPath
    rest: KeyPath
    target: Any
    """The annotation the path ends at (a map's value type below a map), when ``ok``."""


def resolve(root: type[BaseModel], path: Sequence[str], style: Style) -> Resolution:
    """Follow ``path`` (lower-case field names, and keys below maps) through ``root``. In the
    environment a top-level field with an alias is not reached by its name."""
    path, owner, at = tuple(path), root, 0
    while True:
        info = owner.model_fields.get(path[at])
        if info is None or (style == "env" and owner is root and env_aliases(info)):
            return Resolution(path, False, owner, path[:at], path[at:], None)
        annotation, at = info.annotation, at + 1
        if at < len(path) and is_map(annotation):
            annotation, at = map_values(annotation), at + 1  # the key: any name
        inner = model_of(annotation)
        if at == len(path):
            return Resolution(path, True, owner, path[: at - 1], (), annotation)
        if inner is None:  # below a plain value: no setting is there
            return Resolution(path, False, owner, path[: at - 1], path[at - 1 :], None)
        owner = inner


def env_resolution(root: type[BaseModel], name: str) -> Resolution | None:
    """Where an environment variable (any case) leads, or None when it is not ours at all
    (no ``SHADOWLANE_`` prefix and no alias, the test suite's own, or a Kubernetes service link
    that reaches no setting)."""
    upper = name.upper()
    for field, info in root.model_fields.items():
        if upper in (a.upper() for a in env_aliases(info)):
            return Resolution((field,), True, root, (), (), info.annotation)
    if not upper.startswith(PREFIX) or upper.startswith(RESERVED_PREFIX):
        return None
    path = tuple(upper[len(PREFIX) :].lower().split(NESTED))
    if not all(path):  # an empty part: the prefix alone, four underscores, a trailing pair
        return Resolution(path, False, root, (), path, None)
    found = resolve(root, path, "env")
    return None if not found.ok and SERVICE_LINK.fullmatch(name) else found


def leaves(model: type[BaseModel], prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, FieldInfo]]:
    """Every field of ``model`` that holds a value (sections are walked into), in model order."""
    for name, info in model.model_fields.items():
        inner = model_of(info.annotation)
        if inner is not None:
            yield from leaves(inner, (*prefix, name))
        else:
            yield (*prefix, name), info


def env_name(root: type[BaseModel], path: KeyPath) -> str:
    """The environment variable of a setting: its first ``SHADOWLANE_`` alias at the top level,
    else ``SHADOWLANE_`` and the path in upper case joined by ``__``."""
    info = root.model_fields.get(path[0]) if len(path) == 1 else None
    if info is not None:
        aliases = env_aliases(info)
        if aliases:
            return next((a for a in aliases if a.startswith(PREFIX)), aliases[0])
    return PREFIX + NESTED.join(part.upper() for part in path)


def render(root: type[BaseModel], path: KeyPath, style: Style) -> str:
    return env_name(root, path) if style == "env" else ".".join(path)


def explain_unknown(root: type[BaseModel], found: Resolution, style: Style) -> str:
    """``unknown setting; did you mean …?`` for a path that reaches no setting."""
    if not all(found.path):
        return f"unknown setting (a part of it is empty: nothing before, after or between {NESTED!r})"
    close = suggestions(root, found, style)
    if close:
        return f"unknown setting; did you mean {' or '.join(close)}?"
    if found.owner is not root:
        fields = ", ".join(_fields(root, found, style))
        return f"unknown setting ({render(root, found.owner_path, style)} takes {fields})"
    return "unknown setting (docs/settings-reference.md lists every one)"


def _fields(root: type[BaseModel], found: Resolution, style: Style) -> list[str]:
    """The names the owner of an unknown name has (in the environment, the top level's aliased
    fields are reached by their aliases only)."""
    owner, env = found.owner, style == "env"
    return [f for f, i in owner.model_fields.items() if not (env and owner is root and env_aliases(i))]


def suggestions(root: type[BaseModel], found: Resolution, style: Style, n: int = 3) -> list[str]:
    """The closest real names to a path that reaches no setting, the first kind that finds any:
    the same field in another section (the section forgotten or wrong); a close name where it
    went wrong; a field anywhere with a close name; at the top level, a close name anywhere."""
    rest, glued = found.rest, "_".join(found.rest)
    all_leaves = [path for path, _ in leaves(root)]
    picked: list[KeyPath] = [p for p in all_leaves if p[-1] in (rest[-1], glued)]
    if not picked:
        fields = _fields(root, found, style)
        for word, tail in ((glued, ()), (rest[0], rest[1:])):
            close = difflib.get_close_matches(word, fields, n=2)
            close += [f for f in fields if len(word) >= 3 and f.startswith(word)]
            picked += [(*found.owner_path, m, *tail) for m in close]
        picked = [p for p in picked if resolve(root, p, style).ok]
    if not picked:
        tails = {p[-1] for p in all_leaves}
        near = set(difflib.get_close_matches(rest[-1], tails, n=2, cutoff=0.85))
        picked = [p for p in all_leaves if p[-1] in near]
    names = list(dict.fromkeys(render(root, p, style) for p in picked))
    if not names and found.owner is root:
        everything = {_bare(render(root, p, style)): render(root, p, style) for p in all_leaves}
        if style == "env":
            everything |= {_bare(a): a for info in root.model_fields.values() for a in env_aliases(info)}
        close_bare = difflib.get_close_matches(_bare(render(root, found.path, style)), everything, n=1)
        names = [everything[b] for b in close_bare]
    return names[:n]


def _bare(name: str) -> str:
    """A name without the prefix every variable shares (it would make any two look alike)."""
    return name.removeprefix(PREFIX)


def unknown_variables(root: type[BaseModel], environ: Mapping[str, str]) -> list[str]:
    """One ``NAME: unknown setting; …`` line per ``SHADOWLANE_*`` variable that is not a setting."""
    problems = []
    for name in sorted(environ):
        found = env_resolution(root, name)
        if found is not None and not found.ok:
            problems.append(f"{name}: {explain_unknown(root, found, 'env')}")
    return problems


def known_keys(
    root: type[BaseModel], data: Mapping[str, Any], where: str
) -> tuple[dict[str, Any], list[str]]:
    """A config file's values without the keys that are not settings, and one
    ``<where>: a.b: unknown setting; …`` line per such key."""
    problems: list[str] = []

    def keep(model: type[BaseModel], values: Mapping[Any, Any], at: KeyPath) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key, value in values.items():
            found = resolve(root, (*at, str(key)), "file")
            if not found.ok:
                problems.append(f"{where}: {'.'.join(found.path)}: {explain_unknown(root, found, 'file')}")
                continue
            annotation = model.model_fields[str(key)].annotation
            inner, deeper = model_of(annotation), is_map(annotation) and model_of(map_values(annotation))
            if inner is not None and isinstance(value, Mapping):
                value = keep(inner, value, found.path)
            elif deeper and isinstance(value, Mapping):
                value = {
                    item: keep(deeper, fields, (*found.path, str(item)))
                    if isinstance(fields, Mapping)
                    else fields
                    for item, fields in value.items()
                }
            kept[str(key)] = value
        return kept

    return keep(root, data, ()), problems
