"""What the sanitizer masks inside text: its rules, as data.

Each :class:`Rule` is a pattern, the class label that replaces what it matches (``<email>``,
``<secret>``, ...), the literal hints of which every match holds one (a text holding none skips
the rule: most prose holds none), and optionally a named check the match must pass (Luhn for
cards, ISO 13616 mod-97 for IBANs, an entropy floor for values of ambiguous keys). Patterns use
no look-around and no back-references, so a native matcher with RE2 semantics can run the same
rules; a group named ``s`` marks the part that is masked (the rest of the match is context).

The secret shapes follow the public rule lists of gitleaks and detect-secrets (prefixes and
lengths of provider tokens); ``docs/sanitizer.md`` lists what is caught and what is not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

AI = "(?ai)"
"""Patterns that fold ASCII case only (``(?ai)``): their hints may hold ``k`` or ``i``."""


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    label: str
    pattern: str
    hints: tuple[str, ...] = ()
    """Case-sensitive literals: every match holds one."""
    hints_any_case: tuple[str, ...] = ()
    """Lowercase ASCII literals, matched ignoring ASCII case: every match holds one."""
    digits: tuple[int, str] = (0, "")
    """``(n, joiners)``: every match holds ``n`` digits joined only by whitespace and ``joiners``."""
    check: str | None = None
    """Name of a function in :data:`CHECKS` the masked part must pass."""
    shapes: tuple[bytes, ...] = ()
    """For ASCII text: every match holds one of these in the text's shape (its digits written
    ``0``, its capitals ``A``), e.g. ``0.0`` for an IPv4 address."""
    not_after: str = ""
    """A character class: the character before a match (if any) must not be in it."""
    boundary: bool = False
    """The match must start a token: at the start of the text, after a character that is not a
    letter, digit or ``_``, or after a JSON escape written out (``\\n``), as in logs."""
    anchors: tuple[str, ...] = ()
    """Case-sensitive literals of which every match holds one within ``window`` characters of its
    start (the ``:`` or ``=`` after a key name): the engine only looks just before them."""
    window: int = 0
    lead: str = ""
    """With anchors: the pattern's first part, which ends with the anchor (the key name and the
    ``:``); the engine finds it in the window, then matches the whole pattern from there."""

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern)


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)  # any script's digit, as \d matches it
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(text: str) -> bool:
    digits = "".join(ch for ch in text if ch.isdigit())
    grouped = len(digits) != len(text)
    # 13 plain digits are far more often an EAN-13 or an epoch in ms than an old 13-digit card
    return (grouped or len(digits) >= 14) and 13 <= len(digits) <= 19 and luhn(digits)


def _iban(text: str) -> bool:
    """ISO 13616: the check digits hold (mod 97), and, as in every national format, four digits
    follow each other somewhere (which the rule's digit count relies on)."""
    compact = "".join(text.split()).upper()
    if not re.search(r"[0-9]{4}", compact):
        return False
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _ssn(text: str) -> bool:
    digits = "".join(ch for ch in text if ch.isdigit())
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character."""
    if not text:
        return 0.0
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _secret_value(text: str) -> bool:
    """A value under an ambiguous key (token, key, auth) is a secret when it looks random: long
    enough, and varied (entropy), or a mix of letters and digits."""
    if len(text) < 8:
        return False
    has_digit = any(ch.isdigit() for ch in text)
    has_alpha = any(ch.isalpha() for ch in text)
    return entropy(text) >= 3.3 or (len(text) >= 12 and has_digit and has_alpha)


def _password_like(text: str) -> bool:
    """A word said to be a password is one when it is not a plain word: it has a digit, a symbol
    or mixed case ("the password is changed" keeps its "changed")."""
    return any(not ch.isalpha() for ch in text) or (text != text.lower() and text != text.upper())


_LITERALS = frozenset({"true", "false", "null", "none", "undefined", "nil", "<secret>", "redacted"})


def _assigned(text: str) -> bool:
    """A value assigned to a secret-bearing name, unless it is a literal (``"passwordless": true``)
    or a reference to where the secret lives (``os.environ[...]``, ``${VAR}``)."""
    low = text.lower()
    return low not in _LITERALS and not low.startswith(("os.environ", "env.", "process.env", "$"))


def _ipv4(text: str) -> bool:
    return all(int(part) <= 255 for part in text.split("."))


CHECKS: dict[str, Callable[[str], bool]] = {
    "ipv4": _ipv4,
    "assigned": _assigned,
    "password_like": _password_like,
    "card": _card,
    "iban": _iban,
    "ssn": _ssn,
    "secret_value": _secret_value,
}

_STRONG_KEYS = (
    r"password|passwd|passphrase|passcode|pwd|secret|private[_\-. ]?key|api[_\-. ]?key"
    r"|access[_\-. ]?key|credentials?|access[_\-. ]?token|auth[_\-. ]?token|refresh[_\-. ]?token"
    r"|id[_\-. ]?token|session[_\-. ]?token|bearer[_\-. ]?token|account[_\-. ]?key"
    r"|conn(?:ection)?[_\-. ]?string|signing[_\-. ]?key|encryption[_\-. ]?key"
)
_KEY_TAIL = r"[a-z0-9_\-.]{0,24}"
_ASSIGN = r"""\\?["'`]?[ \t]{0,8}(?:[:=]|=>)"""
# the longest key name (22) and tail (24), a backslash, a quote and 8 blanks: an anchor (``:`` or
# ``=``) lies within this many characters of a match's start
_KEY_WINDOW = 64
# the value, quoted or not, up to a space, a quote or punctuation that ends it
_VALUE = r"""\\?["'`]?(?P<s>[^\s"'`,;<>(){}\[\]\\]{4,})"""
_EMAIL_CHAR = r"[^\s@<>()\[\]{},;:\"'\\/|=`*"
_PHONE_WORDS = r"phone|tel|mobile|cell|call|fax|sms|whatsapp|ring|reach"


def _token(name: str, pattern: str, *hints: str) -> Rule:
    """A provider token: a literal prefix and its body, starting a token."""
    return Rule(name, "<secret>", pattern, hints=hints, boundary=True)


def _assignment(name: str, lead: str, hints: tuple[str, ...], check: str) -> Rule:
    """``key = value`` in prose or JSON: the key name and its ``:`` or ``=`` (``lead``), the value."""
    return Rule(
        name,
        "<secret>",
        lead + r"\s*" + _VALUE,
        hints_any_case=hints,
        check=check,
        anchors=(":", "="),
        window=_KEY_WINDOW,
        lead=lead,
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "private-key-block",
        "<private-key>",
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\:,\-]*)",
        hints=("-----BEGIN",),
    ),
    Rule(
        "url-credentials",
        "<url-credentials>",
        r"://(?P<s>[^\s:/?#@\"'<>]+:[^\s/?#@\"'<>]+)@",
        hints=("://",),
    ),
    Rule(
        "bearer",
        "<secret>",
        AI + r"bearer\s+(?P<s>[a-z0-9\-._~+/]{8,}=*)",
        hints_any_case=("bearer",),
        boundary=True,
    ),
    _token("openai-anthropic-key", r"sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}", "sk-"),
    _token("stripe-key", r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}", "_live_", "_test_"),
    _token("stripe-webhook-secret", r"whsec_[A-Za-z0-9]{24,}", "whsec_"),
    Rule(
        "aws-access-key-id",
        "<secret>",
        r"(?P<s>(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16})(?:$|[^0-9A-Za-z])",
        hints=("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "ANPA"),
        boundary=True,
    ),
    _token("github-token", r"gh[pousr]_[A-Za-z0-9]{30,}", "ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    _token("github-fine-grained-token", r"github_pat_[A-Za-z0-9_]{22,}", "github_pat_"),
    _token("gitlab-token", r"gl(?:pat|ptt|dt|rt)-[A-Za-z0-9_\-]{20,}", "glpat-", "glptt-", "gldt-", "glrt-"),
    _token("slack-token", r"xox[abposre]-[A-Za-z0-9\-]{10,}", "xox"),
    Rule(
        "slack-webhook",
        "<secret>",
        r"hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/\-]{20,}",
        hints=("hooks.slack.com",),
    ),
    _token("google-api-key", r"AIza[0-9A-Za-z_\-]{35}", "AIza"),
    _token("npm-token", r"npm_[A-Za-z0-9]{36}", "npm_"),
    _token("huggingface-token", r"hf_[A-Za-z0-9]{30,}", "hf_"),
    _token("sendgrid-key", r"SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}", "SG."),
    Rule(
        "twilio-key",
        "<secret>",
        r"(?P<s>SK[0-9a-f]{32})(?:$|[^0-9A-Za-z])",
        hints=("SK",),
        boundary=True,
    ),
    _token("jwt", r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", "eyJ"),
    _assignment(
        "secret-assignment",
        AI + r"(?:" + _STRONG_KEYS + r")" + _KEY_TAIL + _ASSIGN,
        ("passw", "passp", "passc", "pwd", "secret", "key", "credential", "token", "conn"),
        "assigned",
    ),
    Rule(
        "password-phrase",
        "<secret>",
        AI + r"(?:password|passcode|passphrase) (?:is|was) " + _VALUE,
        hints_any_case=("passw", "passc", "passp"),
        check="password_like",
        boundary=True,
        anchors=(" is ", " was "),
        window=11,
        lead=AI + r"(?:password|passcode|passphrase) (?:is|was) ",
    ),
    _assignment(
        "token-assignment",
        AI + r"(?:token|auth|sid|session|signature)" + _KEY_TAIL + _ASSIGN,
        ("token", "auth", "sid", "session", "signature"),
        "secret_value",
    ),
    Rule(
        "email",
        "<email>",
        r"(?P<s>" + _EMAIL_CHAR + r"]+@" + _EMAIL_CHAR + r".]+(?:\." + _EMAIL_CHAR + r".]+)*\.[^\W\d_]{2,})",
        hints=("@",),
    ),
    Rule(
        "iban",
        "<iban>",
        r"(?P<s>[A-Z][A-Z][0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)(?:$|[^A-Za-z0-9])",
        not_after="[A-Za-z0-9]",
        digits=(4, ""),
        shapes=(b"AA00",),
        check="iban",
    ),
    Rule(
        "ipv4",
        "<ip>",
        r"(?P<s>[0-9][0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})(?:$|[^0-9.]|\.(?:$|[^0-9]))",
        not_after="[0-9.]",
        digits=(4, "."),
        shapes=(b"0.0",),
        check="ipv4",
    ),
    Rule(
        "ssn",
        "<ssn>",
        r"(?P<s>[0-9]{3}[- ][0-9]{2}[- ][0-9]{4})(?:$|[^0-9\-])",
        not_after="[0-9-]",
        digits=(9, "-"),
        check="ssn",
    ),
    Rule(
        "ssn-labelled",
        "<ssn>",
        AI + r"(?:ssn|social security(?: number| no\.?)?)\W{0,4}(?P<s>[0-9]{9})(?:$|[^0-9])",
        digits=(9, ""),
        check="ssn",
    ),
    Rule(
        "card",
        "<card>",
        r"(?P<s>\d{4}(?:[ \-]?\d{4}){2}[ \-]?\d{1,7}|\d{4}[ \-]?\d{6}[ \-]?\d{5})(?:$|[^\d])",
        not_after=r"[\d-]",
        digits=(9, " -"),
        check="card",
    ),
    Rule(
        "phone-international",
        "<phone>",
        r"(?P<s>\+\d(?:[ .\-()]{0,2}\d){8,14})(?:$|[^\d])",
        not_after=r"[\w+]",
        digits=(9, " .-()"),
    ),
    Rule(
        "phone-nanp",
        "<phone>",
        r"(?P<s>(?:1[ .\-]?)?(?:\(\d{3}\)\s?|\d{3}[ .\-])\d{3}[ .\-]\d{4})(?:$|[^\d\-]|-(?:$|\D)|\.(?:$|\D))",
        not_after=r"[\w+\-.]",
        digits=(9, " .-()"),
    ),
    Rule(
        "phone-labelled",
        "<phone>",
        r"(?i)(?:" + _PHONE_WORDS + r")[^\d\n]{0,12}?(?P<s>\+?\d(?:[ .\-()]*\d){8,14})(?:$|[^\d])",
        not_after="[A-Za-z]",
        digits=(9, " .-()+"),
    ),
)
"""In the order they run: a text masked by an earlier rule is what the later ones see."""
