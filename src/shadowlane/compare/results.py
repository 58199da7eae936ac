"""How the comparator reads a shadow result: natively when it can, through the contract always.

:func:`decode_result` is :func:`shadowlane.contracts.codec.decode` for ``ShadowResult``, about 3× faster on
the records the native reader (``shadowlane_native.parse_result``, Rust) vouches for; the
comparator's join keeps that reader's record (:func:`read_result`), whose fields stay Rust values
until :func:`as_result` makes them Python objects for a pair the Python builder handles. That
reader checks the contract field by field (types, literals, bounds, unknown and repeated keys)
and hands back the fields in declaration order, so the record is built without a second
validation (:meth:`shadowlane.contracts.base.Trusted.trusted`). It declines anything it is not sure of (a
value pydantic would coerce, an integer past 64 bits, a float inside tool arguments, broken
JSON), and that record takes the codec's path, which accepts it or raises the contract's
:class:`~shadowlane.contracts.codec.DecodeError`. Tests hold the two paths equal on generated and mutated
records (``tests/unit/compare/test_results.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from shadowlane.contracts.chat import TokenUsage
from shadowlane.contracts.codec import decode
from shadowlane.contracts.envelope import RetrievedPassage
from shadowlane.contracts.shadow_result import ShadowResult, ShadowToolCall, StabilitySample

if TYPE_CHECKING:
    from shadowlane_native import NativeResult


def _native_reader() -> Callable[[bytes], NativeResult | None] | None:
    try:
        from shadowlane_native import parse_result
    except ImportError:  # `make` always builds it; a bare `pip install .` does not
        return None
    return parse_result


NATIVE_RESULTS = _native_reader()
"""The native reader, or None when ``shadowlane_native`` is not installed."""

Result: TypeAlias = "ShadowResult | NativeResult"
"""A shadow result as the join holds it: the native reader's record, or the contract's."""


def read_result(data: bytes | None) -> Result:
    """The join's record of an encoded shadow result; :class:`~shadowlane.contracts.codec.DecodeError` as
    ``decode`` gives it."""
    if data is not None and NATIVE_RESULTS is not None:
        record = NATIVE_RESULTS(data)
        if record is not None:
            return record
    return read_result_python(data)


def read_result_python(data: bytes | None) -> ShadowResult:
    """:func:`read_result` without the native reader (the comparator's ``python`` path)."""
    return decode(data, ShadowResult)


def as_result(res: Result) -> ShadowResult:
    """The contract's record of a join record (the native one's fields made Python objects)."""
    return res if isinstance(res, ShadowResult) else from_native(res.fields())


def decode_result(data: bytes | None) -> ShadowResult:
    """A shadow result from its bytes; :class:`~shadowlane.contracts.codec.DecodeError` as ``decode``
    gives it."""
    return as_result(read_result(data))


def from_native(fields: dict[str, Any]) -> ShadowResult:
    """The record of the native reader's fields (nested parts arrive as dicts of their fields)."""
    if fields["tool_calls"]:
        fields["tool_calls"] = tuple(ShadowToolCall.trusted(call) for call in fields["tool_calls"])
    if fields["usage"] is not None:
        fields["usage"] = TokenUsage.trusted(fields["usage"])
    if fields["stability"]:
        fields["stability"] = tuple(StabilitySample.trusted(_passages(s)) for s in fields["stability"])
    return ShadowResult.trusted(_passages(fields))


def _passages(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with its ``retrieved`` passages (dicts of their fields) made ``RetrievedPassage``s."""
    if fields["retrieved"]:
        fields["retrieved"] = tuple(RetrievedPassage.trusted(p) for p in fields["retrieved"])
    return fields
