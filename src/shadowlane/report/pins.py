"""The report's pin checks: how many comparisons verified each side's pins, how many found a side
serving with other pins than it claimed, and which pin keys differed (``shadowlane.compare.pins``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

MAX_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class PinChecks:
    """One side's checks over the report's comparisons (``None`` keys: that comparison checked none)."""

    checked: int
    mismatched: int
    keys: tuple[tuple[str, int], ...]  # differing pin key, comparisons it differed in; most first
    examples: tuple[str, ...]  # request ids (else hashes) of mismatched comparisons

    @property
    def rate(self) -> float | None:
        return self.mismatched / self.checked if self.checked else None


def pin_checks(rows: Iterable[tuple[str, tuple[str, ...] | None]]) -> PinChecks | None:
    """The checks of ``(request id, differing keys or None)`` rows; None when none was checked."""
    checked = mismatched = 0
    keys: Counter[str] = Counter()
    examples: list[str] = []
    for ident, differing in rows:
        if differing is None:
            continue
        checked += 1
        if differing:
            mismatched += 1
            keys.update(differing)
            if len(examples) < MAX_EXAMPLES:
                examples.append(ident)
    if not checked:
        return None
    ordered = tuple(sorted(keys.items(), key=lambda item: (-item[1], item[0])))
    return PinChecks(checked, mismatched, ordered, tuple(examples))
