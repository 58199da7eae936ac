"""Garbage-collector settings for long-lived worker processes (not for the prod host).

A comparator holds every waiting pair as live objects; with CPython's default thresholds each
young collection is cheap but full collections walk that whole heap, and the profile showed
them eating ~10 % of the join path. Workers freeze what start-up allocated and collect less often.
"""

from __future__ import annotations

import gc


def tune_for_workers() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
