"""Shadowlane: shadow traffic for LLM services, carried by Kafka.

``shadowlane.hook`` is what a prod service imports (the ASGI middleware, the publisher and the
client-side captures); ``shadowlane.contracts`` holds the wire contracts. Shadow workers, the
comparator and rollout control come with the ``workers`` and ``rollout`` extras.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``__version__``, read from the installed distribution when first asked for (reading the
    metadata costs tens of milliseconds: a prod service importing the hook need not pay it)."""
    if name != "__version__":
        raise AttributeError(f"module 'shadowlane' has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("shadowlane")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        version = "0+unknown"
    globals()["__version__"] = version
    return version
