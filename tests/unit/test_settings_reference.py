"""docs/settings-reference.md is what the settings model renders (regenerate: make docs-settings),
and the rendering shows every field with its variable, key, type, bounds, default and meaning."""

from __future__ import annotations

from pathlib import Path

from shadowlane.settings import Settings
from shadowlane.settings_names import NOT_FILE_KEYS, env_name, leaves
from shadowlane.settings_reference import OUTPUT, render_reference

ROOT = Path(__file__).resolve().parents[2]


def _rows(page: str) -> dict[str, str]:
    """Each table row by its first cell (the config-file key)."""
    return {
        line.split(" | ")[0].removeprefix("| "): line
        for line in page.splitlines()
        if line.startswith(("| `", "| (not in the file"))
    }


def test_the_checked_in_reference_is_up_to_date() -> None:
    checked_in = (ROOT / OUTPUT).read_text(encoding="utf-8")
    assert checked_in == render_reference(), f"{OUTPUT} is stale: run `make docs-settings`"


def test_every_field_is_in_the_reference_with_a_description() -> None:
    page = render_reference()
    rows = _rows(page)
    for path, info in leaves(Settings):
        assert info.description, f"{'.'.join(path)} has no description"
        reason = NOT_FILE_KEYS.get(path[0]) if len(path) == 1 else None
        row = rows[f"(not in the file: {reason})" if reason else f"`{'.'.join(path)}`"]
        assert f"`{env_name(Settings, path)}`" in row
        assert info.description.split()[0] in row
    assert "| (not in the file: it names the file) | `SHADOWLANE_CONFIG` |" in page
    assert "| (not in the file: use kafka.bootstrap_servers) | `KAFKA_BOOTSTRAP_SERVERS`," in page


def test_types_bounds_defaults_and_secrets_are_shown() -> None:
    rows = _rows(render_reference())
    assert "| number, > 0 | `50` |" in rows["`shadow.rate_cap`"]
    assert "| number, 0 to 1 | `1` |" in rows["`hook.sample_ratio`"]
    assert "| one of `auto`, `native`, `python` | `auto` |" in rows["`compare.native_path`"]
    assert "| integer or none, ≥ 1 | none |" in rows["`topics.replication_factor`"]
    assert "(JSON in the environment) | `[]` |" in rows["`hook.drop_fields`"]
    assert "`SHADOWLANE_SHADOW__PINS__<name>`" in rows["`shadow.pins`"]
    assert (
        "`KAFKA_BOOTSTRAP_SERVERS`, `SHADOWLANE_BOOTSTRAP_SERVERS`"
        in rows["(not in the file: use kafka.bootstrap_servers)"]
    )
    for secret in ("kafka.sasl_password", "shadow.candidate_api_key", "control.signing_keys"):
        assert "| **secret** " in rows[f"`{secret}`"], secret
    assert "**secret**" not in rows["`kafka.sasl_username`"]
    assert r"`\[(?:doc\|src\|cite):([^\]\s]+)\]`" in rows["`compare.citation_pattern`"]  # | escaped
