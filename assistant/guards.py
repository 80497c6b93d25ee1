"""Input hygiene applied to every user message before it is stored or shown to a model.

Customers paste card numbers into chat windows. A number that passes the Luhn
check is masked before the message reaches the history, the logs or the model,
so the conversation store never holds one. It may be written in groups split by
spaces (one or more, non-breaking too), dashes, dots or slashes.

A tenant can also have e-mail addresses and phone numbers masked
(``Settings.mask_contacts``). A phone number is one written as phone numbers
are: starting with ``+``, ``0`` or a bracketed area code, 9 to 15 digits — so a
bare order or account number is left alone.
"""

from __future__ import annotations

import re
import unicodedata

from .prompts import CARD_MASK, EMAIL_MASK, PHONE_MASK

__all__ = ["clean_message", "clean_text", "luhn_ok", "mask_card_numbers", "mask_contacts"]

_SEPARATOR = r"[ \t\u00a0\u202f.\-\u2010-\u2015/]{0,3}"
# 13 or more digits, each pair of neighbours apart by at most three separator characters;
# the card number is then looked for among its digit groups (_card_span).
_CARD_CANDIDATE = re.compile(rf"(?<![\d.])\d(?:{_SEPARATOR}\d){{12,}}")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Groups of digits (brackets allowed) split by single spaces, dots or dashes, starting with
# "+", "0" or "(": "+44 20 7946 0958", "020 7946 0958", "(555) 123-4567".
_PHONE = re.compile(r"(?<![\w+(])(?:\+|0|\()[\d()]*\d[\d()]*(?:[ .-][\d()]+)*")


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` passes the Luhn checksum of payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_span(candidate: str) -> tuple[int, int] | None:
    """Where in ``candidate`` the first card number lies: a run of its digit groups that
    passes the Luhn check (the longest from the earliest start), so that a card followed
    by its expiry date ("4111 1111 1111 1111 12/27") or by another card is found."""
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", candidate)]
    for first in range(len(groups)):
        digits, found = "", None
        for last in range(first, len(groups)):
            digits += candidate[groups[last][0]:groups[last][1]]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_ok(digits):
                found = (groups[first][0], groups[last][1])
        if found is not None:
            return found
    return None


def mask_card_numbers(text: str) -> tuple[str, int]:
    """Replace Luhn-valid card numbers with a mask; returns the text and how many were masked."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        masked, rest = "", match.group()
        while (span := _card_span(rest)) is not None:
            masked += rest[:span[0]] + CARD_MASK
            rest = rest[span[1]:]
            count += 1
        return masked + rest

    return _CARD_CANDIDATE.sub(replace, text), count


def mask_contacts(text: str) -> tuple[str, int]:
    """Replace e-mail addresses and phone numbers with masks; returns the text and how many."""
    count = 0

    def phone(match: re.Match[str]) -> str:
        nonlocal count
        if 9 <= len(re.sub(r"\D", "", match.group())) <= 15:
            count += 1
            return PHONE_MASK
        return match.group()

    text, emails = _EMAIL.subn(EMAIL_MASK, text)
    return _PHONE.sub(phone, text), count + emails


def clean_text(text: str) -> str:
    """Drop control characters (keeping newlines and tabs) and trim surrounding space."""
    kept = (ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    return "".join(kept).strip()


def clean_message(text: str, contacts: bool = False) -> tuple[str, int]:
    """A message as the assistant stores it and the model sees it: ``clean_text``, then
    card numbers masked (and with ``contacts``, e-mail addresses and phone numbers);
    returns the text and how many card numbers were masked."""
    text, cards = mask_card_numbers(clean_text(text))
    if contacts:
        text = mask_contacts(text)[0]
    return text, cards
