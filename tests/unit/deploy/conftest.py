"""Fixtures for deploy/helm: the real helm and kubeconform binaries, and kubeconform's schemas.

``make tools`` builds helm and kubeconform into ``.venv/bin``; a binary on ``PATH`` does as well.
Without one the tests that need it are skipped, saying which. The schemas are generated once per
session by ``deploy/tools/kube_schemas.py`` from the pinned Go modules (so ``go`` is needed too).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.operator_tools import operator_tool

ROOT = Path(__file__).resolve().parents[3]
KUBE_SCHEMAS_SCRIPT = ROOT / "deploy/tools/kube_schemas.py"


@pytest.fixture(scope="session")
def helm() -> str:
    path = operator_tool("helm")
    if path is None:
        pytest.skip("helm is not installed (`make tools` builds it into .venv/bin)")
    return path


@pytest.fixture(scope="session")
def kubeconform() -> str:
    path = operator_tool("kubeconform")
    if path is None:
        pytest.skip("kubeconform is not installed (`make tools` builds it into .venv/bin)")
    return path


@pytest.fixture(scope="session")
def kube_schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubeconform's schema folder, generated from the pinned modules (``make kube-schemas``)."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed: the schemas come from Go modules (`go mod download`)")
    out = tmp_path_factory.mktemp("kube-schemas")
    subprocess.run(
        [sys.executable, str(KUBE_SCHEMAS_SCRIPT), str(out)], check=True, capture_output=True, timeout=300
    )
    return out
