"""Loads flag manifests (YAML or JSON) into :class:`~shadowlane.contracts.flag_manifest.FlagManifest`.

Every problem in a document is reported at once, one line each, as ``<field path>: <problem>``
(``flags.grammar_b.gates.delta_s.p95_max: must be ≤ 1 (got 3)``), so an operator fixes a manifest
in one pass. YAML syntax errors and duplicate keys (which plain YAML silently resolves to the
last one) are reported with their line and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shadowlane.contracts.flag_manifest import FlagManifest, FlagSpec, Traffic
from shadowlane.contracts.problems import validation_problems


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


def expected_pins(manifest: FlagManifest, flag: str, candidate: str) -> dict[str, str]:
    """The pins a candidate is expected to serve with under ``manifest``: the ``versions`` of
    ``flag`` when the manifest has it, else of the one flag whose candidate is ``candidate``.
    :class:`LookupError` when no flag or several match."""
    if flag in manifest.flags:
        return dict(manifest.flags[flag].versions)
    flags = [name for name in manifest.flags if manifest.candidate(name) == candidate]
    if len(flags) != 1:
        found = "no flag" if not flags else f"flags {', '.join(sorted(flags))}"
        raise LookupError(f"{found} for candidate {candidate!r}; name one with --flag")
    return dict(manifest.flags[flags[0]].versions)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
    detail = f"{problem} ({context})" if context and context != problem else problem
    return f"yaml syntax, {where}: {detail}"


def seed_spec(candidate: str | None = None) -> FlagSpec:
    """A flag with the seed's gates and aborts (what ``deploy/flags/feature_flags.yml`` spells out),
    for ``candidate``: what a shadow phase is judged by when no manifest is given."""
    return FlagSpec(traffic=Traffic(baseline_weight=0.95, canary_weight=0.05), candidate=candidate)
