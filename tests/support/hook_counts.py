"""The hook's counting rule, for tests: every request it sees is counted once, in one outcome."""

from __future__ import annotations

from dataclasses import fields

from shadowlane.hook.publisher import PublisherStats

# every request the hook saw ends in exactly one of these (enqueued ones once sent or dropped)
TERMINAL = (
    "sampled_out",
    "killed",
    "route_skipped",
    "skipped_shadow",
    "dropped_queue_full",
    "dropped_invalid",
    "dropped_not_running",
    "dropped_too_large",
    "dropped_incomplete",
    "published",
    "send_failed",
)
NOT_TERMINAL = ("seen", "enqueued", "sanitized_fields", "connect_failures", "config_errors")


def assert_every_request_counted_once(stats: PublisherStats) -> None:
    """After ``stop()``: ``seen`` equals the sum of the terminal counters (no path forgets ``seen``
    or counts a request twice). A new counter must be classified here first."""
    assert {f.name for f in fields(stats)} == set(TERMINAL) | set(NOT_TERMINAL)
    counts = stats.as_dict()
    assert counts["seen"] == sum(counts[name] for name in TERMINAL), counts
