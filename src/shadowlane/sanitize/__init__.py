"""Scrubbing secrets and PII from captured requests: the :class:`Sanitizer` and its rules.

``shadowlane.sanitize.rules`` holds what is masked inside text, as data; ``matching`` runs one
rule on one text; ``sanitizer`` decides which rules a text needs and drops values under
secret-bearing keys. What is caught and what is not:
``docs/sanitizer.md``.
"""

from shadowlane.sanitize.matching import has_digit_run
from shadowlane.sanitize.rules import RULES, Rule
from shadowlane.sanitize.sanitizer import (
    DEFAULT_DROP_KEYS,
    MASK_GUARD,
    MIN_MASKABLE,
    SECRET_KEY_SUFFIXES,
    Sanitizer,
    is_secret_key,
)

__all__ = [
    "DEFAULT_DROP_KEYS",
    "MASK_GUARD",
    "MIN_MASKABLE",
    "RULES",
    "SECRET_KEY_SUFFIXES",
    "Rule",
    "Sanitizer",
    "has_digit_run",
    "is_secret_key",
]
