"""The comparator's native hot path: the ``shadowlane_native`` extension (Rust, built by maturin
from ``native/``), and the one rule that decides whether a comparator uses it.

The extension is optional (``pip install ./native``, or the ``native`` extra where a wheel of it is
published). ``compare.native_path`` (``SHADOWLANE_COMPARE__NATIVE_PATH``) picks the path:
``auto`` (the default) uses it when it is installed, ``native`` requires it (a missing module is a
:class:`~shadowlane.errors.ConfigError` at start), ``python`` never uses it. Every native piece has
a Python twin that is the reference, and tests hold the two equal; the Python path is the one a
comparator without the extension runs.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from shadowlane.errors import ConfigError

NativePath = Literal["auto", "native", "python"]


def native_available() -> bool:
    """True when the ``shadowlane_native`` extension is installed."""
    return importlib.util.find_spec("shadowlane_native") is not None


def use_native(path: NativePath) -> bool:
    """Whether a comparator set to ``path`` runs the native hot path."""
    if path == "python":
        return False
    available = native_available()
    if path == "native" and not available:
        raise ConfigError(
            "compare.native_path is 'native' but the shadowlane_native extension is not installed: "
            "build it with `pip install ./native` (a Rust toolchain and maturin), or set "
            "SHADOWLANE_COMPARE__NATIVE_PATH=auto"
        )
    return available
