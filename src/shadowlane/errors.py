"""The small error hierarchy every worker uses to decide between retry and dead-letter.

- :class:`RetriableError`: a transient failure (broker, network, candidate overload). The record
  stays uncommitted and is tried again.
- :class:`InvalidMessage`: the record itself is bad (undecodable bytes, wrong schema version,
  failed validation). Retrying cannot help, so it goes to the DLQ with the reason.
"""

from __future__ import annotations


class ShadowlaneError(Exception):
    """Base class of every error Shadowlane raises on purpose."""


class RetriableError(ShadowlaneError):
    """A transient failure: try the same record again later."""


class InvalidMessage(ShadowlaneError):
    """A record that can never be processed; it goes to the dead-letter topic with ``reason``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class BrokerSetupError(ShadowlaneError):
    """The local Kafka broker could not be installed, formatted or started."""


class ConfigError(ShadowlaneError):
    """A setting that cannot work here (say, a path forced that is not installed): fatal at start."""
