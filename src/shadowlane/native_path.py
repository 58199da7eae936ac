"""Whether a component runs its native path: the optional ``shadowlane_native`` extension (Rust,
built by maturin from ``native/``), and the one rule that decides whether it is used.

The extension is optional (``pip install ./native``, or the ``native`` extra where a wheel of it is
published). A setting of type :data:`NativePath` picks the path: ``auto`` (the default) uses it
when it is installed, ``native`` requires it (a missing module is a
:class:`~shadowlane.errors.ConfigError` at start), ``python`` never uses it. Every native piece has
a Python twin that is the reference, and tests hold the two equal.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from shadowlane.errors import ConfigError

NativePath = Literal["auto", "native", "python"]


def native_available() -> bool:
    """True when the ``shadowlane_native`` extension is installed."""
    return importlib.util.find_spec("shadowlane_native") is not None


def use_native(path: NativePath, setting: str = "compare.native_path") -> bool:
    """Whether a component whose ``setting`` is ``path`` runs its native path."""
    if path == "python":
        return False
    available = native_available()
    if path == "native" and not available:
        env = "SHADOWLANE_" + setting.upper().replace(".", "__")
        raise ConfigError(
            f"{setting} is 'native' but the shadowlane_native extension is not installed: "
            f"build it with `pip install ./native` (a Rust toolchain and maturin), or set {env}=auto"
        )
    return available
