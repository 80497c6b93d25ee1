"""The mood on a company: reading the question, and summarising its headlines.

The question gives the company ("the mood on Tesla", "$NVDA", "news about Bank
of America") and, optionally, a window ("this week", "last 30 days", "today").
Windows are rolling and end now: "this week" is the last 7 days, "this month"
the last 30. The summary counts the window's headlines that mention the company
by their stored sentiment, compares the net mood (bullish minus bearish, as a
share of all) with the window of the same length before it, and lists the
newest headlines as citations. Every sentence is fixed text filled with those
counts; nothing is generated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Mapping, Sequence

from .feed import StoredHeadline

__all__ = ["LABELS", "DEFAULT_DAYS", "MAX_DAYS", "Question", "Summary", "parse_question", "parse_window",
           "company_pattern", "summarise", "render", "citation"]

#: The sentiment classes, in the data set's label order (0, 1, 2).
LABELS = ("bearish", "bullish", "neutral")
DEFAULT_DAYS = 7
MAX_DAYS = 366
#: A change of the net mood (bullish minus bearish, as a share) smaller than this is "about the same".
TREND_STEP = 0.15
#: A net mood at least this far from zero leans that way.
LEAN_STEP = 0.2

_UNITS = {"day": 1, "days": 1, "week": 7, "weeks": 7, "fortnight": 14, "month": 30, "months": 30, "year": 365,
          "years": 365, "hour": 1, "hours": 1}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "fourteen": 14, "thirty": 30, "ninety": 90}
_WINDOW = re.compile(
    r"\b(?:(?:in|over|for|during|within)\s+)?(?:the\s+)?(?:last|past|previous|recent)\s+"
    r"(?P<n>\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fourteen|thirty|ninety)?\s*"
    r"(?P<unit>hours?|days?|weeks?|fortnight|months?|years?)\b", re.I)
_NAMED_WINDOW = re.compile(r"\b(?:(?:in|over|for|during)\s+)?(?P<which>this|the)\s+(?P<unit>week|month|year|quarter)\b"
                           r"|\b(?P<day>today|yesterday|tonight|overnight)\b|\b(?P<quarter>quarter)\b", re.I)
_TICKER = re.compile(r"\$(?P<t>[A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)\b")
# Words that introduce the company in a question.
_LEAD = re.compile(r"\b(?:on|about|for|around|towards?|regarding|re|of|surrounding|concerning|over|in|with)\s+", re.I)
# Words that are never (part of) the company's name.
_STOP = {
    "the", "a", "an", "it", "its", "them", "they", "this", "that", "these", "those", "me", "my", "us", "our", "you",
    "mood", "sentiment", "sentiments", "news", "headline", "headlines", "market", "markets", "stock", "stocks",
    "share", "shares", "price", "prices", "feeling", "feelings", "tone", "press", "coverage", "buzz", "media",
    "investors", "investor", "traders", "analysts", "street", "wall", "is", "are", "was", "were", "be", "been",
    "what", "whats", "what's", "how", "hows", "how's", "why", "which", "who", "any", "some", "latest", "recent",
    "recently", "lately", "now", "today", "yesterday", "tonight", "week", "weeks", "month", "months", "year",
    "years", "day", "days", "hours", "quarter", "last", "past", "previous", "this", "so", "far", "bullish",
    "bearish", "neutral", "positive", "negative", "good", "bad", "trend", "trending", "trends", "outlook", "view",
    "views", "there", "right", "currently", "please", "overall", "general", "vibe", "vibes", "side", "and", "or",
    "at", "to", "from", "by", "on", "about", "for", "around", "toward", "towards", "regarding", "of", "in", "with",
    "over", "concerning", "surrounding", "re", "do", "does", "did", "say", "saying", "says", "tell", "give", "show",
    "summary", "summarise", "summarize", "update", "updates", "report", "reporting", "ticker", "company",
    "companies", "corp", "equity", "going", "doing", "look", "looking", "looks", "like", "seem", "seems", "feel",
    "feels", "people", "everyone", "think", "thinking", "opinion", "ago", "since", "during", "within", "i", "we",
    "can", "could", "would", "will", "should", "get", "getting", "mostly", "more", "less", "much", "many", "against",
}
# Lower-case words allowed inside a name between capitalised ones ("Bank of America", "Johnson & Johnson").
_JOINERS = {"of", "&", "and", "de", "du", "la", "the"}
_SUFFIXES = re.compile(r"(?:'s|’s|')$")
_TOKEN = re.compile(r"\$?[A-Za-z0-9][A-Za-z0-9.&'’\-]*|&")


@dataclass(frozen=True)
class Question:
    company: str | None
    days: int
    #: Whether the message named the window itself (else the default or the conversation's).
    window_stated: bool = False


def parse_window(text: str) -> int | None:
    """The window a message states, in days ("last 30 days" -> 30, "this week" -> 7), or None."""
    found = _WINDOW.search(text)
    if found:
        raw = (found.group("n") or "1").lower()
        n = int(raw) if raw.isdigit() else _NUMBERS.get(raw, 1)
        unit = found.group("unit").lower()
        days = max(1, -(-n // 24)) if unit.startswith("hour") else n * _UNITS[unit]
        return max(1, min(MAX_DAYS, days))
    named = _NAMED_WINDOW.search(text)
    if named:
        if named.group("day"):
            return 1 if named.group("day").lower() in ("today", "tonight", "overnight") else 2
        unit = (named.group("unit") or named.group("quarter") or "").lower()
        return {"week": 7, "month": 30, "year": 365, "quarter": 91}.get(unit)
    return None


def _strip_window(text: str) -> str:
    return _NAMED_WINDOW.sub(" ", _WINDOW.sub(" ", text))


def _name_from(tokens: list[str]) -> str | None:
    """The longest name at the start of ``tokens``: words not in the stop list, with joiners inside."""
    name: list[str] = []
    for i, token in enumerate(tokens):
        word = _SUFFIXES.sub("", token)
        low = word.lower().strip(".")
        if not word:
            break
        if low in _JOINERS and name and i + 1 < len(tokens) and tokens[i + 1][:1].isupper():
            name.append(word)
            continue
        if low in _STOP or not re.match(r"[A-Za-z0-9$&]", word):
            break
        name.append(word)
        if len(name) == 5 or token != word:  # a possessive ends the name ("Tesla's shares")
            break
    while name and name[-1].lower() in _JOINERS:
        name.pop()
    if not name or all(n.isdigit() for n in name):
        return None
    return " ".join(name).strip(".").lstrip("$") or None


def parse_company(text: str) -> str | None:
    """The company a message asks about, as the user wrote it; None when it names none."""
    ticker = _TICKER.search(text)
    if ticker:
        return ticker.group("t").upper()
    cleaned = _strip_window(text)
    candidates: list[str] = []
    for lead in _LEAD.finditer(cleaned):
        rest = cleaned[lead.end():]
        rest = re.split(r"[?!,;:()\"\n]|\.(?:\s|$)", rest, maxsplit=1)[0]
        name = _name_from(_TOKEN.findall(rest))
        if name:
            candidates.append(name)
    if candidates:
        # "mood on the news about Tesla": the stop list drops "news", so the first real name wins.
        return candidates[0]
    # No lead word ("Tesla sentiment?", "is NVDA bullish"): the first capitalised or all-caps word
    # that is not a stop word, the message's first word included only if nothing else qualifies.
    tokens = _TOKEN.findall(cleaned)
    for start in list(range(1, len(tokens))) + [0]:
        token = tokens[start]
        word = _SUFFIXES.sub("", token)
        if word[:1].isupper() and word.lower() not in _STOP:
            name = _name_from(tokens[start:])
            if name:
                return name
    return None


def parse_question(text: str, state: Mapping | None = None, *, default_days: int = DEFAULT_DAYS) -> Question:
    """Company and window of a message; a follow-up ("and last month?") keeps the conversation's company."""
    state = state or {}
    stated = parse_window(text)
    company = parse_company(text)
    if company is None and state.get("company"):
        company = str(state["company"])
    days = stated or int(state.get("days") or default_days)
    return Question(company, days, stated is not None)


