"""shadowlane/native_path.py: the one rule that decides whether a component runs its native path."""

from __future__ import annotations

import pytest

import shadowlane.native_path as native_path
from shadowlane.errors import ConfigError


@pytest.mark.skipif(not native_path.native_available(), reason="`make` builds native/")
def test_auto_and_native_use_the_extension_when_installed() -> None:
    assert native_path.use_native("auto") is True
    assert native_path.use_native("native") is True
    assert native_path.use_native("python") is False


def test_native_forced_without_the_extension_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native_path, "native_available", lambda: False)
    assert native_path.use_native("auto") is False
    assert native_path.use_native("python") is False
    with pytest.raises(ConfigError, match=r"pip install \./native.*SHADOWLANE_COMPARE__NATIVE_PATH=auto"):
        native_path.use_native("native")
    with pytest.raises(
        ConfigError, match=r"^hook.native_path is 'native'.*SHADOWLANE_HOOK__NATIVE_PATH=auto"
    ):
        native_path.use_native("native", "hook.native_path")
