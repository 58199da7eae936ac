"""Scrubs secrets and PII from what the hook captured, before anything leaves the prod process.

Two mechanisms, applied recursively to every dict / list / string:

- **drop**: values under secret-bearing keys (authorization, api keys, tokens, passwords,
  cookies, plus configured field names) are removed entirely;
- **mask**: inside strings, what a rule of :mod:`shadowlane.sanitize.rules` matches is replaced by
  its class label (``<email>``, ``<phone>``, ``<card>``, ``<ssn>``, ``<iban>``, ``<ip>``,
  ``<private-key>``, ``<url-credentials>``, ``<secret>``).

A rule runs on a text only when the text holds one of the rule's hints (or its digits); most
prose holds none. :data:`MASK_GUARD` hands the same hints to the comparator's native hot path,
which uses them to know which answers masking certainly leaves alone (it keeps no copy).

The rules and the walk here are the reference. When the ``shadowlane_native`` extension is
installed and chosen (``path``, :mod:`shadowlane.native_path`), its ``MaskEngine`` walks the
payload and runs the same rules, read from the same compiled data (named checks are these Python
functions, called on a match), on the texts it takes: ASCII ones; any other text is masked here.
Tests hold the two paths equal.

HTTP headers are never copied into envelopes at all; the hook reads only the few it needs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from shadowlane.native_path import NativePath, use_native
from shadowlane.sanitize.matching import (
    SHAPE,
    apply,
    apply_anchored,
    compile_rule,
    digit_runs,
    fold,
    has_digit_run,
)
from shadowlane.sanitize.rules import RULES, Rule

if TYPE_CHECKING:
    from shadowlane_native import MaskEngine

DEFAULT_DROP_KEYS: frozenset[str] = frozenset({"bearer", "auth", "sid", "sessionid"})
"""Normalised keys dropped besides those ending with a :data:`SECRET_KEY_SUFFIXES` entry."""

# a key whose normalised form ends with one of these is secret-bearing too: openai_api_key,
# db_password, client-secret, x-auth-token, session_cookie, ...
SECRET_KEY_SUFFIXES: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "apikey",
    "token",
    "authorization",
    "cookie",
    "privatekey",
    "accesskey",
    "secretkey",
    "signingkey",
    "encryptionkey",
    "accountkey",
    "credential",
    "credentials",
    "connectionstring",
    "signature",
)

MEMO_SIZE = 512
"""Texts whose masking a sanitizer remembers (at most :data:`MEMO_MAX_CHARS` characters each)."""
MEMO_MAX_CHARS = 4096
MIN_MASKABLE = 6
"""A text shorter than this is never changed (no rule matches fewer characters)."""
_SCALARS = frozenset({int, float, bool, type(None)})


def _norm_key(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


def is_secret_key(key: str, drop: frozenset[str] = DEFAULT_DROP_KEYS) -> bool:
    """Whether ``key`` (a field or header name) bears secrets: its normalised form is in ``drop``
    or ends with a :data:`SECRET_KEY_SUFFIXES` entry."""
    norm = _norm_key(key)
    return norm in drop or norm.endswith(SECRET_KEY_SUFFIXES)


class _KeyMemo(dict[str, bool]):
    """key -> "is a secret-bearing key", memoised (payload keys repeat endlessly)."""

    def __init__(self, drop: frozenset[str]) -> None:
        super().__init__()
        self._drop = drop

    def __missing__(self, key: str) -> bool:
        hit = is_secret_key(key, self._drop)
        if len(self) < 4096:
            self[key] = hit
        return hit


def _guard(rules: Sequence[Rule]) -> tuple[int, list[str], list[str], list[str], list[tuple[int, str]]]:
    for rule in rules:
        if not (rule.hints or rule.hints_any_case or rule.digits[0]):
            raise ValueError(f"rule {rule.name} has no hint: it would run on every text")
        if rule.hints_any_case and not rule.pattern.startswith("(?ai)"):
            raise ValueError(f"rule {rule.name}: case-insensitive hints need an ASCII-only pattern, (?ai)")
        for hint in rule.hints_any_case:
            if not (hint.isascii() and hint == hint.lower()):
                raise ValueError(f"rule {rule.name}: case-insensitive hint {hint!r} is not lowercase ASCII")
    hints = sorted({h for r in rules for h in r.hints})
    # every case-insensitive rule folds ASCII case only, so its hints are matched the same way
    ascii_fold = sorted({h for r in rules for h in r.hints_any_case})
    runs = sorted({r.digits for r in rules if r.digits[0]})
    return MIN_MASKABLE, hints, [], ascii_fold, runs


MASK_GUARD = _guard(RULES)
"""``(fewest characters masking changes, hints, hints matched ignoring case like ``str.lower()``
(none: every case-insensitive rule folds ASCII case only), hints matched ignoring ASCII case,
[(digits, joiners), ...])``: a text holding none of the hints and none of the digit runs is never
changed. ``shadowlane_native.PlainConfig`` takes it."""


class Sanitizer:
    """Recursively drops secret fields and masks PII; counts what it touched."""

    def __init__(
        self,
        drop_fields: Iterable[str] = (),
        *,
        rules: Sequence[Rule] = RULES,
        strict: Iterable[str] | None = None,
        salt: str = "",
        path: NativePath = "auto",
        path_setting: str = "hook.native_path",
    ) -> None:
        """``strict``: the keys whose text values are kept (masked); every other text value, and
        every text given to :meth:`mask_text` or :meth:`clean_text`, becomes its salted hash.
        ``path``: whether the native engine runs (``auto``: when installed); ``native`` without
        the extension is a :class:`~shadowlane.errors.ConfigError` naming ``path_setting``."""
        self._strict = frozenset(strict) if strict is not None else None
        self._salt = salt.encode()
        self._drop = DEFAULT_DROP_KEYS | {_norm_key(f) for f in drop_fields}
        self._is_secret_key = _KeyMemo(self._drop)
        _guard(rules)  # refuses a rule without hints
        self._rules = tuple(compile_rule(rule) for rule in rules)
        by_trigger: dict[str, set[int]] = {}
        for index, compiled in enumerate(self._rules):
            for char in compiled.triggers:
                by_trigger.setdefault(char, set()).add(index)
        self._by_trigger = tuple((char, frozenset(ix)) for char, ix in by_trigger.items())
        self._digit_rules = tuple(
            (c.rule.digits[0], i) for i, c in enumerate(self._rules) if c.rule.digits[0]
        )
        self._digit_needs = tuple(sorted({need for need, _ in self._digit_rules}, reverse=True))
        self._digit_joiners = "".join(sorted({c for r in rules for c in r.digits[1]} - {" "}))
        self._memo: dict[str, tuple[str, int]] = {}
        self._engine: MaskEngine | None = None
        if use_native(path, path_setting):
            from shadowlane_native import MaskEngine

            self._engine = MaskEngine(
                list(self._rules),
                [(char, sorted(ix)) for char, ix in self._by_trigger],
                list(self._digit_rules),
                list(self._digit_needs),
                self._digit_joiners,
                MIN_MASKABLE,
            )

    @property
    def native(self) -> bool:
        """Whether the native engine runs this sanitizer's masking."""
        return self._engine is not None

    def clean(self, value: Any) -> tuple[Any, int]:
        """Return ``(sanitized copy, number of values dropped or masked)``."""
        counter = [0]
        if self._strict is not None:  # a text with no key above it is free text
            return self._walk_strict(value, counter), counter[0]
        return self._walk_top(value, counter), counter[0]

    def _walk_top(self, value: Any, counter: list[int]) -> Any:
        """:meth:`_walk` of a whole payload: by the native engine when it runs (texts it does not
        take come back to :meth:`_mask_python`)."""
        if self._engine is None or self._strict is not None:
            return self._walk(value, counter)
        out, count = self._engine.clean(value, self._is_secret_key, self._mask_python, self._walk_python)
        counter[0] += count
        return out

    def _mask_python(self, text: str) -> tuple[str, int]:
        counter = [0]
        return self._mask_memo(text, counter), counter[0]

    def _walk_python(self, value: Any) -> tuple[Any, int]:
        counter = [0]
        return self._walk(value, counter), counter[0]

    def mask_text(self, text: str) -> tuple[str, int]:
        counter = [0]
        if self._strict is not None:
            return self._hashed(text, counter), counter[0]
        return self._mask(text, counter), counter[0]

    def mask_id(self, text: str) -> tuple[str, int]:
        """An identifier (a passage or cited id, a served pin value) masked by the rules alone,
        never hashed, in strict mode too: an id quoting a key or an e-mail does not leave, and
        the comparator's own sanitizer masks the candidate's ids to the same text."""
        counter = [0]
        return self._mask(text, counter), counter[0]

    def secret_key(self, key: str) -> bool:
        """Whether values under ``key`` are secret-bearing for this sanitizer (its drop fields
        included): the rule that drops them everywhere it walks."""
        return self._is_secret_key[key]

    def _hashed(self, text: str, counter: list[int]) -> str:
        """Strict mode: a free text becomes a salted hash of its masked form (equal texts stay
        equal, nothing of them is readable). Only a blank text is kept as it is."""
        if not text.strip():
            return text
        masked = self._mask(text, counter)
        counter[0] += 1
        digest = hashlib.blake2b(masked.encode(), digest_size=8, key=self._salt[:64]).hexdigest()
        return f"<text:{digest}>"

    def clean_text(self, text: str) -> tuple[str, int]:
        """Like :meth:`mask_text`, but JSON inside the text (the whole text, or an object that
        starts mid-text, as in ``Result: {...}``) is parsed and cleaned, so secret keys are
        dropped, not only masked, and written back compactly."""
        start = _json_start(text)
        if self._strict is not None and start is None:
            counter = [0]
            return self._hashed(text, counter), counter[0]
        if start is not None:
            try:
                parsed, end = _DECODER.raw_decode(text, start)
            except ValueError:
                parsed, end = None, start
            if isinstance(parsed, dict | list):
                counter = [0]
                free = self._mask if self._strict is None else self._hashed
                head = free(text[:start], counter) if start else ""
                body = orjson.dumps(self._walk_top(parsed, counter)).decode()
                tail = free(text[end:], counter) if end < len(text) else ""
                return head + body + tail, counter[0]
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
            strict = self._strict
            for key, item in value.items():
                if isinstance(key, str) and secret[key]:
                    counter[0] += 1
                    continue
                if strict is not None and key not in strict:
                    out[key] = self._walk_strict(item, counter)
                else:
                    out[key] = self._walk(item, counter)
            return out
        if kind is list or isinstance(value, list | tuple):
            return [self._walk(item, counter) for item in value]
        if isinstance(value, str):
            return self._mask(value, counter)
        return value

    def _walk_strict(self, value: Any, counter: list[int]) -> Any:
        """A value under a key strict mode does not keep: its texts hashed, its containers walked."""
        if isinstance(value, str):
            return self._hashed(value, counter)
        if isinstance(value, list | tuple):
            return [self._walk_strict(item, counter) for item in value]
        return self._walk(value, counter)

    def _mask(self, text: str, counter: list[int]) -> str:
        """One text masked: by the native engine when it runs and takes the text, else by
        :meth:`_mask_memo`."""
        if self._engine is not None:
            native = self._engine.mask(text)
            if native is not None:
                counter[0] += native[1]
                return native[0]
        return self._mask_memo(text, counter)

    def _mask_memo(self, text: str, counter: list[int]) -> str:
        """:meth:`_run_rules`, remembered for texts that come back (system prompts, tool
        descriptions: most requests repeat them word for word)."""
        if len(text) < MIN_MASKABLE:
            return text
        if len(text) > MEMO_MAX_CHARS:
            return self._run_rules(text, counter)
        memo = self._memo
        known = memo.get(text)
        if known is None:
            count = [0]
            known = (self._run_rules(text, count), count[0])
            if len(memo) >= MEMO_SIZE:
                memo.clear()  # cheaper than tracking use; a busy prompt is back after one miss
            memo[text] = known
        counter[0] += known[1]
        return known[0]

    def _run_rules(self, text: str, counter: list[int]) -> str:
        """Run every rule whose hints (or digits) the text holds, in order. Which rules to
        consider is decided once per text: one ``in`` per trigger character, and one count of
        its digit runs."""
        todo = self._todo(text)
        if not todo:
            return text
        rules = self._rules
        folded: str | None = None
        shape: bytes | None = None
        for index in sorted(todo):
            compiled = rules[index]
            rule = compiled.rule
            if rule.digits[0]:
                if rule.shapes and text.isascii():
                    if shape is None:
                        shape = text.encode().translate(SHAPE)
                    if not any(pattern in shape for pattern in rule.shapes):
                        continue
                if not has_digit_run(text, *rule.digits):
                    continue
            elif rule.hints_any_case:  # every match holds one (for an anchored rule: in its window)
                if folded is None:
                    folded = fold(text)
                if not any(h in folded for h in rule.hints_any_case):
                    continue
            # a rule with case-sensitive hints starts with them: its search is the hint check
            if rule.anchors:
                masked = apply_anchored(compiled, text, counter)
            else:
                masked = apply(compiled, text, counter)
            if masked is not text:
                text, folded, shape = masked, None, None
        return text

    def _todo(self, text: str) -> set[int]:
        """The rules a text may need, by index: those whose trigger character it holds, and the
        digit rules whose run is not longer than its longest one."""
        todo: set[int] = set()
        for char, indexes in self._by_trigger:
            if char in text:
                todo |= indexes
        longest = digit_runs(text, self._digit_needs, self._digit_joiners) if self._digit_rules else 0
        if longest:
            for need, index in self._digit_rules:
                if need <= longest:
                    todo.add(index)
        return todo


_DECODER = json.JSONDecoder()
_JSON_OPENERS = re.compile(r"[\[{]\s*[\"\[{]")


def _json_start(text: str) -> int | None:
    """Where a JSON object or array starts in ``text`` (the whole text, or mid-text), if any."""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        return len(text) - len(stripped)
    found = _JSON_OPENERS.search(text)
    return found.start() if found else None
