"""The workers' allocator settings: applied where the C library is glibc, a no-op elsewhere."""

from __future__ import annotations

import ctypes
import platform

import pytest

from shadowlane import malloc_tuning


def test_glibc_takes_both_thresholds() -> None:
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt's parameters are glibc's")
    assert malloc_tuning.tune_allocator() is True


def test_a_c_library_without_mallopt_leaves_everything_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoMallopt:
        def __init__(self, name: object) -> None:
            pass

    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert malloc_tuning.tune_allocator() is False
