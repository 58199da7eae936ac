"""shadowlane/compare/native/__init__.py: ``compare.native_path`` picks the comparator's hot path
(by the rule of :mod:`shadowlane.native_path`)."""

from __future__ import annotations

import pytest

import shadowlane.native_path as native_path
from shadowlane.cli.main import main
from shadowlane.compare.build import ComparisonBuilder
from shadowlane.compare.join import JoinBuffer
from shadowlane.compare.native.join import NativeJoinBuffer, join_buffer
from shadowlane.compare.prod_side import ProdSide
from shadowlane.compare.results import read_result_python
from shadowlane.settings import CompareSettings

pytestmark = pytest.mark.skipif(
    not native_path.native_available(), reason="these tests compare both paths: `make` builds native/"
)


def _builder(path: str) -> ComparisonBuilder:
    return ComparisonBuilder(None, CompareSettings(native_path=path))  # type: ignore[arg-type]


def test_the_builder_decides_once_for_itself_and_its_join() -> None:
    native, python = _builder("native"), _builder("python")
    assert native.native
    assert native.plain.enabled
    assert not python.native
    assert not python.plain.enabled
    join = join_buffer(("cand",), 1000, plain=python.plain, native=python.native)
    assert type(join) is JoinBuffer
    # the Python path reads with Python too: no native record ever enters its join
    assert join.read_request == ProdSide.decode_python
    assert join.read_result is read_result_python
    assert type(join_buffer(("cand",), 1000, plain=native.plain, native=native.native)) is NativeJoinBuffer


def test_compare_cli_refuses_a_forced_path_that_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(native_path, "native_available", lambda: False)
    assert main(["compare", "--native-path", "native"]) == 3  # a setting that cannot work
    err = capsys.readouterr().err
    assert "shadowlane compare:" in err
    assert "shadowlane_native extension is not installed" in err
