"""A seeded corpus of planted secrets and PII, and of harmless look-alikes, for scanning what the
hook lets out.

:func:`secrets` yields :class:`Planted` items: a type (35 of them), a format (at least 3 per
type: bare, prose ``key = value``, JSON inside text, URL, ...), the secret text itself (what must
never appear, in whole or as any 8-character piece) and the class label its mask must carry
(``None`` where the format puts it under a secret-bearing key, which is dropped, not masked).
:func:`harmless` yields texts that must come out unchanged: ids, ISBNs, EANs, timestamps, UUIDs,
versions, prices, code snippets, number ranges. Values are random but fixed by the seed.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

LEAK_WINDOW = 8
"""A leak is any substring of a planted secret this long found in the output."""


@dataclass(frozen=True)
class Planted:
    kind: str
    form: str
    text: str  # the sentence or snippet that carries the secret
    secret: str  # what must not get out
    label: str | None  # the mask that must replace it; None when a secret-bearing key drops it


def leaked(secret: str, output: str) -> bool:
    """Whether ``output`` holds ``secret`` or any :data:`LEAK_WINDOW`-character piece of it."""
    if len(secret) <= LEAK_WINDOW:
        return secret in output
    return any(secret[i : i + LEAK_WINDOW] in output for i in range(len(secret) - LEAK_WINDOW + 1))


def json_escaped(text: str) -> str:
    """``text`` as it appears inside a JSON string (newlines, quotes and backslashes escaped)."""
    return orjson.dumps(text).decode()[1:-1]


def leaked_in_json(secret: str, output: str) -> bool:
    """:func:`leaked`, for output that is JSON: the secret as written or as a JSON string holds it."""
    return leaked(secret, output) or leaked(json_escaped(secret), output)


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _lower(rng: random.Random, n: int) -> str:
    return _chars(rng, string.ascii_lowercase, n)


ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
HEX = "0123456789abcdef"


def _luhn_complete(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + _chars(rng, string.digits, length - len(prefix) - 1)
    for check in string.digits:
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def _iban(rng: random.Random, country: str, bban_len: int) -> str:
    bban = _chars(rng, string.digits, bban_len)
    moved = bban + country + "00"
    number = int("".join(str(int(ch, 36)) for ch in moved))
    return f"{country}{98 - number % 97:02d}{bban}"


def _grouped(text: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(text[i : i + size] for i in range(0, len(text), size))


Maker = Callable[[random.Random], str]
Formats = list[tuple[str, str, str | None]]  # (form, template with {s}, label or None: dropped)


def _token_forms(label: str = "<secret>") -> Formats:
    return [
        ("bare", "here is the credential {s} for the job", label),
        ("prose", "I set it to {s}. Please check the deploy.", label),
        ("json-in-text", 'Result: {{"note": "{s}", "ok": true}}', label),
        ("escaped-newline", "log line one\\n{s}\\nlog line two", label),
    ]


def _kv_forms(key_variants: list[str]) -> Formats:
    a, b, c = (key_variants * 3)[:3]
    return [
        ("prose-equals", f"config: {a}={{s}} (rotate it)", "<secret>"),
        ("prose-colon", f"Here you go, {b}: {{s}}", "<secret>"),
        ("json-in-text", f'Result: {{{{"{c}": "{{s}}", "user": "bob"}}}}', None),
        ("escaped-json", f'{{{{\\"{a}\\": \\"{{s}}\\"}}}}', "<secret>"),
    ]


def _types() -> dict[str, tuple[Maker, Formats]]:
    pii_email: Formats = [
        ("prose", "mail me at {s} please", "<email>"),
        ("angle", "From: Someone <{s}>", "<email>"),
        ("json-in-text", 'contact: {{"who": "{s}"}}', "<email>"),
    ]
    return {
        "openai-project-key": (lambda r: "sk-proj-" + _chars(r, ALNUM + "_-", 40), _token_forms()),
        "openai-legacy-key": (lambda r: "sk-" + _chars(r, ALNUM, 48), _token_forms()),
        "anthropic-key": (lambda r: "sk-ant-api03-" + _chars(r, ALNUM + "_-", 60), _token_forms()),
        "aws-access-key-id": (
            lambda r: "AKIA" + _chars(r, string.ascii_uppercase + string.digits, 16),
            _token_forms(),
        ),
        "aws-secret-access-key": (
            lambda r: _chars(r, B64, 40),
            [
                ("prose-equals", "aws_secret_access_key={s}", "<secret>"),
                ("prose-spaced", "AWS secret access key: {s}", "<secret>"),
                ("json-in-text", 'creds {{"aws_secret_access_key": "{s}"}}', None),
            ],
        ),
        "github-classic-token": (lambda r: "ghp_" + _chars(r, ALNUM, 36), _token_forms()),
        "github-fine-grained-token": (lambda r: "github_pat_" + _chars(r, ALNUM + "_", 82), _token_forms()),
        "gitlab-token": (lambda r: "glpat-" + _chars(r, ALNUM + "_-", 20), _token_forms()),
        "slack-bot-token": (
            lambda r: (
                f"xoxb-{_chars(r, string.digits, 12)}-{_chars(r, string.digits, 13)}-{_chars(r, ALNUM, 24)}"
            ),
            _token_forms(),
        ),
        "slack-webhook": (
            lambda r: (
                f"hooks.slack.com/services/T{_chars(r, ALNUM, 8)}/B{_chars(r, ALNUM, 8)}/"
                + _chars(r, ALNUM, 24)
            ),
            [
                ("url", "post to https://{s} when done", "<secret>"),
                ("prose", "webhook is https://{s}", "<secret>"),
                ("json-in-text", 'cfg {{"url": "https://{s}"}}', "<secret>"),
            ],
        ),
        "stripe-secret-key": (lambda r: "sk_live_" + _chars(r, ALNUM, 99), _token_forms()),
        "stripe-restricted-key": (lambda r: "rk_live_" + _chars(r, ALNUM, 99), _token_forms()),
        "stripe-publishable-key": (lambda r: "pk_test_" + _chars(r, ALNUM, 99), _token_forms()),
        "stripe-webhook-secret": (lambda r: "whsec_" + _chars(r, ALNUM, 32), _token_forms()),
        "google-api-key": (lambda r: "AIza" + _chars(r, ALNUM + "_-", 35), _token_forms()),
        "jwt": (
            lambda r: (
                "eyJ" + _chars(r, ALNUM, 30) + "." + _chars(r, ALNUM, 40) + "." + _chars(r, ALNUM + "_-", 43)
            ),
            _token_forms(),
        ),
        "bearer-token": (
            lambda r: _chars(r, ALNUM + "._-", 32),
            [
                ("header-line", "Authorization: Bearer {s}", "<secret>"),
                ("prose", "use bearer {s} for the call", "<secret>"),
                ("upper", "BEARER {s}", "<secret>"),
            ],
        ),
        "pem-private-key": (
            lambda r: "\n".join(_chars(r, B64, 64) for _ in range(4)),
            [
                (
                    "rsa",
                    "-----BEGIN RSA PRIVATE KEY-----\n{s}\n-----END RSA PRIVATE KEY-----",
                    "<private-key>",
                ),
                (
                    "openssh",
                    "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\n{s}\n-----END OPENSSH PRIVATE KEY-----\n",
                    "<private-key>",
                ),
                ("truncated", "-----BEGIN PRIVATE KEY-----\n{s}", "<private-key>"),
            ],
        ),
        "npm-token": (lambda r: "npm_" + _chars(r, ALNUM, 36), _token_forms()),
        "huggingface-token": (lambda r: "hf_" + _chars(r, ALNUM, 34), _token_forms()),
        "sendgrid-key": (
            lambda r: "SG." + _chars(r, ALNUM + "_-", 22) + "." + _chars(r, ALNUM + "_-", 43),
            _token_forms(),
        ),
        "twilio-api-key": (lambda r: "SK" + _chars(r, HEX, 32), _token_forms()),
        "password": (
            lambda r: _chars(r, ALNUM + "!#%&*", 14),
            [
                *_kv_forms(["password", "Password", "db_password"]),
                ("phrase", "my password is {s}", "<secret>"),
            ],
        ),
        "client-secret": (
            lambda r: _chars(r, ALNUM, 32),
            _kv_forms(["client_secret", "clientSecret", "client-secret"]),
        ),
        "api-key": (lambda r: _chars(r, ALNUM, 32), _kv_forms(["apiKey", "api_key", "API-Key"])),
        "private-key-value": (
            lambda r: _chars(r, B64, 44),
            _kv_forms(["private_key", "privateKey", "private-key"]),
        ),
        "access-token": (
            lambda r: "ya29." + _chars(r, ALNUM + "_-", 40),
            _kv_forms(["access-token", "access_token", "accessToken"]),
        ),
        "session-value": (lambda r: _chars(r, ALNUM, 26), _kv_forms(["auth", "sid", "signature"])),
        "url-credentials": (
            lambda r: f"{_chars(r, string.ascii_lowercase, 6)}:{_chars(r, ALNUM, 16)}",
            [
                ("localhost", "DATABASE_URL=postgres://{s}@localhost:5432/app", "<url-credentials>"),
                ("bare-ip", "redis at redis://{s}@10.1.2.3:6379/0", "<url-credentials>"),
                ("short-host", "mysql://{s}@pg-prod/db is the DSN", "<url-credentials>"),
                ("dotted", "clone https://{s}@git.example.com/repo.git", "<url-credentials>"),
            ],
        ),
        "email": (
            lambda r: f"{_lower(r, 7)}.{_lower(r, 5)}@{_lower(r, 8)}.com",
            pii_email,
        ),
        "email-non-ascii": (
            lambda r: f"jörg.{_lower(r, 6)}@müller-{_lower(r, 5)}.de",
            pii_email,
        ),
        "phone-us": (
            lambda r: f"{r.randint(201, 989)}-{r.randint(200, 999)}-{r.randint(1000, 9999)}",
            [
                ("dashed", "call {s} now", "<phone>"),
                ("prose", "My number is {s}.", "<phone>"),
                ("json-in-text", 'contact {{"phone": "{s}"}}', "<phone>"),
            ],
        ),
        "phone-international": (
            lambda r: f"+44 20 {r.randint(7000, 7999)} {r.randint(1000, 9999)}",
            [
                ("prose", "Call me at {s}.", "<phone>"),
                ("label", "Tel: {s}", "<phone>"),
                ("json-in-text", 'contact {{"mobile": "{s}"}}', "<phone>"),
            ],
        ),
        "phone-plain": (
            lambda r: f"{r.randint(201, 989)}{r.randint(200, 999)}{r.randint(1000, 9999)}",
            [
                ("labelled", "phone {s}", "<phone>"),
                ("prose", "call me on {s} today", "<phone>"),
                ("json-in-text", 'contact {{"note": "mobile {s}"}}', "<phone>"),
            ],
        ),
        "card": (
            lambda r: _grouped(_luhn_complete(r, r.choice(["4", "51", "52", "55"]), 16)),
            [
                ("grouped", "card {s} ok", "<card>"),
                ("prose", "pay with {s} please", "<card>"),
                ("json-in-text", 'pay {{"pan": "{s}"}}', "<card>"),
            ],
        ),
        "card-plain": (
            lambda r: _luhn_complete(r, "4", 16),
            [
                ("plain", "card {s} ok", "<card>"),
                ("prose", "the number {s} was declined", "<card>"),
                ("json-in-text", 'pay {{"pan": "{s}"}}', "<card>"),
            ],
        ),
        "ssn": (
            lambda r: f"{r.randint(100, 665)}-{r.randint(10, 99)}-{r.randint(1000, 9999)}",
            [
                ("dashed", "ssn {s} on file", "<ssn>"),
                ("prose", "my social is {s}.", "<ssn>"),
                ("json-in-text", 'rec {{"id_no": "{s}"}}', "<ssn>"),
            ],
        ),
        "ssn-plain": (
            lambda r: f"{r.randint(100, 665)}{r.randint(10, 99)}{r.randint(1000, 9999)}",
            [
                ("labelled", "SSN: {s}", "<ssn>"),
                ("prose", "social security number {s} on file", "<ssn>"),
                ("json-in-text", 'rec {{"note": "ssn {s}"}}', "<ssn>"),
            ],
        ),
        "iban": (
            lambda r: _iban(r, r.choice(["DE", "FR", "NL"]), 18),
            [
                ("compact", "wire to {s} today", "<iban>"),
                ("spaced-prose", "IBAN: {s}", "<iban>"),
                ("json-in-text", 'bank {{"account": "{s}"}}', "<iban>"),
            ],
        ),
        "ipv4": (
            lambda r: f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
            [
                ("prose", "server ip {s} is down", "<ip>"),
                ("port", "connect to {s}:8080 now", "<ip>"),
                ("json-in-text", 'host {{"addr": "{s}"}}', "<ip>"),
            ],
        ),
    }


def secrets(seed: int = 20261206, per_format: int = 2) -> Iterator[Planted]:
    """Every type in every format, ``per_format`` times, with fresh random values."""
    rng = random.Random(seed)
    for kind, (make, forms) in _types().items():
        for form, template, label in forms:
            for _ in range(per_format):
                secret = make(rng)
                yield Planted(kind, form, template.format(s=secret), secret, label)


HARMLESS = [
    "order ORD-2024-118822 ships on 2024-12-06",
    "order id 1234567890 is confirmed",
    "ISBN 978-3-16-148410-0 and 0-306-40615-2",
    "ISBN-13 9780306406157",
    "EAN 4006381333931 in stock",
    "created at 1733467200000 ms",
    "epoch 1733467200 seconds",
    "request 550e8400-e29b-41d4-a716-446655440000 finished",
    "trace 123e4567-e89b-12d3-a456-426614174000",
    "upgrade from 1.2.3 to v2.10.4 (Python 3.11.7)",
    "price $1,299.99 or 45.50 EUR",
    "total 12.5 USD, tax 2.38",
    "def add(a, b): return a + b",
    "for i in range(10): print(i)",
    "max_tokens = 256; temperature = 0.2",
    "token_count = len(tokens)",
    "SELECT id FROM orders WHERE total > 100 LIMIT 50",
    "pages 100-250 and 1000-2000",
    "years 2019-2023, sizes 10-20",
    "invoice INV-2024-000123 is paid",
    "meeting 2025-01-01 10:00 in room 12345",
    "commit a3f5c2e fixed it",
    "coordinates 52.5200, 13.4050",
    "build 20250101 passed 98.7% of tests",
    "call the function twice",
    "the password is changed every 90 days",
    "keys: up, down, left",
    "the author: Jane Austen",
    "session: spring term",
    "SKU-88412-B restocked",
    "tracking 1Z999AA10123456784",
    "extension x1234 at the front desk",
    "range 100000-250000 USD",
    "version 10.0.19041.1 of Windows",
    "ratio 16:9 and 4:3",
]
"""Texts that hold no secret and no PII: masking must leave them unchanged."""


def harmless(seed: int = 20261206, variants: int = 3) -> Iterator[str]:
    """Each harmless text, and ``variants`` copies with a random harmless word around it."""
    rng = random.Random(seed)
    words = ["note", "fyi", "see", "ok", "done", "todo", "info"]
    for text in HARMLESS:
        yield text
        for _ in range(variants):
            yield f"{rng.choice(words)}: {text} ({rng.choice(words)})"
