"""How one rule runs on one text: the cheap checks that decide whether it may match (trigger
characters, digit runs, the text's shape, the window before an anchor), then its search, the
boundary and the named check, and the replacement of the masked part by the rule's label.

:class:`~shadowlane.sanitize.sanitizer.Sanitizer` decides which rules a text needs and calls
:func:`apply` (or :func:`apply_anchored`) for each, in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from shadowlane.sanitize.rules import CHECKS, Rule


@dataclass(frozen=True, slots=True)
class Compiled:
    rule: Rule
    regex: re.Pattern[str]
    masked_group: int | str
    check: Callable[[str], bool] | None
    triggers: tuple[str, ...]
    """Characters of which a text must hold one for the rule to be considered (its hints' rarest
    characters, both cases for case-insensitive ones); empty: always considered."""
    lead: re.Pattern[str] | None
    not_after: re.Pattern[str] | None


# characters from most to least frequent in English prose (and chat text); any other is rarer
_PROSE = " etaoinsrhldcumfpgwyb,.vkTASIOHW-:'\"()\nxjqzNMCBDEFGLPRUY?!/KJQVXZ"


def _rarest(hint: str) -> str:
    """The character of ``hint`` least likely in prose: it is looked for before the hint."""
    return max(hint, key=lambda c: _PROSE.find(c) if c in _PROSE else len(_PROSE))


def _triggers(rule: Rule) -> tuple[str, ...]:
    if rule.anchors:
        return tuple(dict.fromkeys(_rarest(a) for a in rule.anchors))
    if rule.digits[0]:
        return ()  # decided by counting digits (any script's: no single character)
    shared = set.intersection(*(set(h) for h in rule.hints)) if rule.hints else set()
    if shared and not rule.hints_any_case:  # one character every hint holds: AKIA, ASIA, ... -> A
        return (_rarest("".join(sorted(shared))),)
    chars = [_rarest(h) for h in rule.hints]
    for hint in rule.hints_any_case:
        low = _rarest(hint)
        chars += [low, low.upper()]
    return tuple(dict.fromkeys(chars))


def compile_rule(rule: Rule) -> Compiled:
    regex = rule.compiled()
    group: int | str = "s" if "s" in regex.groupindex else 0
    lead = re.compile(rule.lead) if rule.lead else None
    not_after = re.compile(rule.not_after) if rule.not_after else None
    check = CHECKS[rule.check] if rule.check else None
    return Compiled(rule, regex, group, check, _triggers(rule), lead, not_after)


def fold(text: str) -> str:
    """``text`` with ASCII letters lowercased and every other character kept, position for
    position: what an ``(?ai)`` pattern sees as equal."""
    return text.lower() if text.isascii() else text.encode().lower().decode()


@lru_cache(maxsize=32)
def _digit_run_re(n: int, joiners: str) -> re.Pattern[str]:
    return re.compile(rf"\d(?:[\s{re.escape(joiners)}]*\d){{{n - 1}}}")


_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
SHAPE = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"0" * 10 + b"A" * 26)
_ASCII_SPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


def _skeleton(text: str, joiners: str) -> bytes:
    """ASCII ``text`` with its digits made ``0`` and its whitespace and ``joiners`` deleted: a run
    of ``n`` zeros is a run of ``n`` digits that only those characters join."""
    return text.encode().translate(_DIGITS_TO_ZERO, _ASCII_SPACE + joiners.encode())


def has_digit_run(text: str, n: int, joiners: str) -> bool:
    """Whether ``text`` holds ``n`` digits (any script's, as ``\\d``) joined only by whitespace
    and ``joiners``."""
    if len(text) < n:
        return False
    if not text.isascii():
        return _digit_run_re(n, joiners).search(text) is not None
    return b"0" * n in _skeleton(text, joiners)


_ANY_DIGIT = re.compile(r"\d")


def digit_runs(text: str, needs: tuple[int, ...], joiners: str) -> int:
    """The longest of ``needs`` (sorted, longest first) that a run of digits in ``text`` joined
    by whitespace or ``joiners`` (every digit rule's, together) reaches, else 0: an upper bound of
    what a digit rule can find (for text that is not ASCII, the longest need when it holds a digit
    of any script)."""
    if text.isascii():
        skeleton = _skeleton(text, joiners)
        for need in needs:
            if b"0" * need in skeleton:
                return need
        return 0
    return needs[0] if _ANY_DIGIT.search(text) else 0


def _starts_token(text: str, at: int) -> bool:
    """Whether a token may start at ``at``: at the start, after a character that cannot be part
    of one, or after a JSON escape written out (``\\n``)."""
    if at == 0:
        return True
    before = text[at - 1]
    if not (before.isalnum() or before == "_"):
        return True
    return at >= 2 and text[at - 2] == "\\" and before in "nrt"


def _mask_span(
    compiled: Compiled, text: str, match: re.Match[str], pieces: list[str], last: int, counter: list[int]
) -> int | None:
    """Append the text before the match's masked part and its label; the new end, or None when
    the match does not count (boundary or check)."""
    start, end = match.span(compiled.masked_group)
    at = match.start()
    if compiled.rule.boundary and not _starts_token(text, at):
        return None
    if compiled.not_after is not None and at and compiled.not_after.match(text, at - 1):
        return None
    if compiled.check is not None and not compiled.check(text[start:end]):
        return None
    pieces.append(text[last:start])
    pieces.append(compiled.rule.label)
    counter[0] += 1
    return end


def apply(compiled: Compiled, text: str, counter: list[int]) -> str:
    """``text`` with every match of one rule's masked part replaced by its label. The search
    resumes right after a masked part, so context a match read after it (a separator) can start
    the next match."""
    regex = compiled.regex
    pieces: list[str] = []
    last = pos = 0
    while (match := regex.search(text, pos)) is not None:
        end = _mask_span(compiled, text, match, pieces, last, counter)
        if end is None:
            pos = match.start() + 1
            continue
        last = end
        pos = max(end, match.start() + 1)
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def apply_anchored(compiled: Compiled, text: str, counter: list[int]) -> str:
    """:func:`apply` for a rule whose matches hold an anchor within ``window`` characters of
    their start: only the window before each anchor is looked at, when it holds one of the rule's
    hints; there the rule's lead (the key name and its ``:``) is found, and the whole pattern
    matched from where it starts."""
    rule, regex, lead = compiled.rule, compiled.regex, compiled.lead
    assert lead is not None
    starts: set[int] = set()
    for anchor in rule.anchors:
        at = text.find(anchor)
        while at != -1:
            low, high = max(0, at - rule.window), at + len(anchor)
            window = fold(text[low:at])
            if any(hint in window for hint in rule.hints_any_case):
                starts.update(m.start() for m in lead.finditer(text, low, high))
            at = text.find(anchor, at + 1)
    if not starts:
        return text
    pieces: list[str] = []
    last = 0
    for p in sorted(starts):
        if p < last:
            continue
        match = regex.match(text, p)
        if match is None:
            continue
        end = _mask_span(compiled, text, match, pieces, last, counter)
        if end is not None:
            last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)
