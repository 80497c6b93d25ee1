"""Input hygiene applied to every user message before it is stored or shown to a model.

Customers paste card numbers into chat windows. A number that passes the Luhn
check is masked before the message reaches the history, the logs or the model,
so the conversation store never holds one.
"""

from __future__ import annotations

import re
import unicodedata

from .prompts import CARD_MASK

__all__ = ["clean_text", "luhn_ok", "mask_card_numbers"]

# 13-19 digits, optionally grouped by single spaces or dashes.
_CARD_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` passes the Luhn checksum of payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mask_card_numbers(text: str) -> tuple[str, int]:
    """Replace Luhn-valid card numbers with a mask; returns the text and how many were masked."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            count += 1
            return CARD_MASK
        return match.group()

    return _CARD_CANDIDATE.sub(replace, text), count


def clean_text(text: str) -> str:
    """Drop control characters (keeping newlines and tabs) and trim surrounding space."""
    kept = (ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    return "".join(kept).strip()


def clean_message(text: str) -> tuple[str, int]:
    """A message as the assistant stores it and the model sees it: ``clean_text``, then
    card numbers masked; returns the text and how many card numbers were masked."""
    return mask_card_numbers(clean_text(text))
