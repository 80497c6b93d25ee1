"""A check that an answer reads like an answer and not like a small model's loop.

An answer is degenerate when a sentence of four words or more appears twice, or
fewer than 80 % of its word trigrams are distinct. The benchmarks count answers
by this rule; the browser tests hold every demo answer to it.
"""

from __future__ import annotations

import re

__all__ = ["degenerate"]

_WORD = re.compile(r"[a-z0-9']+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def degenerate(text: str) -> bool:
    """A sentence of 4+ words said twice, or under 80 % distinct word trigrams."""
    sentences = [" ".join(_WORD.findall(s.lower())) for s in _SENTENCE_BREAK.split(text)]
    sentences = [s for s in sentences if len(s.split()) >= 4]
    if len(sentences) != len(set(sentences)):
        return True
    words = _WORD.findall(text.lower())
    trigrams = list(zip(words, words[1:], words[2:]))
    return bool(trigrams) and len(set(trigrams)) / len(trigrams) < 0.8
