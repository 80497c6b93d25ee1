"""Personal-data scrubbing for training text.

Fine-tuning data usually comes from real conversations; a model trained on them
can repeat what it saw. Before anything is written we replace personal data with
a placeholder naming its kind, and count what was replaced so the operator can
see how much there was.

Patterns are checked from the most to the least specific, and numbers that only
look like an identifier are left alone where a checksum exists: a card number
must pass Luhn and an IBAN must pass ISO 7064 mod 97, so order numbers and
amounts survive.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable

from assistant.guards import luhn_ok

__all__ = ["KINDS", "scrub", "luhn_ok", "iban_ok"]

#: Kinds in the order they are applied, with the placeholder each leaves.
KINDS = {
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "card": "[CARD]",
    "national_id": "[NATIONAL_ID]",
    "phone": "[PHONE]",
}

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Country code, check digits, then 11-30 alphanumerics, optionally in groups of four.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
# 13-19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# US social security numbers and UK national insurance numbers.
_NATIONAL_ID = re.compile(
    r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"
    r"|\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
# An optional +country, an optional (area), then digit groups; 9-15 digits in all
# (checked below) so dates, amounts and short codes are not phones.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{2,5}(?:[ .-]?\d{2,5}){1,4}(?!\w)")


def iban_ok(text: str) -> bool:
    """True when ``text`` (spaces allowed) is an IBAN with valid mod-97 check digits."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _card(match: re.Match) -> bool:
    digits = _digits(match.group())
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _phone(match: re.Match) -> bool:
    text = match.group()
    digits = _digits(text)
    # A bare run of digits is only a phone when it says so with a + prefix;
    # otherwise it could be any reference number.
    grouped = text.startswith("+") or "(" in text or bool(re.search(r"[ .-]", text))
    return 9 <= len(digits) <= 15 and grouped


_CHECKS: list[tuple[str, re.Pattern, Callable[[re.Match], bool] | None]] = [
    ("email", _EMAIL, None),
    ("iban", _IBAN, lambda m: iban_ok(m.group())),
    ("card", _CARD, _card),
    ("national_id", _NATIONAL_ID, None),
    ("phone", _PHONE, _phone),
]


def scrub(text: str, counts: Counter | None = None) -> str:
    """``text`` with personal data replaced by placeholders; ``counts`` (if given)
    is increased by the number of replacements per kind."""
    for kind, pattern, check in _CHECKS:
        placeholder = KINDS[kind]

        def replace(match: re.Match, kind=kind, placeholder=placeholder, check=check) -> str:
            if check is not None and not check(match):
                return match.group()
            if counts is not None:
                counts[kind] += 1
            return placeholder

        text = pattern.sub(replace, text)
    return text
