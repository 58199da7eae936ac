"""Makefile: the native extension is rebuilt when any of its sources changes, at any depth under
``native/src`` (a stale binary would make the suite test old code)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("native/src/lib.rs", "native/src/join/mod.rs", "native/src/join/api.rs")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def _tree(tmp_path: Path) -> Path:
    """A scratch copy of the Makefile with the files its native rule names, every stamp fresh."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for rel in ("pyproject.toml", "native/Cargo.toml", "native/Cargo.lock", "native/pyproject.toml",
                "native/shadowlane_native.pyi", *SOURCES):  # fmt: skip
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    old = time.time() - 100
    for path in tmp_path.rglob("*"):
        os.utime(path, (old, old))
    (tmp_path / ".venv").mkdir()
    for stamp in (".installed-stamp", ".native-stamp"):
        (tmp_path / ".venv" / stamp).touch()
    return tmp_path


def _plan(tree: Path) -> str:
    done = subprocess.run(
        ["make", "-n", ".venv/.native-stamp"], cwd=tree, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.mark.parametrize("source", SOURCES)
def test_native_rebuilds_when_any_source_changes(tmp_path: Path, source: str) -> None:
    tree = _tree(tmp_path)
    assert "./native" not in _plan(tree)  # everything fresh: nothing to do
    (tree / source).touch()
    assert "pip install --quiet ./native" in _plan(tree)
