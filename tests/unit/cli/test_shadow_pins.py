"""``shadowlane shadow``'s pin flags: expected pins from ``--manifest``, served pins from
``--served-model-pin`` and ``--served-pin-header``, checked on a real HTTP candidate."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from shadowlane.cli import worker_cmds
from shadowlane.cli.main import build_parser
from shadowlane.demo.serve import serve
from shadowlane.settings import Settings
from tests.support.pinned_model import INDEX_HEADER, PinnedModel

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = ROOT / "deploy" / "flags" / "feature_flags.yml"
USER = {"messages": [{"role": "user", "content": "hello 1"}]}


def _parse(*argv: str) -> argparse.Namespace:
    args: argparse.Namespace = build_parser().parse_args(list(argv))
    return args


def test_manifest_versions_are_the_expected_pins(tmp_path: Path) -> None:
    base = (
        "shadow",
        "--candidate",
        "grammar-b",
        "--url",
        "http://127.0.0.1:9/v1",
        "--manifest",
        str(MANIFEST),
    )
    settings = worker_cmds.shadow_settings(_parse(*base), Settings())  # found by candidate: grammar_b's
    assert settings.shadow.pins == {
        "MODEL_VER": "grammar-b@v0.3.0",
        "PROMPT_VER": "tutor-p1",
        "INDEX_HASH": "conj-table-v1",
    }
    named = worker_cmds.shadow_settings(
        _parse(*base, "--flag", "grammar_b", "--pin", "MODEL_VER=x"), Settings()
    )
    assert named.shadow.pins["MODEL_VER"] == "x"  # --pin wins over the manifest
    assert named.shadow.pins["INDEX_HASH"] == "conj-table-v1"
    with pytest.raises(SystemExit) as exc:  # no flag of the manifest serves this candidate
        worker_cmds.shadow_settings(
            _parse("shadow", "--candidate", "other", "--url", "http://x/v1", "--manifest", str(MANIFEST)),
            Settings(),
        )
    assert exc.value.code == 64
    broken = tmp_path / "broken.yml"
    broken.write_text("flags: [", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        worker_cmds.shadow_settings(_parse(*base[:-1], str(broken)), Settings())
    assert exc.value.code == 64


def test_a_secret_bearing_header_is_refused_as_a_served_pin(capsys: pytest.CaptureFixture[str]) -> None:
    """The flag is held to the setting's rule: a credential header would be published as a pin."""
    args = _parse(
        "shadow", "--candidate", "b", "--url", "http://x/v1", "--served-pin-header", "Authorization=AUTH"
    )
    with pytest.raises(SystemExit) as exc:
        worker_cmds.shadow_settings(args, Settings())
    assert exc.value.code == 64
    assert "secret-bearing" in capsys.readouterr().err
    ok = _parse(
        "shadow", "--candidate", "b", "--url", "http://x/v1", "--served-pin-header", "x-index-hash=IDX"
    )
    assert worker_cmds.shadow_settings(ok, Settings()).shadow.served_pin_headers == {"x-index-hash": "IDX"}


async def test_served_pin_flags_reach_the_candidate() -> None:
    server = await serve(PinnedModel(headerless=lambda body: "2" in str(body["messages"][-1]["content"])))
    try:
        args = _parse(
            "shadow", "--candidate", "grammar-b", "--url", server.url,
            "--served-model-pin", "MODEL_VER", "--served-pin-header", f"{INDEX_HEADER.upper()}=INDEX_HASH",
        )  # fmt: skip
        settings = worker_cmds.shadow_settings(args, Settings())
        assert settings.shadow.served_model_pin == "MODEL_VER"
        assert settings.shadow.served_pin_headers == {INDEX_HEADER.upper(): "INDEX_HASH"}
        candidate = worker_cmds.build_candidate(args, settings)
        try:
            reply = await candidate.chat(USER)
            assert reply.model == "grammar-b@v0.3.0"
            assert reply.served_pins == {"INDEX_HASH": "conj-table-v1"}  # header names match in any case
            bare = await candidate.chat({"messages": [{"role": "user", "content": "hello 2"}]})
            assert bare.served_pins == {"INDEX_HASH": ""}  # absent: recorded, so it is checked
        finally:
            await candidate.aclose()
    finally:
        await server.stop()
    with pytest.raises(SystemExit) as exc:
        worker_cmds.shadow_settings(
            _parse("shadow", "--candidate", "c", "--url", "http://x/v1", "--served-pin-header", "no-equals"),
            Settings(),
        )
    assert exc.value.code == 64