def company_pattern(company: str, aliases: Iterable[str] = ()) -> re.Pattern[str]:
    """A regex finding the company (or an alias) as whole words in a headline.

    Names match case-insensitively; a short all-capitals name (a ticker such as
    "GE" or "NVDA") only in capitals or with its cashtag, so "ge" in a word or an
    ordinary "on" never counts."""
    parts: list[str] = []
    for name in [company, *aliases]:
        name = " ".join(name.replace("$", " ").split())
        if not name:
            continue
        words = r"\s+".join(re.escape(w) for w in name.split())
        if name.isupper() and len(name) <= 5:
            parts.append(rf"(?-i:(?<![A-Za-z0-9])\$?{words})")
        else:
            parts.append(words)
    if not parts:
        raise ValueError("a company name is needed")
    return re.compile(rf"(?<![\w$])(?:{'|'.join(parts)})(?:'s|’s)?(?!\w)", re.I)


@dataclass
class Summary:
    company: str
    days: int
    end: datetime
    counts: dict[str, int]
    previous: dict[str, int]
    headlines: list[StoredHeadline] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def previous_total(self) -> int:
        return sum(self.previous.values())

    @staticmethod
    def _net(counts: Mapping[str, int]) -> float | None:
        total = sum(counts.values())
        return None if total == 0 else (counts["bullish"] - counts["bearish"]) / total

    @property
    def net(self) -> float | None:
        """Bullish minus bearish headlines, as a share of all in the window (-1 to 1)."""
        return self._net(self.counts)

    @property
    def previous_net(self) -> float | None:
        return self._net(self.previous)

    @property
    def lean(self) -> str:
        return _lean(self.net)

    @property
    def trend(self) -> str:
        """"more bullish", "more bearish", "about the same", or "no earlier headlines"."""
        now, before = self.net, self.previous_net
        if now is None and before is None:
            return "no headlines"
        if before is None:
            return "no earlier headlines"
        if now is None:
            return "no recent headlines"
        if now - before >= TREND_STEP:
            return "more bullish"
        if before - now >= TREND_STEP:
            return "more bearish"
        return "about the same"


