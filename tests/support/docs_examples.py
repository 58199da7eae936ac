"""Reads the code examples out of the docs pages and the README, so tests can run them as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```python\n(.*?)\n```", re.DOTALL)


def examples(page: str) -> dict[str, str]:
    """``{name: code}`` for every ``<!-- example: name -->`` python block of ``page`` (a path from
    the repository root, e.g. ``docs/hook.md`` or ``README.md``)."""
    return dict(_EXAMPLE.findall((ROOT / page).read_text(encoding="utf-8")))


def run_examples(page: str, *names: str) -> dict[str, Any]:
    """Execute the named examples in order, in one namespace, and return it."""
    found = examples(page)
    namespace: dict[str, Any] = {"__name__": f"docs_{Path(page).stem}"}
    for name in names:
        exec(compile(found[name], f"{page}:{name}", "exec"), namespace)
    return namespace
