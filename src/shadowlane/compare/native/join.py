"""The join in Rust (``shadowlane_native.NativeJoin``, ``native/src/join/``) behind
:class:`~shadowlane.compare.join.JoinBuffer`'s interface, and the choice between the two.

The native join keeps the same state by the same rules and gives the same outputs in the same
order (``tests/unit/compare/native/test_join.py`` holds the two equal on generated operation sequences,
and every join test runs against both). Its :meth:`ingest` also reads a poll's records natively,
so the comparator's per-record loop runs outside the interpreter, and keeps what it read as Rust
values. Given the builder's plain config, it builds each plain pair as it joins and hands over a
:class:`~shadowlane.compare.join.Built` instead of a :class:`~shadowlane.compare.join.Joined`: the
pair's records then never become Python objects (the same test holds the comparisons it builds
to the Python join and builder's). :func:`join_buffer` picks it
whenever ``shadowlane_native`` is installed (``make`` always builds it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from shadowlane.compare.join import (
    Built,
    Expired,
    Ingested,
    JoinBuffer,
    Joined,
    JoinStats,
    Output,
    RecordRef,
    readers,
)
from shadowlane.compare.native.builder import PlainPath
from shadowlane.compare.prod_side import ProdSide, Request
from shadowlane.compare.results import Result, read_result_python
from shadowlane.contracts.codec import DecodeError
from shadowlane.contracts.envelope import RequestEnvelope

if TYPE_CHECKING:
    from shadowlane_native import NativeJoin, PlainConfig


def _native() -> type[NativeJoin] | None:
    try:
        from shadowlane_native import NativeJoin
    except ImportError:  # `make` always builds it; a bare `pip install .` does not
        return None
    return NativeJoin


NATIVE_JOIN = _native()
"""The native join's class, or None when ``shadowlane_native`` is not installed."""


class NativeJoinBuffer:
    """:class:`~shadowlane.compare.join.JoinBuffer`, natively."""

    def __init__(
        self,
        candidates: Iterable[str],
        window_ms: int,
        *,
        max_pending: int = 200_000,
        plain: PlainConfig | None = None,
        native: type[NativeJoin] | None = NATIVE_JOIN,
    ) -> None:
        if native is None:
            raise RuntimeError("shadowlane_native is not installed: run `make` (it builds native/)")
        self.candidates = frozenset(candidates)
        self.window_ms = window_ms
        self.max_pending = max_pending
        self._join = native(
            sorted(self.candidates),
            window_ms,
            max_pending,
            Joined,
            Expired,
            Built,
            plain,
            ProdSide.decode_python,
            read_result_python,
            DecodeError,
        )
        self.read_request, self.read_result = readers(True)

    @property
    def stats(self) -> JoinStats:
        return JoinStats(**self._join.stats())

    @property
    def pending(self) -> int:
        return self._join.pending()

    def native_bytes(self) -> int:
        """Bytes held outside the Python heap (tables, keys, native records' strings)."""
        return self._join.native_bytes()

    def ingest(self, records: Sequence[Any], topic: str, partition: int, is_request: bool) -> Ingested:
        return self._join.ingest(list(records), topic, partition, is_request)

    def add_request(
        self, env: Request | RequestEnvelope, ref: RecordRef, ts_ms: int
    ) -> tuple[list[Output], bool]:
        side = ProdSide.of(env) if isinstance(env, RequestEnvelope) else env
        return self._join.add_request(side, ref, ts_ms)

    def add_result(self, res: Result, ref: RecordRef, ts_ms: int) -> tuple[list[Output], bool]:
        return self._join.add_result(res, ref, ts_ms)

    def expire(self, watermark_ms: int) -> list[Output]:
        return self._join.expire(watermark_ms)

    def drop_partitions(self, partitions: Iterable[tuple[str, int]]) -> int:
        return self._join.drop_partitions(list(partitions))

    def mark_finished(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._join.mark_finished(list(pairs))

    def forget_finished(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._join.forget_finished(list(pairs))


Join = JoinBuffer | NativeJoinBuffer


def join_buffer(
    candidates: Iterable[str],
    window_ms: int,
    *,
    max_pending: int = 200_000,
    plain: PlainPath | None = None,
    native: bool = True,
) -> Join:
    """The native join when ``native`` and ``shadowlane_native`` is installed, else the Python one
    (reading through the native readers only when ``native``). With the builder's ``plain`` path
    (when it is on), the native join builds plain pairs as they join."""
    if not native or NATIVE_JOIN is None:
        return JoinBuffer(candidates, window_ms, max_pending=max_pending, native_readers=native)
    config = plain.config if plain is not None else None
    return NativeJoinBuffer(candidates, window_ms, max_pending=max_pending, plain=config)
