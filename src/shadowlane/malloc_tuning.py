"""glibc allocator settings for the comparator and shadow worker processes.

A comparator poll allocates and frees megabytes in blocks above pymalloc's 512-byte limit: the
fetched records (~1.3 KB each), and every encoded comparison, whose buffer orjson grows to a few
KB before it shrinks it to fit. glibc returns the free top of its heap to the kernel once it is
larger than the trim threshold (by default twice the largest block it has handed out by
``mmap``, 2 MB here), so every poll gave the heap back and faulted it in again: encoding a
poll's worth of comparisons took 6.4 µs each instead of 1.2 (``orjson.dumps`` over 2,000
comparisons kept alive together, as a poll keeps them). A worker keeps up to
:data:`TRIM_THRESHOLD` of free heap instead, and takes blocks up to :data:`MMAP_THRESHOLD` from
the heap rather than from fresh mappings (setting the trim threshold turns glibc's adaptive
thresholds off, so both are set).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's malloc.h parameter numbers
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 64 * 1024 * 1024
MMAP_THRESHOLD = 32 * 1024 * 1024


def tune_allocator() -> bool:
    """Set both thresholds; False (and nothing changed) where the C library has no ``mallopt``
    or refuses them (musl's accepts and ignores them; macOS has none)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    trim = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    ok = bool(trim and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)
    if not ok:
        log.info("the C library refused the allocator thresholds; running with its defaults")
    return ok
