"""The base class of every wire contract: frozen, strict about unknown fields, versioned.

Each concrete contract pins ``schema_version`` to a ``Literal`` so a record written by a newer
producer fails validation loudly (and goes to the DLQ) instead of being half-read.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A record that travels on a topic. Subclasses set ``SCHEMA_NAME`` and ``schema_version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    SCHEMA_NAME: ClassVar[str] = "wire"
    SCHEMA_VERSION: ClassVar[int] = 1


class Nested(BaseModel):
    """A nested part of a contract: frozen, forbids unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class OpenShape(BaseModel):
    """A nested part mirroring an external API shape: frozen, keeps unknown fields verbatim."""

    model_config = ConfigDict(frozen=True, extra="allow")

    def extras(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})
