"""shadowlane/sanitize/sanitizer.py: secret keys are dropped at any depth, PII and keys are masked in
strings, and the cheap checks that decide which rules run never skip one that would mask."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowlane.sanitize import (
    DEFAULT_DROP_KEYS,
    MASK_GUARD,
    RULES,
    SECRET_KEY_SUFFIXES,
    Rule,
    Sanitizer,
    matching,
)
from shadowlane.sanitize import sanitizer as engine

# --------------------------------------------------------------------------- dropping keys

SECRET_KEYS = [
    "authorization",
    "Authorization",
    "api_key",
    "API-Key",
    "apiKey",
    "x-api-key",
    "X-Api-Key",
    "password",
    "Password",
    "token",
    "cookie",
    "Set-Cookie",
    "access_token",
    "refresh_token",
    "client_secret",
    "private_key",
    "aws_secret_access_key",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_key_is_dropped_at_top_level(key: str) -> None:
    cleaned, count = Sanitizer().clean({key: "s3cr3t-value", "keep": "plain"})
    assert cleaned == {"keep": "plain"}
    assert count == 1


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_key_is_dropped_at_any_depth(key: str) -> None:
    value = {"a": [{"b": {"c": [{key: {"whatever": "nested secret"}, "ok": 1}]}}], "z": (1, {key: "x"})}
    cleaned, count = Sanitizer().clean(value)
    assert cleaned == {"a": [{"b": {"c": [{"ok": 1}]}}], "z": [1, {}]}
    assert count == 2


def test_ordinary_keys_that_merely_resemble_secrets_are_kept() -> None:
    body = {"max_tokens": 64, "keyboard": "qwerty", "passage": "text", "tokens_used": 3, "secretary": "Ann"}
    cleaned, count = Sanitizer().clean(body)
    assert cleaned == body
    assert count == 0


def test_configured_drop_fields_are_dropped_with_key_normalisation() -> None:
    body = {"internal-note": "n1", "InternalNote": "n2", "nested": [{"internal_note": "n3"}], "note": "keep"}
    default_cleaned, default_count = Sanitizer().clean(body)
    assert default_cleaned == body
    assert default_count == 0

    cleaned, count = Sanitizer(drop_fields=["internal_note"]).clean(body)
    assert cleaned == {"nested": [{}], "note": "keep"}
    assert count == 3


def test_non_string_keys_and_scalars_pass_through() -> None:
    body: dict[Any, Any] = {7: "seven", "n": 3, "f": 1.5, "b": True, "none": None}
    cleaned, count = Sanitizer().clean(body)
    assert cleaned == body
    assert count == 0


# --------------------------------------------------------------------------- masking strings

MASKED = [
    # e-mail
    ("mail me at john.doe+x@example.co.uk please", "mail me at <email> please"),
    ("a@b.io", "<email>"),
    ("Write to support@shop-example.com.", "Write to <email>."),
    # phone numbers, US
    ("call 415-555-0132 now", "call <phone> now"),
    ("call (415) 555-0132 now", "call <phone> now"),
    ("call +1 415 555 0132 now", "call <phone> now"),
    ("phone 4155550132", "phone <phone>"),
    ("My number is 415-555-0132.", "My number is <phone>."),
    ("Call 415.555.0132.", "Call <phone>."),
    ("call +1 (415) 555-0132.", "call <phone>."),
    # phone numbers, international, at the end of a sentence
    ("Call me at +44 20 7946 0958.", "Call me at <phone>."),
    ("Reach me on +49 30 901820.", "Reach me on <phone>."),
    ("Ring +33 1 42 68 53 00.", "Ring <phone>."),
    ("Tel: +61 2 9374 4000.", "Tel: <phone>."),
    ("intl +442079460958.", "intl <phone>."),
    ("call ٠١٢٣٤٥٦٧٨٩ now", "call <phone> now"),  # digits of any script, as \d reads them
    # Luhn-valid card numbers
    ("card 4111 1111 1111 1111 ok", "card <card> ok"),
    ("card 4111-1111-1111-1111.", "card <card>."),
    ("card 4111111111111111", "card <card>"),
    ("amex 3782 822463 10005 ok", "amex <card> ok"),
    ("card ٤١١١ ١١١١ ١١١١ ١١١١ ok", "card <card> ok"),  # Luhn over any script's digits
    # bearer tokens and key-shaped strings
    ("Authorization: Bearer abcdefghijklmnop123", "Authorization: Bearer <secret>"),
    ("header bearer abcDEF123456789._~+/==", "header bearer <secret>"),
    ("authorization: bEaReR abcdefgh12345678", "authorization: bEaReR <secret>"),
    ("BEARER\tabcdefgh12345678 rest", "BEARER\t<secret> rest"),
    ("key sk-abcdefghijklmnopqrstuvwxyz123456", "key <secret>"),
    ("key sk-proj-abcdefghijklmnopqrstuvwxyz123456 end", "key <secret> end"),
    ("key sk-ant-api03-abcdefghijklmnopqrstuvwxyz end", "key <secret> end"),
    ("aws AKIAIOSFODNN7EXAMPLE here", "aws <secret> here"),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789 here", "gh <secret> here"),
    ("slack xoxb-1234567890-abcdefghij here", "slack <secret> here"),
    ("slack xoxp-1234567890-abcdefghij here", "slack <secret> here"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstuv here", "google <secret> here"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U ok",
        "jwt <secret> ok",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_sensitive_substrings_are_masked(text: str, expected: str) -> None:
    masked, count = Sanitizer().mask_text(text)
    assert masked == expected
    assert count == 1


UNTOUCHED = [
    "on 2025-01-01 we met",
    "released 2025-01-01.",
    "dates 2025-01-01 and 2024-12-31 and 01/02/2025",
    "between 2025-01-01 - 2025-02-01",
    "ISO 2025-01-01T10:00:00Z",
    "room 12345 and order 42",
    "ids 12345678 and 1234567",
    "call 555-0132",
    "version 1.2.3 and 10.20.30 and v2.0.1",
    "upgrade to v1.2.3.",
    "total 1,234,567.89 USD",
    "x=10.5, y=20.25",
    "see RFC 2616 section 14.8",
    "build 20250101",
    "The quick brown fox jumps over the lazy dog.",
    "Is the API working? Yes 100%.",
    "foo@bar is not an address",
    "sk-short is not a key",
    "a bearer abc is not a token",
    "not a card 4111 1111 1111 1112 ok",
    "short",
]


@pytest.mark.parametrize("text", UNTOUCHED)
def test_ordinary_text_is_not_masked(text: str) -> None:
    masked, count = Sanitizer().mask_text(text)
    assert masked == text
    assert count == 0


@pytest.mark.parametrize(
    "text",
    [
        "logged at 2025-01-01 12:30:45 UTC",
        "meeting 2025-01-01 10:00.",
        "2024-12-31 23:59:59.999",
    ],
)
def test_date_followed_by_time_is_not_masked(text: str) -> None:
    masked, count = Sanitizer().mask_text(text)
    assert masked == text
    assert count == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Call 415-555-0132 415-555-0199", "Call <phone> <phone>"),
        ("On 2025-01-01 415-555-0132 called.", "On 2025-01-01 <phone> called."),
        ("2025-01-01 4111 1111 1111 1111", "2025-01-01 <card>"),
        ("Date: 2025-01-01 (415) 555-0132", "Date: 2025-01-01 <phone>"),
    ],
)
def test_numbers_adjacent_to_dates_or_other_numbers_are_still_masked(text: str, expected: str) -> None:
    masked, _ = Sanitizer().mask_text(text)
    assert masked == expected


# --------------------------------------------------------------------------- counting


def _mask_every_rule(text: str) -> tuple[str, int]:
    """Every rule run on the text in order, none skipped by a cheap check, each searched all over."""
    counter = [0]
    if len(text) < engine.MIN_MASKABLE:
        return text, 0
    for rule in RULES:
        text = matching.apply(matching.compile_rule(rule), text, counter)
    return text, counter[0]


_PIECES = st.sampled_from(
    ["bearer ", "BeArEr\t", "sk-", "sk_live_", "pk_live_", "AKIA", "ASIA", "ghp_", "github_pat_", "xoxb-",
     "AIza", "eyJ", "SG.", "SK", "hf_", "npm_", "glpat-", "whsec_", "-----BEGIN PRIVATE KEY-----",
     "://", "u:p@", "@", "a@b.io", "jörg@müller.de", ".", "-", "_", " ", "(", ")", "+1 ", "+44 ", "4111",
     "2024-01-02", "abcdefgh", "ABCDEFGH", "01234567", "10.0.0.1", "DE89370400440532013000", "123-45-6789",
     "é", "\u212a", "\u0130", "٠١٢٣٤", "٥٦٧٨٩", "5", "²", "password", "Pass", "wd", "=", ": ", " is ", "\\n",
     '"', "api", "Key", "token", "_secret", "client", "auth", "session", "call ", "phone ", "ssn "]
)  # fmt: skip


@given(
    st.lists(_PIECES, max_size=10).map("".join)
    | st.lists(_PIECES | st.text(max_size=4), max_size=14).map("".join)
)
@settings(max_examples=1500, deadline=None)
def test_the_cheap_checks_never_skip_a_rule_that_would_mask(text: str) -> None:
    # triggers, digit counts, anchors and windows decide which rules run and where: that must
    # never skip a match the rule's own search would mask
    assert Sanitizer().mask_text(text) == _mask_every_rule(text)


def test_counts_every_mask_in_one_string() -> None:
    text = "Mail a@b.io or c@d.org, call 415-555-0132, card 4111111111111111, key AKIAIOSFODNN7EXAMPLE."
    masked, count = Sanitizer().mask_text(text)
    assert masked == "Mail <email> or <email>, call <phone>, card <card>, key <secret>."
    assert count == 5


def test_clean_counts_drops_and_masks_together() -> None:
    body = {
        "Authorization": "Bearer abcdefghijklmnop",
        "messages": [
            {"role": "user", "content": "I am a@b.io, phone +44 20 7946 0958."},
            {"role": "user", "content": "nothing here 2025-01-01"},
        ],
        "meta": {"password": "x", "token": "y", "tags": ["ok", "x@y.com"]},
    }
    cleaned, count = Sanitizer().clean(body)
    assert count == 3 + 3  # three dropped keys, three masked values
    assert cleaned == {
        "messages": [
            {"role": "user", "content": "I am <email>, phone <phone>."},
            {"role": "user", "content": "nothing here 2025-01-01"},
        ],
        "meta": {"tags": ["ok", "<email>"]},
    }


def test_clean_on_a_plain_string_masks_it() -> None:
    assert Sanitizer().clean("reach me at x@y.com") == ("reach me at <email>", 1)
    assert Sanitizer().clean(42) == (42, 0)


# --------------------------------------------------------------------------- immutability


def test_clean_never_mutates_its_input() -> None:
    body: dict[str, Any] = {
        "api_key": "sk-abcdefghijklmnopqrstuvwxyz",
        "messages": [{"role": "user", "content": "a@b.io", "cookie": "c"}],
        "tuple": ("x@y.com", {"token": "t"}),
        "nested": {"deep": [{"password": "p", "text": "call 415-555-0132"}]},
    }
    snapshot = copy.deepcopy(body)
    inner_list = body["messages"]
    inner_dict = body["nested"]["deep"][0]

    cleaned, count = Sanitizer(drop_fields=["role"]).clean(body)

    assert body == snapshot
    assert body["messages"] is inner_list
    assert inner_dict == {"password": "p", "text": "call 415-555-0132"}
    assert cleaned is not body
    assert cleaned["messages"] is not inner_list
    assert count == 8  # api_key, cookie, role, token, password dropped + 3 masks
    assert cleaned == {
        "messages": [{"content": "<email>"}],
        "tuple": ["<email>", {}],
        "nested": {"deep": [{"text": "call <phone>"}]},
    }


def test_the_guard_hands_over_every_rules_hints() -> None:
    minimum, hints, any_case, ascii_fold, runs = MASK_GUARD
    assert minimum == engine.MIN_MASKABLE
    assert any_case == []  # every case-insensitive rule folds ASCII case only
    for rule in RULES:
        assert set(rule.hints) <= set(hints)
        assert set(rule.hints_any_case) <= set(ascii_fold)
        assert not rule.digits[0] or rule.digits in runs


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (Rule("bare", "<secret>", r"x+"), "no hint"),
        (Rule("unicode-fold", "<secret>", r"(?i)token", hints_any_case=("token",)), "ASCII-only"),
        (Rule("upper", "<secret>", r"(?ai)token", hints_any_case=("Token",)), "lowercase ASCII"),
    ],
)
def test_a_rule_the_guard_cannot_describe_is_refused(rule: Rule, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sanitizer(rules=(*RULES, rule))


@pytest.mark.parametrize("suffix", SECRET_KEY_SUFFIXES)
def test_every_secret_key_suffix_is_needed(suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"svc_{suffix}"
    assert Sanitizer().clean({key: "v"}) == ({}, 1)
    monkeypatch.setattr(engine, "SECRET_KEY_SUFFIXES", tuple(s for s in SECRET_KEY_SUFFIXES if s != suffix))
    assert Sanitizer().clean({key: "v"}) == ({key: "v"}, 0)


@pytest.mark.parametrize("key", sorted(DEFAULT_DROP_KEYS))
def test_every_default_drop_key_is_needed(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Sanitizer().clean({key: "v"}) == ({}, 1)
    monkeypatch.setattr(engine, "DEFAULT_DROP_KEYS", DEFAULT_DROP_KEYS - {key})
    assert Sanitizer().clean({key: "v"}) == ({key: "v"}, 0)


def test_a_remembered_text_is_masked_and_counted_every_time() -> None:
    sanitizer = Sanitizer()
    text = "system: write to ops@example.com, never to 415-555-0132"
    first = sanitizer.mask_text(text)
    assert first == ("system: write to <email>, never to <phone>", 2)
    assert sanitizer.mask_text(text) == first
    assert sanitizer.clean({"a": text, "b": [text]}) == ({"a": first[0], "b": [first[0]]}, 4)
