"""Financial-news monitoring for Lepton Assistant: the mood on a company, from the headlines a tenant ingests.

A tenant trains a headline sentiment model on its own labelled headlines
(``lepton finnews train``, :mod:`.model`) and sends its news feeds to
``lepton finnews ingest``; each headline is classified bearish, bullish or
neutral once, on arrival, and kept in the tenant's store (:mod:`.feed`).

In a conversation the skill answers "what's the mood on Tesla this week?": it
counts the window's headlines that mention the company by sentiment, compares
the net mood with the window before, and lists the newest headlines as
citations (:mod:`.mood`). The answer is fixed text filled with those counts;
the language model is never asked, so no figure or headline can be invented.
A follow-up such as "and over the last month?" keeps the company. The counts
are in ``lepton.news_sentiment`` and the headlines in ``lepton.citations``.

Integrators get the same as JSON: ``POST /v1/skills/finance_news/sentiment``
({company, days}) and ``POST /v1/skills/finance_news/classify`` ({headlines}).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field

from skills import ActionCall, Decision, Skill, SkillAction, SkillContext, SkillEnv, SkillReply

from .feed import HeadlineStore, StoredHeadline, window_bounds
from .model import ModelStore, SentimentModel
from .mood import DEFAULT_DAYS, LABELS, MAX_DAYS, Summary, citation, parse_company, parse_question, parse_window, \
    render, summarise

__all__ = ["skill", "FinanceNewsSkill", "ASK_COMPANY", "NO_MODEL"]

SYSTEM_PROMPT = "You summarise the market mood in financial news headlines about a company."

EXAMPLES = [
    "What's the mood on Tesla?",
    "What is the market sentiment about Apple this week?",
    "Any news on NVDA stock?",
    "How are the headlines on Amazon looking?",
    "Is the news about Boeing bullish or bearish?",
    "Sentiment for $TSLA over the last 30 days",
    "How is the press treating Microsoft lately?",
    "Give me the news sentiment for Netflix",
    "Are analysts bearish on Intel right now?",
    "What's the market mood around JPMorgan?",
    "Summarise the financial news about Meta this month",
    "How has sentiment on Ford changed since last week?",
    "Is the coverage of Pfizer positive or negative?",
    "Bullish or bearish headlines for Shopify today?",
    "What are the markets saying about Nvidia?",
    "Show me the latest headlines on Coca-Cola shares",
    "How do investors feel about Disney at the moment?",
    "Has the news on Alibaba turned negative?",
    "Track the sentiment on Goldman Sachs for the past two weeks",
    "Is Wall Street optimistic about AMD?",
    "mood on $AAPL",
    "How's the stock news for Starbucks been recently?",
    "Headline sentiment for Exxon in the last 7 days",
    "Are the headlines about Uber getting better or worse?",
    "What's the buzz around Palantir stock?",
    "Is the press bearish on Bank of America?",
    "news sentiment trend for Walmart",
    "How negative is the news about Boeing this week?",
    "Give me a sentiment summary of Salesforce headlines",
    "Any bullish news on Tesla shares lately?",
    "What's the tone of financial news about Google?",
    "How is the market reacting to Nike's earnings news?",
    "Market mood for Berkshire Hathaway over the last month",
    "Is the news flow on Oracle positive?",
    "What does the financial press think of PayPal right now?",
    "Sentiment check on Moderna stock",
]

ASK_COMPANY = ("Which company should I look at? For example: \"What's the mood on Tesla this week?\" "
               "or \"sentiment for $NVDA over the last 30 days\".")
NO_MODEL = "this tenant has no headline sentiment model; train one with `lepton finnews train TRAIN.csv`"
SHOWN = 5


class FinanceNewsSkill(Skill):
    def setup(self, env: SkillEnv) -> None:
        """Options: ``shown`` (headlines listed per answer, 1-20, default 5), ``default_days`` (the window when
        none is stated, default 7) and ``aliases`` ({"Alphabet": ["Google", "GOOGL"], ...}: other names a
        company's headlines use)."""
        super().setup(env)
        self.shown = env.options.get("shown", SHOWN)
        if not isinstance(self.shown, int) or not 1 <= self.shown <= 20:
            raise ValueError(f"option shown must be a whole number from 1 to 20, not {self.shown!r}")
        self.default_days = env.options.get("default_days", DEFAULT_DAYS)
        if not isinstance(self.default_days, int) or not 1 <= self.default_days <= MAX_DAYS:
            raise ValueError(f"option default_days must be a whole number from 1 to {MAX_DAYS}")
        aliases = env.options.get("aliases", {})
        if not isinstance(aliases, Mapping) or not all(
                isinstance(v, list) and all(isinstance(a, str) for a in v) for v in aliases.values()):
            raise ValueError('option aliases must map a company to a list of names, e.g. {"Alphabet": ["Google"]}')
        self.aliases = {str(k): list(v) for k, v in aliases.items()}
        self._models: dict[str, ModelStore] = {}

    # -- per-tenant files --------------------------------------------------------------
    def models(self, env: SkillEnv, tenant_id: str) -> ModelStore:
        found = self._models.get(tenant_id)
        if found is None:
            found = self._models[tenant_id] = ModelStore(env.tenant_dir(tenant_id))
        return found

    def headlines(self, env: SkillEnv, tenant_id: str) -> HeadlineStore:
        return HeadlineStore(env.tenant_dir(tenant_id))

    def active_model(self, env: SkillEnv, tenant_id: str) -> SentimentModel:
        model = self.models(env, tenant_id).active()
        if model is None:
            raise ValueError(NO_MODEL)
        return model

    def now(self) -> datetime:
        """The end of every window: the current time."""
        return datetime.now(timezone.utc)

    def names_for(self, company: str, extra: list[str] | None = None) -> list[str]:
        """Other names of ``company``: the tenant's ``aliases`` option (matched either way round) and ``extra``."""
        key = company.lower()
        names: list[str] = []
        for name, others in self.aliases.items():
            group = [name, *others]
            if key in (n.lower() for n in group):
                names += group
        names += extra or []
        return [n for n in dict.fromkeys(names) if n.lower() != key]

    def mood(self, env: SkillEnv, tenant_id: str, company: str, days: int, *, end: datetime | None = None,
             aliases: list[str] | None = None) -> tuple[Summary, int]:
        """The summary of ``company``'s headlines over ``days`` up to ``end``, and how many headlines are stored."""
        store = self.headlines(env, tenant_id)
        end = end or self.now()
        (start, stop), (before, _) = window_bounds(end, days)
        summary = summarise(company, days, end, store.between(start, stop), store.between(before, start),
                            self.names_for(company, aliases))
        return summary, store.count()

    # -- a turn ----------------------------------------------------------------------------
    def respond(self, ctx: SkillContext) -> SkillReply:
        question = parse_question(ctx.user_message, ctx.state, default_days=self.default_days)
        days = question.days
        if question.company is None:
            ctx.say(ASK_COMPANY)
            return SkillReply(ASK_COMPANY, {"news_sentiment": None}, state={"asking": "company", "days": days})
        summary, stored = self.mood(ctx.env, ctx.tenant_id, question.company, days)
        text = render(summary, self.shown, stored)
        ctx.say(text)
        listed = summary.headlines[: self.shown]
        extras: dict[str, Any] = {"news_sentiment": _report(summary)}
        if listed:
            extras["citations"] = [citation(n, h) for n, h in enumerate(listed, start=1)]
        decision = Decision("news_sentiment", {"lean": summary.lean, "trend": summary.trend, **summary.counts},
                            {"company": summary.company, "days": days, "headlines": summary.total,
                             "previous_headlines": summary.previous_total},
                            version=",".join(sorted({h.model for h in summary.headlines})) or None)
        return SkillReply(text, extras, state={"company": summary.company, "days": days}, decisions=[decision])

    def continues(self, tenant_id: str, state: Mapping[str, Any], message: str) -> bool:
        """A short answer to "which company?", or a short follow-up that only changes the window
        ("and last month?"), stays with the skill."""
        short = len(message.split()) <= 6
        if state.get("asking") == "company":
            return short and parse_company(message) is not None
        return bool(state.get("company")) and short and parse_window(message) is not None

    # -- integrators' JSON ------------------------------------------------------------------
    def actions(self) -> list[SkillAction]:
        return [
            SkillAction("sentiment", SentimentInput, SentimentOutput, self._sentiment_action,
                        "The mood on a company over a window: counts of bearish, bullish and neutral headlines "
                        "mentioning it, the trend against the window before, and the headlines."),
            SkillAction("classify", ClassifyInput, ClassifyOutput, self._classify_action,
                        "Classify headlines as bearish, bullish or neutral with the tenant's active model "
                        "(nothing is stored)."),
        ]

    def _sentiment_action(self, call: ActionCall, body: "SentimentInput") -> "SentimentOutput":
        end = body.as_of.astimezone(timezone.utc) if body.as_of else None
        if body.as_of is not None and body.as_of.tzinfo is None:
            end = body.as_of.replace(tzinfo=timezone.utc)
        summary, stored = self.mood(call.env, call.tenant_id, body.company, body.days, end=end, aliases=body.aliases)
        report = _report(summary)
        return SentimentOutput(**report, stored=stored, headlines=[_item(h) for h in summary.headlines[: body.limit]])

    def _classify_action(self, call: ActionCall, body: "ClassifyInput") -> "ClassifyOutput":
        model = self.active_model(call.env, call.tenant_id)
        results = model.predict(body.headlines)
        return ClassifyOutput(model=model.version, results=[
            Classified(headline=h, sentiment=label, confidence=round(conf, 4))
            for h, (label, conf) in zip(body.headlines, results)])

    # -- commands --------------------------------------------------------------------------
    def commands(self):  # noqa: ANN201 - click.Group
        from .cli import finnews_commands

        return finnews_commands(self)


def _window_report(start: datetime, end: datetime, counts: Mapping[str, int], net: float | None) -> dict[str, Any]:
    return {"start": start.isoformat(), "end": end.isoformat(), "counts": dict(counts), "total": sum(counts.values()),
            "net": None if net is None else round(net, 4)}


def _report(summary: Summary) -> dict[str, Any]:
    (start, end), (before, _) = window_bounds(summary.end, summary.days)
    return {"company": summary.company, "days": summary.days, "lean": summary.lean, "trend": summary.trend,
            "window": _window_report(start, end, summary.counts, summary.net),
            "previous": _window_report(before, start, summary.previous, summary.previous_net)}


def _item(h: StoredHeadline) -> "Item":
    return Item(time=h.time, headline=h.headline, source=h.source, url=h.url, sentiment=h.sentiment,
                confidence=round(h.confidence, 4), model=h.model)


class SentimentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    company: str = Field(min_length=1, max_length=100, description="The company (or ticker) headlines must mention.")
    days: int = Field(default=DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="Window length in days, ending at as_of.")
    aliases: list[str] = Field(default_factory=list, max_length=20,
                               description="Other names the company's headlines use (e.g. a ticker).")
    as_of: datetime | None = Field(default=None, description="End of the window (default: now; UTC if no offset).")
    limit: int = Field(default=20, ge=0, le=200, description="Most headlines to return, newest first.")


class WindowCounts(BaseModel):
    start: datetime
    end: datetime
    counts: dict[str, int] = Field(description="Headlines per sentiment: bearish, bullish, neutral.")
    total: int
    net: float | None = Field(description="(bullish - bearish) / total, from -1 to 1; null without headlines.")


class Item(BaseModel):
    time: datetime
    headline: str
    source: str
    url: str | None
    sentiment: str
    confidence: float
    model: str = Field(description="The model version that classified it at ingestion.")


class SentimentOutput(BaseModel):
    company: str
    days: int
    lean: str = Field(description="bullish, bearish, mixed, or none (no headlines).")
    trend: str = Field(description="more bullish, more bearish, about the same, no earlier headlines, "
                                   "no recent headlines, or no headlines.")
    window: WindowCounts
    previous: WindowCounts = Field(description="The window of the same length just before.")
    stored: int = Field(description="Headlines stored for the tenant in all.")
    headlines: list[Item]


class ClassifyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    headlines: list[str] = Field(min_length=1, max_length=256)


class Classified(BaseModel):
    headline: str
    sentiment: str = Field(description=f"One of {', '.join(LABELS)}.")
    confidence: float


class ClassifyOutput(BaseModel):
    model: str
    results: list[Classified]


skill = FinanceNewsSkill(
    name="finance_news",
    description="Monitors financial news: the market mood (bearish, bullish, neutral) on a company in the "
                "headlines ingested, with its trend and the headlines as sources.",
    examples=EXAMPLES,
    system_prompt=SYSTEM_PROMPT,
)
