"""Scrubs secrets and PII from a request before anything leaves the prod process.

Two mechanisms, applied recursively to every dict / list / string:

- **drop**: values under secret-bearing keys (authorization, api keys, tokens, passwords,
  cookies, plus configured field names) are removed entirely;
- **mask**: inside strings, e-mail addresses, phone numbers, payment card numbers (Luhn-checked),
  bearer tokens and key-shaped strings (OpenAI/Anthropic ``sk-``, AWS ``AKIA``, GitHub ``ghp_``,
  Slack ``xox?-``, Google ``AIza``, JWTs) are replaced by a placeholder such as ``<email>``.

HTTP headers are never copied into envelopes at all; the hook reads only the few it needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson

DEFAULT_DROP_KEYS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxyauthorization",
        "apikey",
        "xapikey",
        "apitoken",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "token",
        "secret",
        "clientsecret",
        "password",
        "passwd",
        "cookie",
        "setcookie",
        "privatekey",
        "sessiontoken",
        "awssecretaccesskey",
        "bearer",
    }
)

_KEY_PATTERNS = (
    r"(?i:\bbearer\s+)[A-Za-z0-9\-._~+/]{8,}=*",
    r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}",
    r"\b(?:pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",
    r"\bAIza[0-9A-Za-z\-_]{35}",
    r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
)
_KEY_RE = re.compile("|".join(_KEY_PATTERNS))
_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?!\d)")

# When a masking pass can change a text: the one source of these hints. ``_mask`` skips a pass
# whose hint a text lacks, and the comparator's native hot path reads :data:`MASK_GUARD` to decide
# which answers masking certainly leaves alone (it keeps no copy of its own).
MIN_MASKABLE = 6
"""A text shorter than this is never changed."""
KEY_HINTS = ("_", "sk-", "AKIA", "AIza", "xox", "eyJ")
"""Every pattern of ``_KEY_RE`` but the bearer one contains one of these."""
KEY_HINTS_ANY_CASE = ("bearer",)
"""Hints of the case-insensitive key patterns (lowercase ASCII, without ``k`` or ``i``, which the
Kelvin sign and ``İ`` lowercase to)."""
EMAIL_HINT = "@"
DIGIT_RUN = 9
"""Digits in the shortest number the number pass masks (a phone has ≥ 9, a card ≥ 13)."""
DIGIT_JOINERS = "().-"
"""Characters besides whitespace that may join a number's digits."""
MASK_GUARD = (MIN_MASKABLE, (*KEY_HINTS, EMAIL_HINT), KEY_HINTS_ANY_CASE, DIGIT_RUN, DIGIT_JOINERS)
"""All of the above, as ``shadowlane_native.PlainConfig`` takes them."""

# a number: digits and joiners, at least eight characters
_NUM_RE = re.compile(rf"(?<![\w.+(])\+?\(?\d[\d\s{re.escape(DIGIT_JOINERS)}]{{6,}}\d(?![\w:]|\.\d)")
# a run of digits and joiners holding DIGIT_RUN digits, any script's digits (as ``\d`` in _NUM_RE)
_DIGIT_RUN_RE = re.compile(rf"\d(?:[\s{re.escape(DIGIT_JOINERS)}]*\d){{{DIGIT_RUN - 1}}}")
_ASCII_DIGITS = b"0123456789"
_BY_FREQUENCY = "etaoinsrhldcumfpgwybvkxjqz"  # letters, most frequent in English prose first
_SCALARS = frozenset({int, float, bool, type(None)})


def _key_hint_check(hints: tuple[str, ...], any_case: tuple[str, ...]) -> Callable[[str], bool]:
    """``lambda t: any hint in t``, written out as one expression: as fast as a hand-written chain.
    A longer hint is tried only after a scan for one of its characters (``in`` with one character
    is a memchr), the one least likely in prose."""

    def rarest(hint: str) -> str:  # not a letter, else a capital, else the rarest in English
        return max(hint, key=lambda c: (not c.isalpha(), c.isupper(), _BY_FREQUENCY.find(c.lower())))

    terms = [f"{h!r} in t" if len(h) == 1 else f"({rarest(h)!r} in t and {h!r} in t)" for h in hints]
    for hint in any_case:
        if not (hint.isascii() and hint.islower()) or set(hint) & {"k", "i"}:
            raise ValueError(f"case-insensitive hint {hint!r}: lowercase ASCII without k or i")
        first = hint[0]  # only it and its capital lowercase to it
        terms.append(f"(({first!r} in t or {first.upper()!r} in t) and {hint!r} in t.lower())")
    check: Callable[[str], bool] = eval(f"lambda t: {' or '.join(terms)}")  # built from our constants
    return check


_has_key_hint = _key_hint_check(KEY_HINTS, KEY_HINTS_ANY_CASE)


