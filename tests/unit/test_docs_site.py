"""The docs site and the README: every page is in the nav of ``mkdocs.yml`` and every nav entry
exists; every relative link of the README (rendered by GitHub, not by MkDocs) reaches a file and,
with GitHub's anchor rule, a heading; the README stays short; no page keeps a run-by-run log; the
quickstart is the same on the README and on the site; and ``mkdocs build --strict`` passes, which
checks the links and anchors between pages."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.docs_examples import examples
from tests.support.quickstart import blocks, steps

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_BYTES = 12_000
NOT_IN_NAV: frozenset[str] = frozenset()  # pages built but deliberately left out of the nav

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\n]|\][^(])*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)
# run-by-run history: dated run headings, "run 3" / "stop 12" / "round 2" labels, dates in prose
_DATE = re.compile(r"\b(19|20)\d\d-[01]\d-[0-3]\d\b")
_RUN_LABEL = re.compile(r"(?i)\b(run|stop|round|iteration|attempt) #?\d+\b")
_HISTORY_HEADING = re.compile(r"(?i)\b(changelog|history|along the way|what changed|before and after)\b")


class _Loader(yaml.SafeLoader):
    """``mkdocs.yml`` names Python callables (``!!python/...``): read them as nothing."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def _nav_files(entry: Any) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [page for item in entry for page in _nav_files(item)]
    if isinstance(entry, dict):
        return [page for value in entry.values() for page in _nav_files(value)]
    return []


def _config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)
    return config


def _prose(text: str) -> str:
    """``text`` without code: fenced blocks and inline code spans."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading (also the site's: ``pymdownx.slugs.slugify``, lower case):
    the rendered text, lower-cased, without punctuation, one hyphen per space."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, repeated headings numbered as GitHub does."""
    seen: Counter[str] = Counter()
    out = set()
    for _, heading in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = github_slug(heading)
        out.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return out


def run_log_lines(text: str) -> list[str]:
    """The lines of a page that read as a run-by-run log rather than documentation."""
    found = []
    for line in _prose(text).splitlines():
        heading = line.startswith("#")
        if _DATE.search(line) or _RUN_LABEL.search(line) or (heading and _HISTORY_HEADING.search(line)):
            found.append(line.strip())
    return found


def _pages() -> set[str]:
    return {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    nav = _nav_files(_config()["nav"])
    assert len(nav) == len(set(nav)), "a page is in the nav twice"
    assert sorted(_pages() - set(nav) - NOT_IN_NAV) == [], "pages missing from the nav of mkdocs.yml"
    assert sorted(set(nav) - _pages()) == [], "nav entries without a page"


def test_the_site_builds_offline_and_strictly() -> None:
    config = _config()
    assert config["strict"] is True
    assert set(config["validation"].values()) == {"warn"}  # strict: every one of them is an error
    assert config["theme"]["font"] is False  # no Google Fonts
    assert [p if isinstance(p, str) else next(iter(p)) for p in config["plugins"]] == ["search"]


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Capture point 1: an OpenAI-compatible endpoint (ASGI middleware)",
         "capture-point-1-an-openai-compatible-endpoint-asgi-middleware"),
        ("The `req_hash` recipe", "the-req_hash-recipe"),
        ("λ (stability)", "λ-stability"),
        ("Per window (`WindowSummary` on `compare.summary`)", "per-window-windowsummary-on-comparesummary"),
        ("A - B", "a---b"),
    ],
)  # fmt: skip
def test_anchors_follow_githubs_rule(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def _readme_links() -> list[str]:
    return [t for t in _LINK.findall(_prose(README.read_text(encoding="utf-8"))) if "://" not in t]


def test_every_relative_link_of_the_readme_resolves() -> None:
    links = _readme_links()
    assert any(link.startswith("docs/") for link in links)
    broken = []
    for link in links:
        if link.startswith("mailto:"):
            continue
        path, _, anchor = link.partition("#")
        target = (ROOT / path).resolve() if path else README
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and (target.suffix != ".md" or anchor not in anchors(target)):
            broken.append(f"{link}: no such anchor")
    assert broken == []


def test_the_readme_is_at_most_12_kb() -> None:
    assert len(README.read_bytes()) <= README_MAX_BYTES


def test_the_run_log_check_tells_a_log_from_documentation() -> None:
    log = "## Run 2026-12-04\n\nstop 12: the comparator got faster\n\n### What was fixed along the way\n"
    assert len(run_log_lines(log)) == 3
    docs = "The simulation runs 300 experiments.\n\n```bash\nshadowlane rescore --from 2026-01-01\n```\n"
    assert run_log_lines(docs + "Use `--from 2026-01-01` for a fixed start.\n") == []


@pytest.mark.parametrize("page", sorted(["README.md", *(f"docs/{p}" for p in _pages())]))
def test_no_page_keeps_a_run_by_run_log(page: str) -> None:
    """The history of the figures is in git; a page says what is true now."""
    assert run_log_lines((ROOT / page).read_text(encoding="utf-8")) == []


def test_the_sites_quickstart_is_the_readmes() -> None:
    assert blocks("README.md")  # the README has a quickstart, and its steps are marked
    assert steps("docs/quickstart.md") == steps("README.md")
    assert examples("docs/quickstart.md")["fastapi"] == examples("README.md")["fastapi"]


@pytest.mark.timeout(180)
def test_mkdocs_build_strict_passes(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs and mkdocs-material are not installed (the docs extra)")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    assert (tmp_path / "site" / "quickstart" / "index.html").is_file()
