"""shadowlane/sanitize/rules.py: every rule is needed (removing one lets a planted secret through),
and the checks behind the rules (Luhn, IBAN mod-97, SSN areas, entropy) say what they should."""

from __future__ import annotations

import pytest

from shadowlane.sanitize import RULES, Sanitizer
from shadowlane.sanitize.rules import CHECKS, entropy, luhn
from tests.support.secret_corpus import leaked, secrets

CORPUS = list(secrets())


def _misses(sanitizer: Sanitizer) -> list[str]:
    """The planted items the sanitizer lets through or labels wrong, as ``kind/form``."""
    out = []
    for item in CORPUS:
        masked, _ = sanitizer.clean_text(item.text)
        if leaked(item.secret, masked) or (item.label is not None and item.label not in masked):
            out.append(f"{item.kind}/{item.form}")
    return out


def test_the_full_rule_set_catches_the_whole_corpus() -> None:
    assert _misses(Sanitizer()) == []


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_every_rule_is_needed(rule: object) -> None:
    without = Sanitizer(rules=tuple(r for r in RULES if r is not rule))
    assert _misses(without), "removing this rule changes nothing the corpus can see"


def test_rule_names_are_unique_and_labels_are_classes() -> None:
    assert len({r.name for r in RULES}) == len(RULES)
    labels = {"<private-key>", "<url-credentials>", "<secret>", "<email>", "<iban>", "<ip>", "<ssn>"}
    assert {r.label for r in RULES} == {*labels, "<card>", "<phone>"}


def test_luhn_and_the_card_check() -> None:
    assert luhn("4111111111111111")
    assert not luhn("4111111111111112")
    assert CHECKS["card"]("4111 1111 1111 1111")
    assert CHECKS["card"]("4111111111111111")
    assert not CHECKS["card"]("4006381333931")  # 13 plain digits: an EAN-13 or epoch ms, not a card
    assert CHECKS["card"]("4222 2222 22222")  # 13 digits written as a card number


def test_the_iban_check_is_mod_97() -> None:
    assert CHECKS["iban"]("DE89370400440532013000")
    assert CHECKS["iban"]("GB82 WEST 1234 5698 7654 32")
    assert not CHECKS["iban"]("DE89370400440532013001")
    assert not CHECKS["iban"]("DE8937")


def test_the_ssn_check_refuses_areas_never_issued() -> None:
    assert CHECKS["ssn"]("123-45-6789")
    for never in ("000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"):
        assert not CHECKS["ssn"](never)


def test_values_of_ambiguous_keys_are_secrets_only_when_they_look_random() -> None:
    secret_value = CHECKS["secret_value"]
    assert secret_value("a8F3kQ9zL2mX")
    assert not secret_value("256")
    assert not secret_value("aaaaaaaaaa")
    assert entropy("") == 0.0
    assert entropy("abcd") == 2.0


def test_assigned_values_that_are_literals_or_references_are_kept() -> None:
    assigned = CHECKS["assigned"]
    assert assigned("hunter2!")
    for kept in ("true", "null", "os.environ", "$DB_PASSWORD", "<secret>"):
        assert not assigned(kept)


def test_a_password_said_in_prose_is_one_only_when_it_is_not_a_plain_word() -> None:
    password_like = CHECKS["password_like"]
    assert password_like("hunter2")
    assert password_like("HunTer")
    assert not password_like("changed")
