"""Pin verification: the one rule that says whether a side served with the pins it was expected to.

A side (prod, or a candidate's replay) has *expected* pins (the envelope's ``pins``; a result's
``pins``, from ``shadowlane shadow --pin`` or the flag manifest's ``versions``) and *served* pins:
what its response said it served with (the response's ``model`` recorded under a configured key,
configured response headers, what the handler or a Python candidate reported).

Served pins are recorded for every configured source, also when the source said nothing: a
configured header absent from a response is recorded as the empty string (:data:`ABSENT`), so a
load balancer that drops the header on the requests a stale replica answers is caught, not skipped.

:func:`pin_check` compares them. The keys checked are the expected keys a served source covers
(present in ``served``, the empty string included); a checked key mismatches when the served value
differs from the expected one, and an absent source always mismatches. Keys only one side has are
not judged: an expected pin no source reports cannot be verified, and a served pin nobody expects
is information. Nothing checked gives ``(None, None)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator

from shadowlane.sanitize.sanitizer import is_secret_key

ABSENT = ""
"""The served value of a configured source that said nothing for a response (a missing header,
a response without ``model``)."""

MAX_PIN_CHARS = 256
"""Longer served values are cut to this many characters when recorded."""


def served_value(value: object) -> str:
    """What a served source's value is recorded as: a non-blank string (cut), else :data:`ABSENT`."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or not value.strip():
        return ABSENT
    return value.strip()[:MAX_PIN_CHARS]


def pin_check(
    expected: Mapping[str, str], served: Mapping[str, str]
) -> tuple[bool | None, tuple[str, ...] | None]:
    """``(mismatch, differing keys sorted)`` of ``served`` against ``expected``; ``(None, None)``
    when no expected key has a served source."""
    if not expected or not served:
        return None, None
    checked = [key for key in expected if key in served]
    if not checked:
        return None, None
    differing = tuple(sorted(key for key in checked if served[key] == ABSENT or served[key] != expected[key]))
    return bool(differing), differing


def check_pin_headers(headers: dict[str, str]) -> dict[str, str]:
    """Refuse a served-pin header that bears secrets (an auth or cookie header recorded as a pin
    would publish the credential): the sanitizer's own rule for secret-bearing keys."""
    secret = sorted(name for name in headers if is_secret_key(name))
    if secret:
        raise ValueError(f"secret-bearing header(s) cannot be served pins: {', '.join(secret)}")
    return headers


PinHeaders = Annotated[dict[str, str], AfterValidator(check_pin_headers)]
"""A response header -> pin name map (``served_pin_headers`` settings), secret-bearing headers refused."""
