"""deploy/docker: the image keeps its promises (no Docker engine here, so the files are read).

Multi-stage; the native extension built with the Rust toolchain from Cargo.lock; dependencies
installed from hashed locks that pin every dependency pyproject.toml declares for the image's
extras; a fixed non-root user; a HEALTHCHECK on the workers' port; nothing secret in the image's
environment; and a .dockerignore that lets in what the build copies and nothing else.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from shadowlane import health_probe

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy/docker/Dockerfile"
LOCK = ROOT / "deploy/docker/requirements.lock"
BUILD_LOCK = ROOT / "deploy/docker/build.lock"
BUILD_IN = ROOT / "deploy/docker/build-requirements.in"
IMAGE_EXTRAS = ("workers", "rollout")
# the image's interpreter: the locks are resolved for it, whatever machine runs `make lock`
IMAGE_ENV = {
    "python_version": "3.11",
    "python_full_version": "3.11.9",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
}
SECRET_WORDS = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE|CREDENTIAL|SIGNING_KEY", re.I)


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, rest) per instruction: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, rest = whole.partition(" ")
        out.append((keyword.upper(), " ".join(rest.split())))
    return out


def stages() -> list[Stage]:
    args: dict[str, str] = {}
    found: list[Stage] = []
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "ARG" and not found:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(found))
            found.append(Stage(name, base))
        else:
            found[-1].instructions.append((keyword, rest))
    return found


def stage(name: str) -> Stage:
    return next(s for s in stages() if s.name == name)


def test_the_image_is_built_in_stages_and_runs_on_slim_python() -> None:
    names = [s.name for s in stages()]
    assert names == ["rust", "build", "runtime"]
    runtime, build = stage("runtime"), stage("build")
    assert runtime.base == build.base  # the venv's interpreter path is the same in both
    assert re.fullmatch(r"python:3\.11-slim-\w+", runtime.base)
    assert re.fullmatch(r"rust:\d+\.\d+-slim-\w+", stage("rust").base)
    assert runtime.base.rsplit("-", 1)[1] == stage("rust").base.rsplit("-", 1)[1]  # one Debian release
    # the runtime stage takes only the venv from the build stage, and builds nothing itself
    assert runtime.args("COPY") == ["--from=build /opt/venv /opt/venv"]
    assert not any(re.search(r"cargo|rustc|maturin|gcc|apt-get", run) for run in runtime.args("RUN"))


def test_the_native_extension_is_built_from_the_cargo_lock() -> None:
    build = stage("build")
    assert "--from=rust /usr/local/cargo /usr/local/cargo" in build.args("COPY")
    assert "native native" in build.args("COPY")
    (maturin,) = [run for run in build.args("RUN") if "maturin build" in run]
    words = shlex.split(maturin)
    assert "--release" in words
    assert "--locked" in words  # native/Cargo.lock, not whatever crates.io has today
    assert words[words.index("--manifest-path") + 1] == "native/Cargo.toml"
    assert (ROOT / "native/Cargo.lock").is_file()
    # the wheel it writes is what the venv installs, and the runtime stage imports it
    assert any("pip install --no-deps --no-index /wheels/*.whl" in run for run in build.args("RUN"))
    assert any("import shadowlane_native" in run for run in stage("runtime").args("RUN"))


@pytest.mark.parametrize(("lock", "venv"), [(LOCK, "/opt/venv"), (BUILD_LOCK, "/opt/build")])
def test_dependencies_come_only_from_the_hashed_locks(lock: Path, venv: str) -> None:
    build = stage("build")
    relative = str(lock.relative_to(ROOT))
    assert f"{relative} {relative}" in build.args("COPY")
    installs = [run for run in build.args("RUN") if f"{venv}/bin/pip install" in run]
    from_lock = [run for run in installs if f"-r {relative}" in run]
    assert from_lock
    assert all("--require-hashes" in run for run in from_lock)
    # any other install into the venv is of the wheels built here, never from an index
    for run in installs:
        if run not in from_lock:
            assert "--no-index" in run
            assert "--no-deps" in run


def pins(lock: Path) -> dict[str, tuple[Version, list[str]]]:
    """{name: (version, hashes)} of a ``--generate-hashes`` lock."""
    text = lock.read_text().replace("\\\n", " ")
    out: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split()
        name, _, version = spec.partition("==")
        assert version, f"{lock.name}: {spec} is not pinned with =="
        hashes = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=sha256:")]
        out[canonicalize_name(name)] = (Version(version), hashes)
    return out


def declared() -> list[Requirement]:
    """What pyproject.toml declares for the image: the core and its extras, recursively."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    out, todo, seen = [Requirement(r) for r in project["dependencies"]], list(IMAGE_EXTRAS), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in extras[extra]:
            req = Requirement(line)
            if canonicalize_name(req.name) == "shadowlane":
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def test_every_declared_dependency_is_pinned_in_the_lock_within_its_specifier() -> None:
    locked = pins(LOCK)
    for req in declared():
        if req.marker is not None and not req.marker.evaluate(IMAGE_ENV):
            continue
        name = canonicalize_name(req.name)
        assert name in locked, f"{req} is not in {LOCK.name}: run `make lock`"
        version, _hashes = locked[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"{LOCK.name} pins {name}=={version}, outside {req.specifier}: run `make lock`"
        )
    assert "shadowlane-native" not in locked  # built from native/ in the image, never fetched


