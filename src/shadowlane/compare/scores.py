"""One build's shared work: the ΔS it needs, embedded in one batch, and its masked texts.

:class:`Scores` collects every pair of texts a build wants ΔS for and embeds them in one call
(texts equal after normalisation score 0 without the embedder). :class:`Masked` masks each
shadow answer and λ replay with the hook's sanitizer once, however many comparisons read it.
"""

from __future__ import annotations

from collections.abc import Sequence

from shadowlane.compare import quality as q
from shadowlane.compare.embedder import Embedder, delta_s
from shadowlane.contracts.shadow_result import ShadowResult
from shadowlane.sanitize import Sanitizer


class Scores:
    """ΔS for pairs of texts, all embedded in one batch when :meth:`compute` runs."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._known: dict[tuple[str, str], float] = {}
        self._todo: dict[tuple[str, str], None] = {}

    def want(self, a: str | None, b: str | None) -> None:
        """Ask for ΔS(a, b). Without an embedder ΔS is off altogether: scoring only the equal
        pairs (0) would bias every mean towards zero."""
        if not self._enabled or a is None or b is None or (a, b) in self._known:
            return
        if q.normalise(a) == q.normalise(b):
            self._known[(a, b)] = 0.0
        else:
            self._todo[(a, b)] = None

    @property
    def pending(self) -> bool:
        return bool(self._todo)

    def compute(self, embedder: Embedder | None) -> None:
        if not self._todo or embedder is None:
            return
        texts = list(dict.fromkeys(t for pair in self._todo for t in pair))
        index = {t: i for i, t in enumerate(texts)}
        vectors = embedder.embed(texts)
        left = vectors[[index[a] for a, _ in self._todo]]
        right = vectors[[index[b] for _, b in self._todo]]
        for pair, score in zip(self._todo, delta_s(left, right), strict=True):
            self._known[pair] = round(float(score), 6)
        self._todo.clear()

    def get(self, a: str | None, b: str | None) -> float | None:
        if a is None or b is None:
            return None
        return self._known.get((a, b))


class Masked:
    """One ``build()``'s masked texts, each result's masked once however many comparisons read it
    (a baseline's answer and λ replays are read by every candidate of its request)."""

    def __init__(self, sanitizer: Sanitizer) -> None:
        self._sanitizer = sanitizer
        self._answers: dict[int, str | None] = {}
        self._lambda: dict[int, list[str]] = {}
        self._once: dict[str, str] = {}

    def text(self, text: str | None) -> str | None:
        return None if text is None else self._sanitizer.mask_text(text)[0]

    def once(self, text: str | None) -> str | None:
        """``text`` masked, each distinct text once per build (a replay's retrieved passages are
        read by its plan and its comparison)."""
        if text is None:
            return None
        if text not in self._once:
            self._once[text] = self._sanitizer.mask_text(text)[0]
        return self._once[text]

    def texts(self, texts: Sequence[str]) -> list[str]:
        return [self._sanitizer.mask_text(t)[0] for t in texts]

    def answer(self, res: ShadowResult) -> str | None:
        key = id(res)
        if key not in self._answers:
            self._answers[key] = self.text(res.answer)
        return self._answers[key]

    def lambda_texts(self, res: ShadowResult) -> list[str]:
        if not res.stability:  # the common case: not sampled for λ
            return []
        key = id(res)
        if key not in self._lambda:
            self._lambda[key] = self.texts(q.lambda_texts(res))
        return self._lambda[key]
