"""workers/: every runbook's example settings load into the one Settings object, and each variable
in them lands where it says (a misspelled one would be silently ignored by the environment)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from shadowlane.settings import load_settings

WORKERS = Path(__file__).resolve().parents[2] / "workers"
EXAMPLES = sorted(WORKERS.glob("*/*.env.example"))


def _variables(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def _expected(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def test_every_worker_has_a_runbook_and_example_settings() -> None:
    assert {p.parent.name for p in EXAMPLES} == {"shadow", "compare"}
    for worker in ("shadow", "compare"):
        assert (WORKERS / worker / "README.md").is_file()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_settings_load_and_land(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    variables = _variables(path)
    assert variables
    for key, text in variables.items():
        monkeypatch.setenv(key, text)
    settings = load_settings()
    for key, raw in variables.items():
        if key == "KAFKA_BOOTSTRAP_SERVERS":
            assert settings.bootstrap_servers == raw
            continue
        section, _, name = key.removeprefix("SHADOWLANE_").lower().partition("__")
        value: Any = getattr(getattr(settings, section), name)
        if isinstance(value, dict):  # secrets (signing keys) land as SecretStr
            value = {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in value.items()}
        expected = _expected(raw)
        assert (list(value) if isinstance(value, tuple) else value) == expected, key
