"""The application form of a credit model, filled in by conversation.

Each field the active model reads becomes a :class:`Field`: its label, its
question, its unit and, for a category, its choices in plain words. A tenant
gives these in a questions file at training (``--questions``); a column without
one is asked by its name, with the file's own values as choices.

Parsing is deterministic and forgiving of how people type:

- amounts: "5000", "5,000", "£5k", "about 30k a year", "2,400 a month after tax"
  (converted to the field's period when it has one);
- durations: "36", "3 years", "18 months", "a year and a half";
- choices: the number shown next to a choice, its words ("I rent"), or a synonym
  from the questions file ("tv" for "radio/television").

An answer that does not parse is asked again with a hint; it is never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

__all__ = ["Field", "build_fields", "parse_answer", "extract", "is_yes", "is_no", "parse_correction", "shown"]

WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "eighteen": 18, "twenty": 20,
                "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60}
NUMBER = re.compile(
    r"(?<![\w.])(?P<neg>-\s?)?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?\s*(?P<mult>k|m|thousand|million|grand)?(?![a-z])"
    r"|(?<![\w])(?P<word>" + "|".join(WORD_NUMBERS) + r")(?![\w])",
    re.I,
)
PER_YEAR = re.compile(r"^\W{0,3}(?:a|per|each|every)?\s*(?:year|annum|yr)\b|^\W{0,3}(?:annual(?:ly)?|yearly|p\.?a\.?)\b|^\W{0,3}/\s*(?:year|yr)", re.I)
PER_MONTH = re.compile(r"^\W{0,3}(?:a|per|each|every)\s*month\b|^\W{0,3}(?:monthly|pcm|p/m)\b|^\W{0,3}/\s*(?:month|mo)\b", re.I)
PER_WEEK = re.compile(r"^\W{0,3}(?:a|per|each|every)\s*week\b|^\W{0,3}weekly\b|^\W{0,3}/\s*(?:week|wk)\b", re.I)
YEARS = re.compile(r"^\s*(?:and a half\s+)?(?:years?|yrs?)\b", re.I)
HALF = re.compile(r"^\s*and a half\b", re.I)
MONTHS = re.compile(r"^\s*(?:months?|mos?|mths?)\b", re.I)
WEEKS = re.compile(r"^\s*(?:weeks?|wks?)\b", re.I)
MONEY_CUE = re.compile(
    r"(?:[£$€]\s*$)|(?:\b(?:borrow|loan of|lend me|need|apply for|finance|credit of)\s+(?:about\s+|around\s+|roughly\s+)?[£$€]?\s*$)",
    re.I)
MONEY_AFTER = re.compile(r"^\s*(?:pounds?|dollars?|euros?|dm|marks?|gbp|usd|eur|quid|bucks)\b", re.I)
DURATION_CUE = re.compile(r"\b(?:over|for|across|within|in)\s+$", re.I)
YES = re.compile(r"^\W*(?:yes|yeah|yep|yup|y|correct|right|confirm(?:ed)?|that'?s (?:right|correct)|"
                 r"looks (?:good|right|fine)|all (?:good|correct)|ok(?:ay)?|sure|go ahead|please do)\b", re.I)
NO = re.compile(r"^\W*(?:no|nope|n|not quite|wrong|incorrect)\b", re.I)
STOP = {"a", "an", "the", "i", "my", "is", "it", "of", "to", "and", "or", "in", "on", "for", "at", "with", "have",
        "has", "am", "im", "i'm", "me", "no", "not", "than", "more", "less", "yes", "do", "own", "be"}
UNITS = ("money", "money_per_month", "money_per_year", "months", "years", "number")


@dataclass
class Field:
    name: str
    label: str
    question: str
    kind: str  # "numeric" | "categorical"
    unit: str = "number"
    #: Stored value -> words shown to the user (categories only, in the order asked).
    choices: dict[str, str] = field(default_factory=dict)
    #: Stored value -> extra words or phrases that pick it.
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    #: "amount" or "duration": picked up from any message ("borrow 5000 over 3 years").
    role: str | None = None
    #: A category that may be picked up from any message by its synonyms.
    extract: bool = False
    #: Stored value -> [low, high): a category chosen by a quantity ("about two years").
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: The unit those quantities are read in.
    range_unit: str = "number"
    integer: bool = True
    low: float | None = None
    high: float | None = None

    def prompt(self) -> str:
        if self.kind != "categorical":
            return self.question
        options = "\n".join(f"{n}. {words}" for n, words in enumerate(self.choices.values(), start=1))
        return f"{self.question}\n{options}"

    def hint(self) -> str:
        if self.kind == "categorical":
            return "Please answer with the number of one of the options, or its words."
        example = {"months": "24 months or 2 years", "years": "5 years", "money": "5000",
                   "money_per_month": "2,400 a month", "money_per_year": "30k a year"}.get(self.unit, "3")
        return f"Please answer with a number, e.g. {example}."


def build_fields(features: Sequence[Any], questions: Mapping[str, Any]) -> list[Field]:
    """The form for ``features`` (the model's used features), in the questions file's order."""
    order = list(questions)
    ranked = sorted(features, key=lambda f: (order.index(f.name) if f.name in order else len(order), f.name))
    fields = []
    for f in ranked:
        q = dict(questions.get(f.name, {}))
        label = q.get("label") or f.name.replace("_", " ").replace(".", " ")
        if f.kind == "categorical":
            given = q.get("choices", {})
            choices = {v: given.get(v, v) for v in (list(given) + [v for v in f.values if v not in given])
                       if v in f.values}
        else:
            choices = {}
        unit = q.get("unit") or ("months" if re.search(r"month", f.name, re.I) else
                                 "years" if re.search(r"year|age", f.name, re.I) else "number")
        if unit not in UNITS:
            raise ValueError(f"questions for {f.name}: unit {unit!r} is not one of {', '.join(UNITS)}")
        fields.append(Field(
            name=f.name, label=label, question=q.get("question") or f"What is your {label}?", kind=f.kind,
            unit=unit, choices=choices, synonyms={k: list(v) for k, v in q.get("synonyms", {}).items()},
            role=q.get("role"), extract=bool(q.get("extract")),
            ranges={k: (float(lo), float(hi)) for k, (lo, hi) in q.get("ranges", {}).items()},
            range_unit=q.get("range_unit", "number"), integer=getattr(f, "integer", True),
            low=getattr(f, "low", None) if f.kind == "numeric" else None,
            high=getattr(f, "high", None) if f.kind == "numeric" else None,
        ))
    return fields


def _number(match: re.Match) -> float:
    if match.group("word"):
        return float(WORD_NUMBERS[match.group("word").lower()])
    value = float(match.group("int").replace(",", "") + ("." + match.group("frac") if match.group("frac") else ""))
    mult = (match.group("mult") or "").lower()
    return (-1 if match.group("neg") else 1) * value * {"k": 1e3, "thousand": 1e3, "grand": 1e3, "m": 1e6, "million": 1e6}.get(mult, 1)


def _quantities(text: str, unit: str) -> list[float]:
    """Every quantity in ``text``, converted to ``unit``."""
    found = []
    for match in NUMBER.finditer(text):
        after = text[match.end():]
        value = _number(match)
        word = (match.group("word") or "").lower()
        if word and unit in ("months", "years") and not (YEARS.match(after) or MONTHS.match(after) or WEEKS.match(after)):
            continue  # "one" on its own is not a duration
        if word in ("a", "an") and unit not in ("months", "years"):
            continue  # the "a" of "a year" is not an amount
        if HALF.match(after) or re.match(r"^\s*(?:years?|yrs?|months?)\s+and a half\b", after, re.I):
            value += 0.5
        if unit in ("months", "years"):
            if YEARS.match(after):
                value = value * 12 if unit == "months" else value
            elif MONTHS.match(after):
                value = value if unit == "months" else value / 12
            elif WEEKS.match(after):
                value = value * 12 / 52 if unit == "months" else value / 52
        elif unit in ("money_per_month", "money_per_year"):
            per = 12 if PER_YEAR.match(after) else 1 if PER_MONTH.match(after) else 12 / 52 if PER_WEEK.match(after) else None
            if per is not None:
                monthly = value / per
                value = monthly if unit == "money_per_month" else monthly * 12
        found.append(value)
    return found


def _tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9']+", text.lower()) if t not in STOP]


def _phrase_in(phrase: str, text: str) -> bool:
    return re.search(r"(?<![\w])" + re.escape(phrase.lower()) + r"(?![\w])", text.lower()) is not None


def _choice(f: Field, text: str) -> str | None:
    stripped = text.strip().lower()
    number = re.fullmatch(r"(?:option|number|no\.?|#)?\s*(\d{1,2})[.)]?", stripped)
    values = list(f.choices)
    if number:
        n = int(number.group(1))
        return values[n - 1] if 1 <= n <= len(values) else None
    for value in values:  # the exact words of a choice
        if stripped in (value.lower(), f.choices[value].lower()):
            return value
    by_synonym = [v for v in values if any(_phrase_in(s, text) for s in f.synonyms.get(v, []))]
    if len(set(by_synonym)) == 1:
        return by_synonym[0]
    if f.ranges:
        quantities = sorted(set(_quantities(text, f.range_unit)))
        if len(quantities) == 1:
            inside = [v for v, (low, high) in f.ranges.items() if low <= quantities[0] < high]
            if len(inside) == 1:
                return inside[0]
    words = set(_tokens(text))
    if not words:
        return None
    scores = sorted(((len(words & set(_tokens(f.choices[v] + " " + v))), v) for v in values), reverse=True)
    if scores[0][0] > 0 and (len(scores) == 1 or scores[0][0] > scores[1][0]):
        return scores[0][1]
    return None


def parse_answer(f: Field, text: str) -> Any | None:
    """The value ``text`` gives for ``f``, or None when it does not say one clearly."""
    if f.kind == "categorical":
        return _choice(f, text)
    quantities = _quantities(text, f.unit)
    distinct = sorted(set(round(q, 4) for q in quantities))
    if len(distinct) != 1:
        return None
    value = distinct[0]
    if value < 0:
        return None
    return int(round(value)) if f.integer else round(value, 2)


def extract(fields: Sequence[Field], text: str, filled: Mapping[str, Any]) -> dict[str, Any]:
    """Values a free message gives for fields not yet filled: an amount to borrow, a
    duration ("over 3 years") and categories marked ``extract`` by their synonyms."""
    found: dict[str, Any] = {}
    for f in fields:
        if f.name in filled:
            continue
        if f.role == "amount":
            for match in NUMBER.finditer(text):
                if match.group("word"):
                    continue
                before, after = text[: match.start()], text[match.end():]
                if MONEY_CUE.search(before) or MONEY_AFTER.match(after):
                    found[f.name] = int(round(_number(match)))
                    break
        elif f.role == "duration":
            for match in NUMBER.finditer(text):
                before, after = text[: match.start()], text[match.end():]
                if DURATION_CUE.search(before) and (YEARS.match(after) or MONTHS.match(after)):
                    values = _quantities(text[match.start():match.end() + 20], f.unit)
                    if values:
                        found[f.name] = int(round(values[0]))
                        break
        elif f.kind == "categorical" and f.extract:
            hits = {v for v in f.choices if any(_phrase_in(s, text) for s in f.synonyms.get(v, []))}
            if len(hits) == 1:
                found[f.name] = hits.pop()
    return found


def is_yes(text: str) -> bool:
    return bool(YES.match(text)) and not is_no(text)


def is_no(text: str) -> bool:
    return bool(NO.match(text))


def parse_correction(fields: Sequence[Field], text: str) -> tuple[Field, Any | None] | None:
    """A correction of the summary: "3: 24 months", "line 2 is repairs", "the amount is 4000".

    Returns the field and its new value (None when the value did not parse), or None
    when no field is named."""
    numbered = re.match(r"^\W*(?:line|number|no\.?|#)?\s*(\d{1,2})\s*(?:[:=)\-.,]|\bis\b|\bto\b|\bshould be\b)\s*(.+)$",
                        text.strip(), re.I)
    if numbered and 1 <= int(numbered.group(1)) <= len(fields):
        f = fields[int(numbered.group(1)) - 1]
        return f, parse_answer(f, numbered.group(2))
    words = set(_tokens(text))
    named = sorted(((len(words & set(_tokens(f.label))), i) for i, f in enumerate(fields)), reverse=True)
    if not named or named[0][0] == 0 or (len(named) > 1 and named[0][0] == named[1][0]):
        return None
    f = fields[named[0][1]]
    rest = re.sub(r"(?i)\b(?:" + "|".join(map(re.escape, _tokens(f.label))) + r")\b", " ", text)
    rest = re.sub(r"(?i)\b(?:change|set|make|update|the|my|is|to|should be|actually|it's|its)\b", " ", rest)
    return f, parse_answer(f, rest) if rest.strip(" :,.-") else None


def shown(f: Field, value: Any) -> str:
    """A stored value in the words the user sees."""
    if f.kind == "categorical":
        return f.choices.get(value, str(value))
    number = f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
    suffix = {"months": " months", "years": " years", "money_per_month": " a month", "money_per_year": " a year"}
    return number + suffix.get(f.unit, "")
