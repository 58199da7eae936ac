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
from collections.abc import Iterable
from typing import Any

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
_MASK_RE = re.compile(
    r"(?P<key>" + "|".join(_KEY_PATTERNS) + r")"
    r"|(?P<email>[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})"
    r"|(?P<num>(?<![\w.])\+?\(?\d[\d\s().\-]{6,}\d(?!\w|\.\d))"
)
_QUICK = re.compile(r"[@\d]|sk-|AKIA|gh[pousr]_|xox|AIza|eyJ|(?i:bearer)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _norm_key(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


class Sanitizer:
    """Recursively drops secret fields and masks PII; counts what it touched."""

    def __init__(self, drop_fields: Iterable[str] = ()) -> None:
        self._drop = DEFAULT_DROP_KEYS | {_norm_key(f) for f in drop_fields}

    def clean(self, value: Any) -> tuple[Any, int]:
        """Return ``(sanitized copy, number of values dropped or masked)``."""
        counter = [0]
        return self._walk(value, counter), counter[0]

    def mask_text(self, text: str) -> tuple[str, int]:
        counter = [0]
        return self._mask(text, counter), counter[0]

    def _walk(self, value: Any, counter: list[int]) -> Any:
        if isinstance(value, str):
            return self._mask(value, counter)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if isinstance(key, str) and _norm_key(key) in self._drop:
                    counter[0] += 1
                    continue
                out[key] = self._walk(item, counter)
            return out
        if isinstance(value, list | tuple):
            return [self._walk(item, counter) for item in value]
        return value

    @staticmethod
    def _mask(text: str, counter: list[int]) -> str:
        if len(text) < 6 or _QUICK.search(text) is None:
            return text

        def repl(match: re.Match[str]) -> str:
            if match.group("key") is not None:
                counter[0] += 1
                return "<secret>"
            if match.group("email") is not None:
                counter[0] += 1
                return "<email>"
            raw = match.group("num")
            digits = "".join(ch for ch in raw if ch.isdigit())
            if 13 <= len(digits) <= 19 and _luhn_ok(digits):
                counter[0] += 1
                return "<card>"
            if 9 <= len(digits) <= 15:
                counter[0] += 1
                return "<phone>"
            return raw

        return _MASK_RE.sub(repl, text)
