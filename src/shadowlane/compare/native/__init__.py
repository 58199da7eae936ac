"""The comparator's native hot path: the ``shadowlane_native`` extension (Rust, built by maturin
from ``native/``). ``compare.native_path`` (``SHADOWLANE_COMPARE__NATIVE_PATH``) picks the path
by the rule of :mod:`shadowlane.native_path`. Every native piece has a Python twin that is the
reference, and tests hold the two equal; the Python path is the one a comparator without the
extension runs.
"""

from __future__ import annotations

from shadowlane.native_path import NativePath, native_available, use_native

__all__ = ["NativePath", "native_available", "use_native"]
