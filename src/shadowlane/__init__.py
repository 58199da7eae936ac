"""Shadowlane: shadow traffic for LLM services, carried by Kafka.

``shadowlane.hook`` is what a prod service imports (the ASGI middleware, the publisher and the
client-side captures); ``shadowlane.contracts`` holds the wire contracts. Shadow workers, the
comparator and rollout control come with the ``workers`` and ``rollout`` extras.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("shadowlane")
except metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
