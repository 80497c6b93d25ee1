"""What a shopper's message asks of the recommender, read with fixed rules, and the reply's text.

Constraints are kept in the skill's state across turns and changed by what a message says:

- a price limit: "under 20 pounds", "below £15", "up to 30", "over 5", "between 5 and 10";
  "any price" drops it;
- "cheaper" (than the item referred to, or than the middle price of what was just shown);
- "not that one" / "not the second" leaves an item out from then on;
- "the second one" (or "the last one") shows that item; "more like the first one",
  "something like the second but cheaper" asks for similar items, until a new request;
- anything else with words of its own is what the shopper is looking for now;
  "start again" forgets everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

__all__ = ["Request", "parse_request", "render"]

ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
            "fifth": 4, "5th": 4, "last": -1}
ORDINAL = re.compile(r"\b(?:the\s+)?(" + "|".join(ORDINALS) + r")(?:\s+one)?\b", re.I)
THAT_ONE = re.compile(r"\b(?:that|this|it)(?:\s+one)?\b", re.I)
NOT = re.compile(r"\b(?:not|no|don'?t (?:like|want)|without|except|other than)\b", re.I)
NOT_ITEM = re.compile(r"\b(?:not|no|don'?t (?:like|want)|except|other than)\s+(?:the\s+)?"
                      r"(?:(?:" + "|".join(ORDINALS) + r")|that|this|it)(?:\s+one)?\b", re.I)
CHEAPER = re.compile(r"\b(?:cheaper|less expensive|lower price|more affordable)\b", re.I)
LIKE = re.compile(r"\b(?:like|similar(?: to)?|more of|resembl\w*)\b", re.I)
MORE = re.compile(r"\bmore like (?:this|that|it)\b|\bsimilar (?:ones|items)\b", re.I)
NUMBER = r"(?:[£$€]\s*)?(\d+(?:[.,]\d{1,2})?)\s*(?:pounds?|quid|dollars?|euros?|gbp|usd|eur)?"
MAX_PRICE = re.compile(r"\b(?:under|below|less than|up to|max(?:imum)?|no more than|at most|within|budget(?: of)?|"
                       r"cheaper than)\s+" + NUMBER, re.I)
MIN_PRICE = re.compile(r"\b(?:over|above|more than|at least|min(?:imum)?)\s+" + NUMBER, re.I)
BETWEEN = re.compile(r"\bbetween\s+" + NUMBER + r"\s+(?:and|to|-)\s+" + NUMBER, re.I)
ANY_PRICE = re.compile(r"\b(?:any price|no (?:price )?limit|price doesn'?t matter|whatever (?:the )?price)\b", re.I)
RESTART = re.compile(r"\b(?:start (?:again|over)|forget (?:that|it|everything)|something else entirely|reset)\b", re.I)
FILLER = {"a", "an", "the", "some", "any", "for", "me", "my", "i", "i'm", "im", "want", "need", "looking", "look",
          "show", "give", "suggest", "recommend", "recommendation", "recommendations", "ideas", "idea", "please",
          "can", "you", "could", "would", "something", "one", "ones", "item", "items", "what", "do", "have", "got",
          "is", "are", "it", "that", "this", "but", "and", "or", "to", "of", "in", "with", "more", "other",
          "else", "instead", "pounds", "pound", "under", "below", "over", "above", "less", "than", "up",
          "cheaper", "like", "similar", "not", "no", "price", "any", "about", "tell", "which", "how", "much",
          "there", "on", "at", "most", "least", "between", "maybe", "else?", "thanks", "ok", "okay", "yes", "hmm",
          "buy", "get", "should", "next", "money", "budget", "£",
          # asking for a gift says nothing about the item (a gift shop's whole catalogue is gifts)
          "gift", "gifts", "present", "presents", "ideas", "someone", "who", "loves", "likes"} | set(ORDINALS)


@dataclass
class Request:
    query: str | None = None
    max_price: float | None = None
    min_price: float | None = None
    exclude: list[str] = field(default_factory=list)
    like: list[str] = field(default_factory=list)
    #: An item the shopper singled out ("the second one").
    focus: str | None = None
    #: The shopper asked for suggestions (not just to see one item).
    wants_more: bool = True
    #: What changed this turn, said back to the shopper.
    notes: list[str] = field(default_factory=list)

    def to_state(self) -> dict[str, Any]:
        return {"query": self.query, "max_price": self.max_price, "min_price": self.min_price,
                "exclude": self.exclude, "like": self.like, "focus": self.focus}

    def constraints(self) -> dict[str, Any]:
        return {k: v for k, v in {"query": self.query, "max_price": self.max_price, "min_price": self.min_price,
                                  "exclude": self.exclude, "like": self.like}.items() if v is not None and v != []}


def _price(text: str) -> float:
    return float(text.replace(",", "."))


def _referred(text: str, shown: Sequence[str], focus: str | None) -> str | None:
    """The item "the second one" / "that one" points at among those just shown."""
    match = ORDINAL.search(text)
    if match and shown:
        position = ORDINALS[match.group(1).lower()]
        if -len(shown) <= position < len(shown):
            return shown[position]
    if THAT_ONE.search(text):
        return focus or (shown[0] if shown else None)
    return None


def parse_request(text: str, state: Mapping[str, Any], model: Any) -> Request:
    """The shopper's request after ``text``, given the state of the previous turn."""
    if RESTART.search(text):
        state = {}
    shown = list(state.get("shown", []))
    request = Request(query=state.get("query"), max_price=state.get("max_price"), min_price=state.get("min_price"),
                      exclude=list(state.get("exclude", [])), like=list(state.get("like", [])), focus=None)
    previous_focus = state.get("focus")
    referred = _referred(text, shown, previous_focus)
    price_of = lambda item: model.catalog.at[item, "price"] if item in model.index else None  # noqa: E731
    title_of = lambda item: str(model.catalog.at[item, "title"]) if item in model.index else item  # noqa: E731

    if ANY_PRICE.search(text):
        request.max_price = request.min_price = None
        request.notes.append("any price")
    if between := BETWEEN.search(text):
        low, high = sorted((_price(between.group(1)), _price(between.group(2))))
        request.min_price, request.max_price = low, high
    else:
        if upper := MAX_PRICE.search(text):
            request.max_price = _price(upper.group(1))
        if lower := MIN_PRICE.search(text):
            request.min_price = _price(lower.group(1))
    if NOT_ITEM.search(text) and referred is not None:
        if referred not in request.exclude:
            request.exclude.append(referred)
        request.notes.append(f"leaving out {_title(title_of(referred))}")
        referred = None if ORDINAL.search(text) is None or NOT_ITEM.search(text) else referred
    if CHEAPER.search(text) and not MAX_PRICE.search(text):
        # cheaper than the item referred to, else than the middle of what was just shown
        base = [price_of(referred)] if referred is not None else [price_of(i) for i in shown]
        prices = sorted(float(p) for p in base if p is not None and p == p)
        if prices:
            request.max_price = round(prices[(len(prices) - 1) // 2] - 0.01, 2)
    liked_now = True
    if referred is not None and (LIKE.search(text) or CHEAPER.search(text)):
        request.like = [referred]
    elif MORE.search(text) and previous_focus:
        request.like = [previous_focus]
    else:
        liked_now = False
    # words of its own: what the shopper is looking for now (only they are embedded, so
    # "under 20 pounds" or "gift ideas" do not pull in items with those words in the title);
    # a new request also ends "like X" from earlier turns
    words = [w for w in re.findall(r"[a-z']+", RESTART.sub(" ", text).lower()) if w not in FILLER and len(w) > 1]
    if words and not liked_now:
        request.query = " ".join(words)
        request.like = []
    request.like = [item for item in request.like if item not in request.exclude]
    if referred is not None and not request.like and not words and not CHEAPER.search(text) \
            and not MAX_PRICE.search(text) and not NOT.search(text):
        request.focus, request.wants_more = referred, False
    return request


def _money(currency: str, price: float | None) -> str:
    return "price not listed" if price is None else f"{currency}{price:,.2f}"


#: A shouted title inside a reason ("often bought with 6 GIFT TAGS 50'S CHRISTMAS").
SHOUTED = re.compile(r"[A-Z0-9][A-Z0-9 ,.&/'-]{3,}[A-Z0-9]")


def _title(title: str) -> str:
    """Shouted catalogue titles ("WHITE METAL LANTERN") in sentence case."""
    title = " ".join(title.split())
    letters = [c for c in title if c.isalpha()]
    shouted = letters and sum(c.isupper() for c in letters) >= 0.8 * len(letters)
    return title[:1].upper() + title[1:].lower() if shouted else title


def render(request: Request, suggestions: Sequence[Any], model: Any, currency: str) -> str:
    """The reply: fixed text around the suggestions' titles, prices and reasons."""
    if not request.wants_more and suggestions:
        s = suggestions[0]
        return (f"{_title(s.title)} — {_money(currency, s.price)}. Say \"more like this\" for similar items, "
                f"or \"not that one\" to leave it out.")
    limits = []
    if request.min_price is not None and request.max_price is not None:
        limits.append(f"between {_money(currency, request.min_price)} and {_money(currency, request.max_price)}")
    elif request.max_price is not None:
        limits.append(f"up to {_money(currency, request.max_price)}")
    elif request.min_price is not None:
        limits.append(f"from {_money(currency, request.min_price)}")
    if request.like:
        limits.append(f"like {_title(str(model.catalog.at[request.like[0], 'title']))}"
                      if request.like[0] in model.index else "")
    said = "; ".join(n for n in request.notes if n)
    head = (f"({said[:1].upper() + said[1:]}.) " if said else "")
    if not suggestions:
        return (head + f"Nothing in the catalogue fits {' and '.join(l for l in limits if l) or 'that'}. "
                "Say \"any price\" to drop a price limit, or \"start again\".")
    intro = "Here are some ideas from our catalogue" + (f", {', '.join(l for l in limits if l)}" if limits else "") + ":"
    lines = [head + intro]
    lines += [f"{n}. {_title(s.title)} — {_money(currency, s.price)} "
              f"({SHOUTED.sub(lambda m: _title(m.group(0)), s.reason)})"
              for n, s in enumerate(suggestions, start=1)]
    lines.append("Say \"the second one\" to look at one, \"not that one\", \"cheaper\", or \"more like the first one\".")
    return "\n".join(lines)
