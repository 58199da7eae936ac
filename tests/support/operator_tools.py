"""Where the tests find the operator tools `make tools` builds (helm, kubeconform, promtool,
docker-compose): the checkout's ``.venv/bin`` first, then ``PATH``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def operator_tool(name: str) -> str | None:
    """The executable ``name`` from ``.venv/bin`` (``make tools``), else from ``PATH``, else None."""
    local = ROOT / ".venv" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)
