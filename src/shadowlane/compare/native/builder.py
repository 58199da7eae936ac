"""The comparison of a plain joined pair, built by the native hot path (``native/src/plain.rs``).

A pair is plain when nothing in it needs :class:`~shadowlane.compare.build.ComparisonBuilder`'s
machinery: no gold label, no λ replays, no tool calls in the replay (prod's recorded ones make it
a ``missing_step`` at step 1 of the agent replay, :mod:`~shadowlane.compare.agent_steps`), no
citation target, no retrieved passages on either side, no priced model, no baseline peer, a shadow
answer the sanitizer leaves as it is and, with an embedder, answers equal after normalisation.
Every metric of such a pair is a constant of the contract, a copy of an input or a pin check
(:func:`~shadowlane.compare.pins.pin_check`'s rule, mirrored natively), and
``shadowlane_native.build_plain`` writes the record's fields
in the contract's order, straight from the native records' Rust fields
(:func:`~shadowlane.compare.prod_side.read_request`, :func:`~shadowlane.compare.results.read_result`).
It also writes the record's wire bytes (as orjson does: a differential test compares them byte
for byte), so the comparator does not encode the record again. It answers ``None`` for any pair
it is not sure of, and for a pair whose records the native readers declined (Python read them);
the Python builder then builds it. ``tests/unit/compare/native/test_builder.py`` holds the two
equal on generated pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shadowlane.compare.join import Joined
from shadowlane.compare.prod_side import ProdSide
from shadowlane.contracts.comparison import Comparison
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.sanitize import MASK_GUARD, Sanitizer
from shadowlane.settings import CompareSettings

if TYPE_CHECKING:
    from shadowlane_native import NativeRequest, NativeResult, PlainConfig

Made = tuple[dict[str, Any], bytes | None]  # a comparison's fields and wire bytes
Native = tuple[
    type["PlainConfig"],
    Callable[["NativeRequest", "NativeResult", "PlainConfig"], Made | None],
]


def _native() -> Native | None:
    try:
        from shadowlane_native import PlainConfig, build_plain
    except ImportError:  # `make` always builds it; a bare `pip install .` does not
        return None
    return PlainConfig, build_plain


NATIVE_PLAIN = _native()
"""The native builder, or None when ``shadowlane_native`` is not installed."""


def _template() -> dict[str, Any]:
    """Every field of the contract in its order: the constants of a plain pair set, and None in
    the fields ``build_plain`` sets per pair."""
    fields: dict[str, Any] = dict.fromkeys(Comparison.model_fields)
    fields.update(
        schema_version=1,
        complete=True,
        outcome="joined",
        tools_stubbed=0,
        tools_blocked=0,
        lambda_samples=0,
        tool_calls=0,
        tool_valid=0,
        tool_matched_prod=0,
    )
    return fields


class PlainPath:
    """One builder's native path; :meth:`build` is None when the pair is not plain (or the path
    is off: no native module, or a sanitizer other than the one the native checks mirror).
    ``embedder`` is the builder's embedder's name (None without one): the native config writes it
    as ``delta_s_embedder`` on every comparison it builds, as the Python builder does."""

    def __init__(
        self,
        settings: CompareSettings,
        embedder: str | None,
        citation_guard: str | None,
        sanitizer: Sanitizer,
        native: Native | None = NATIVE_PLAIN,
    ) -> None:
        self._baseline = settings.baseline_candidate
        self._native = native if type(sanitizer) is Sanitizer else None
        prices = list(settings.prices)
        self._config = (
            native[0](self._baseline, embedder, citation_guard, prices, _template(), MASK_GUARD)
            if native
            else None
        )

    @property
    def enabled(self) -> bool:
        return self._native is not None

    @property
    def config(self) -> PlainConfig | None:
        """The native configuration (for the native join, which builds plain pairs as they join),
        or None when the path is off."""
        return self._config if self._native is not None else None

    def build(self, item: Joined) -> tuple[Comparison, bytes | None] | None:
        """The pair's comparison and its wire bytes (None: ``shadowlane.contracts.codec.encode`` writes them),
        or None when the pair is not plain."""
        native, config = self._native, self._config
        if native is None or config is None:
            return None
        env, res = item.envelope, item.result
        if isinstance(env, ProdSide) or isinstance(res, ShadowResult):
            return None  # a record the native reader declined: Python reads the pair
        baseline = self._baseline
        if baseline is not None and res.candidate != baseline and baseline in item.peers:
            return None  # the noise floor needs the baseline's ΔS: the Python builder's
        built = native[1](env, res, config)
        if built is None:
            return None
        fields, wire = built
        return Comparison.trusted(fields), wire