def _may_hold_digit_run(text: str) -> bool:
    """False only when ``text`` cannot hold DIGIT_RUN digits: ASCII text with fewer (counted by
    deleting them from its bytes, ~10x cheaper than searching it with _DIGIT_RUN_RE). Text with
    other scripts may hold their digits, which ``\\d`` also matches: the search decides."""
    if len(text) < DIGIT_RUN:
        return False
    if not text.isascii():
        return True
    return len(text) - len(text.encode().translate(None, _ASCII_DIGITS)) >= DIGIT_RUN


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)  # any script's digit, as \d matches it
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _norm_key(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


# a key whose normalised form ends with one of these is secret-bearing too: openai_api_key,
# db_password, client-secret, x-auth-token, session_cookie, ...
SECRET_KEY_SUFFIXES: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "apikey",
    "token",
    "authorization",
    "cookie",
    "privatekey",
    "accesskey",
    "secretkey",
    "credentials",
)


class _KeyMemo(dict[str, bool]):
    """key -> "is a secret-bearing key", memoised (payload keys repeat endlessly)."""

    def __init__(self, drop: frozenset[str]) -> None:
        super().__init__()
        self._drop = drop

    def __missing__(self, key: str) -> bool:
        norm = _norm_key(key)
        hit = norm in self._drop or norm.endswith(SECRET_KEY_SUFFIXES)
        if len(self) < 4096:
            self[key] = hit
        return hit


# inside a run of several numbers: card-shaped groups first (kept unless Luhn-valid), then phones
_SPLIT_RUN = re.compile(
    r"(?P<card>\d{4}(?:[ \-]?\d{4}){2}[ \-]?\d{1,7}(?!\d))"
    r"|(?P<nanp>(?:\+?1[ .\-]?)?\(?\d{3}\)?[ .\-]?\d{3}[ .\-]?\d{4}(?!\d))"
    r"|(?P<intl>\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}(?!\d))"
)


def _mask_number(raw: str, counter: list[int]) -> str:
    """Classify one run of digits and separators: card, phone, a date (kept), or several numbers."""
    date = _DATE.match(raw)
    if date:  # an ISO date, perhaps followed by a time or by another number: keep the date only
        rest = raw[date.end() :]
        return raw[: date.end()] + _NUM_RE.sub(lambda m: _mask_number(m.group(0), counter), rest)
    digits = "".join(ch for ch in raw if ch.isdigit())
    if 13 <= len(digits) <= 19 and _luhn_ok(digits):
        counter[0] += 1
        return "<card>"
    if 9 <= len(digits) <= 15:
        counter[0] += 1
        return "<phone>"
    if len(digits) > 15:  # several numbers run together: look for cards and phones inside

        def piece(m: re.Match[str]) -> str:
            if m.group("card") is not None:
                if not _luhn_ok("".join(ch for ch in m.group(0) if ch.isdigit())):
                    return m.group(0)
                counter[0] += 1
                return "<card>"
            counter[0] += 1
            return "<phone>"

        return _SPLIT_RUN.sub(piece, raw)
    return raw


class Sanitizer:
    """Recursively drops secret fields and masks PII; counts what it touched."""

    def __init__(self, drop_fields: Iterable[str] = ()) -> None:
        self._drop = DEFAULT_DROP_KEYS | {_norm_key(f) for f in drop_fields}
        self._is_secret_key = _KeyMemo(self._drop)

    def clean(self, value: Any) -> tuple[Any, int]:
        """Return ``(sanitized copy, number of values dropped or masked)``."""
        counter = [0]
        return self._walk(value, counter), counter[0]

    def mask_text(self, text: str) -> tuple[str, int]:
        counter = [0]
        return self._mask(text, counter), counter[0]

    def clean_text(self, text: str) -> tuple[str, int]:
        """Like :meth:`mask_text`, but a JSON object or array inside the text is parsed and
        cleaned (so secret keys are dropped, not only masked) and written back compactly."""
        stripped = text.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict | list):
                cleaned, count = self.clean(parsed)
                return orjson.dumps(cleaned).decode(), count
        return self.mask_text(text)

    def _walk(self, value: Any, counter: list[int]) -> Any:
        kind = type(value)  # the JSON types by identity first (cheaper); subclasses by isinstance
        if kind is str:
            return self._mask(value, counter)
        if kind in _SCALARS:
            return value
        if kind is dict or isinstance(value, dict):
            secret = self._is_secret_key
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if isinstance(key, str) and secret[key]:
                    counter[0] += 1
                    continue
                out[key] = self._walk(item, counter)
            return out
        if kind is list or isinstance(value, list | tuple):
            return [self._walk(item, counter) for item in value]
        if isinstance(value, str):
            return self._mask(value, counter)
        return value

    @staticmethod
    def _mask(text: str, counter: list[int]) -> str:
        """Mask in three passes, each skipped unless a cheap substring check says it can match
        (every key pattern contains one of the hints tested first; most prose contains none)."""
        if len(text) < MIN_MASKABLE:
            return text
        if _has_key_hint(text):
            text, n = _KEY_RE.subn("<secret>", text)
            counter[0] += n
        if EMAIL_HINT in text:
            text, n = _EMAIL_RE.subn("<email>", text)
            counter[0] += n
        if _may_hold_digit_run(text) and _DIGIT_RUN_RE.search(text) is not None:
            text = _NUM_RE.sub(lambda m: _mask_number(m.group(0), counter), text)
        return text
