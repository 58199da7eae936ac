"""The base class of every wire contract: frozen, strict about unknown fields, versioned.

Each concrete contract pins ``schema_version`` to a ``Literal`` so a record written by a newer
producer fails validation loudly (and goes to the DLQ) instead of being half-read.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict


class Trusted(BaseModel):
    """A contract that its producers may also build without validation (:meth:`trusted`)."""

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> Self:
        """A record from values its producer built from already-validated records, unvalidated.

        For hot paths only: the comparator builds one ``Comparison`` per pair, and builds the
        shadow results its native reader has already checked; validating again would cost more
        than everything else it does per pair. ``values`` must hold every field, in declaration
        order, with the types the contract declares; the producer's tests validate what it builds
        (``model_validate(record.__dict__)``), so a drift between the producer and the contract
        fails a test, not a consumer. Every field counts as set (``model_fields_set``).
        """
        shape = _SHAPES.get(cls)
        if shape is None:
            shape = _SHAPES[cls] = (len(cls.__pydantic_fields__), set(cls.__pydantic_fields__))
        count, every_field = shape
        if len(values) != count:
            missing = sorted(set(cls.__pydantic_fields__) - set(values))
            extra = sorted(set(values) - set(cls.__pydantic_fields__))
            raise ValueError(f"{cls.__name__}.trusted: missing {missing}, unknown {extra}")
        record = _new(cls)
        _set_dict(record, values)
        # one set shared by every trusted record of the class: frozen records never add to it,
        # and pydantic copies it before a model_copy(update=...) changes it
        _set_fields_set(record, every_field)
        _set_extra(record, None)
        _set_private(record, None)
        return record


# BaseModel's slots, written through their descriptors (pydantic's own model_construct does the
# same with object.__setattr__; the descriptors skip the attribute lookup, ~3x faster in all)
_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
_SHAPES: dict[type[BaseModel], tuple[int, set[str]]] = {}


class WireModel(Trusted):
    """A record that travels on a topic. Subclasses set ``SCHEMA_NAME`` and ``schema_version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    SCHEMA_NAME: ClassVar[str] = "wire"
    SCHEMA_VERSION: ClassVar[int] = 1
    FLAT: ClassVar[bool] = False
    """True when every field holds JSON-native values (no nested models): the record's ``__dict__``
    then *is* its JSON form, and :func:`shadowlane.contracts.codec.encode` serializes it without a dump."""


class Nested(Trusted):
    """A nested part of a contract: frozen, forbids unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class OpenShape(BaseModel):
    """A nested part mirroring an external API shape: frozen, keeps unknown fields verbatim."""

    model_config = ConfigDict(frozen=True, extra="allow")

    def extras(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})
