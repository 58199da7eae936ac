"""Every sanitizer test runs on both paths: the Python reference and the native engine (skipped
where the extension is not built). ``Sanitizer()``'s default path (``auto``) is forced per run; a
path a test names is kept."""

from __future__ import annotations

import pytest

import shadowlane.sanitize.sanitizer as sanitizer_module
from shadowlane import native_path
from shadowlane.native_path import NativePath, native_available


@pytest.fixture(autouse=True, params=["python", "native"])
def sanitizer_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    path: str = request.param
    if path == "native" and not native_available():
        pytest.skip("the native engine is not built: `make native`")
    chosen = native_path.use_native

    def forced(asked: NativePath, setting: str = "") -> bool:
        return path == "native" if asked == "auto" else chosen(asked, setting)

    monkeypatch.setattr(sanitizer_module, "use_native", forced)
    return path