def _lean(net: float | None) -> str:
    if net is None:
        return "none"
    if net >= LEAN_STEP:
        return "bullish"
    if net <= -LEAN_STEP:
        return "bearish"
    return "mixed"


def _counts(headlines: Sequence[StoredHeadline]) -> dict[str, int]:
    counts = dict.fromkeys(LABELS, 0)
    for h in headlines:
        counts[h.sentiment] = counts.get(h.sentiment, 0) + 1
    return counts


def summarise(company: str, days: int, end: datetime, current: Sequence[StoredHeadline],
              previous: Sequence[StoredHeadline], aliases: Iterable[str] = ()) -> Summary:
    """Counts and trend of the headlines in ``current`` and ``previous`` that mention ``company``."""
    pattern = company_pattern(company, aliases)
    now = [h for h in current if pattern.search(h.headline)]
    before = [h for h in previous if pattern.search(h.headline)]
    return Summary(company, days, end, _counts(now), _counts(before), now)


def _window(days: int) -> str:
    if days == 1:
        return "the last 24 hours"
    if days % 7 == 0 and days <= 28:
        return "the last week" if days == 7 else f"the last {days // 7} weeks"
    return f"the last {days} days"


def _breakdown(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    noun = "headline" if total == 1 else "headlines"
    return f"{total} {noun}: {counts['bearish']} bearish, {counts['bullish']} bullish, {counts['neutral']} neutral"


_LEAN_TEXT = {"bullish": "leaning bullish", "bearish": "leaning bearish", "mixed": "mixed"}


def render(summary: Summary, shown: int, stored: int) -> str:
    """The reply: counts, lean and trend, then the newest headlines numbered as citations."""
    window = _window(summary.days)
    if summary.total == 0:
        if stored == 0:
            return (f"No headlines have been added here yet, so I can't tell the mood on {summary.company}. "
                    "Once a news feed is ingested I can summarise it.")
        text = f"I found no headlines mentioning {summary.company} in {window}."
        if summary.previous_total:
            text += (f" In the {summary.days} days before that there were {_breakdown(summary.previous)} "
                     f"({_LEAN_TEXT[_lean(summary.previous_net)]}).")
        return text
    lines = [f"Mood on {summary.company} over {window}: {_breakdown(summary.counts)} "
             f"({_LEAN_TEXT[summary.lean]})."]
    if summary.previous_total == 0:
        lines.append(f"There were no headlines about {summary.company} in the {summary.days} days before, "
                     "so there is no trend to compare.")
    else:
        change = {"more bullish": "the mood has turned more bullish",
                  "more bearish": "the mood has turned more bearish",
                  "about the same": "the mood is about the same"}[summary.trend]
        lines.append(f"The {summary.days} days before: {_breakdown(summary.previous)} "
                     f"({_LEAN_TEXT[_lean(summary.previous_net)]}), so {change}.")
    listed = summary.headlines[:shown]
    lines.append("Latest headlines:" if len(listed) > 1 else "Latest headline:")
    for n, h in enumerate(listed, start=1):
        lines.append(f"[{n}] {h.time:%Y-%m-%d} {h.source} ({h.sentiment}): {h.headline}")
    if summary.total > len(listed):
        lines.append(f"... and {summary.total - len(listed)} more.")
    lines.append("Sentiment is classified automatically from the headlines alone; it is not investment advice.")
    return "\n".join(lines)


def citation(n: int, h: StoredHeadline) -> dict:
    """The ``lepton.citations`` item for headline ``[n]`` (the shape retrieval's citations have)."""
    entry = {"n": n, "title": h.headline, "source": h.source, "chunk_id": f"headline-{h.id}",
             "score": round(float(h.confidence), 4), "time": h.time.isoformat(), "sentiment": h.sentiment}
    if h.url and h.url.startswith(("https://", "http://")):
        entry["url"] = h.url
    return entry