@pytest.mark.parametrize("lock", [LOCK, BUILD_LOCK])
def test_every_pin_has_hashes(lock: Path) -> None:
    locked = pins(lock)
    assert locked
    for name, (_version, hashes) in locked.items():
        assert hashes, f"{lock.name}: {name} has no --hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes)


def test_the_build_lock_pins_what_both_packages_build_with() -> None:
    locked = pins(BUILD_LOCK)
    wanted = [
        Requirement(r)
        for pyproject in (ROOT / "pyproject.toml", ROOT / "native/pyproject.toml")
        for r in tomllib.loads(pyproject.read_text())["build-system"]["requires"]
    ]
    listed = {
        str(Requirement(line.split("#", 1)[0]))
        for line in BUILD_IN.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    }
    assert listed == {str(r) for r in wanted}  # build-requirements.in is the build-system requires
    for req in wanted:
        version, _hashes = locked[canonicalize_name(req.name)]
        assert req.specifier.contains(version), f"build.lock pins {req.name}=={version}, outside {req}"


def test_make_lock_regenerates_both_locks_for_the_image_python() -> None:
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    recipe = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
    target = re.search(r"^LOCK_TARGET\s*:=(.*)$", makefile, re.M)
    assert target is not None
    flags = target.group(1)
    assert "--generate-hashes" in flags
    assert "--python-version 3.11" in flags
    assert "x86_64" in flags
    assert "pyproject.toml --extra workers --extra rollout" in " ".join(recipe.split())
    assert "-o deploy/docker/requirements.lock" in recipe
    assert "deploy/docker/build-requirements.in" in recipe
    assert "-o deploy/docker/build.lock" in recipe
    for lock in (LOCK, BUILD_LOCK):
        assert "make lock" in lock.read_text().splitlines()[1]


def test_the_image_runs_as_a_fixed_non_root_user() -> None:
    (user,) = stage("runtime").args("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) >= 1000  # numeric: Kubernetes' runAsNonRoot can verify it
    assert gid.isdigit()
    assert int(gid) != 0
    runs = " ".join(stage("runtime").args("RUN"))
    assert f"--uid {uid}" in runs
    # USER comes after every RUN: nothing after it runs as root
    keywords = [kw for kw, _ in stage("runtime").instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_the_healthcheck_asks_the_workers_health_endpoint() -> None:
    runtime = stage("runtime")
    (check,) = runtime.args("HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert re.search(r"--interval=\d+s", options)
    assert re.search(r"--timeout=\d+s", options)
    argv = yaml.safe_load(command)  # the exec form is a JSON array
    assert argv[:3] == ["python", "-m", "shadowlane.health_probe"]
    port = argv[argv.index("--port") + 1]
    assert runtime.args("EXPOSE") == [port]
    assert int(port) == health_probe.DEFAULT_PORT
    assert "--ready" not in argv  # Docker's health is liveness; readiness is for orchestrators
    assert runtime.args("ENTRYPOINT") == ['["shadowlane"]']


def test_nothing_secret_is_baked_into_the_image() -> None:
    for s in stages():
        for keyword, rest in s.instructions:
            if keyword in ("ENV", "ARG", "LABEL"):
                assert not SECRET_WORDS.search(rest), f"{s.name}: {keyword} {rest}"


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last match wins)."""
    result = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # the path or a parent
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pat[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(c, pat) for c in candidates)
        if hit:
            result = not negate
    return result


def test_dockerignore_lets_in_what_the_build_copies_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for s in stages():
        for rest in s.args("COPY"):
            if rest.startswith("--from="):
                continue
            *sources, _dest = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert not ignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
    kept_out = [
        ".venv/bin/python",
        ".git/config",
        "native/target/release/x.so",
        ".env",
        "build/lib/x.py",
        "tests/unit/test_x.py",
        ".state/kafka",
        "src/shadowlane/__pycache__/x.pyc",
    ]
    for path in kept_out:
        assert ignored(path, patterns), path
    assert not ignored("src/shadowlane/health.py", patterns)


def test_the_probe_imports_nothing_but_the_standard_library() -> None:
    source = Path(health_probe.__file__).read_text()
    imported = re.findall(r"^(?:from|import) ([\w.]+)", source, re.M)
    assert imported
    assert all(name.split(".")[0] in ("__future__", "argparse", "sys", "urllib") for name in imported)
