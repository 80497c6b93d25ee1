"""The skill in conversation (through skills.testing's harness), its JSON actions, and routing to it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conftest import tenant_dir
from lepton_finance_news import ASK_COMPANY, skill
from lepton_finance_news.feed import Headline, HeadlineStore
from lepton_finance_news.mood import parse_question
from skills import ActionCall
from skills.testing import ScriptedModel, SkillHarness

NOW = datetime.now(timezone.utc)


def store(data_dir, rows, tenant="default"):
    """Headlines with the sentiment given (what ingestion stores), ``rows`` as (days ago, text, sentiment)."""
    headlines = [Headline(NOW - timedelta(days=d), text, "Wire", f"https://news.example/{i}")
                 for i, (d, text, _) in enumerate(rows)]
    HeadlineStore(tenant_dir(data_dir, tenant)).add(headlines, [(s, 0.9) for _, _, s in rows], "test-model")


ROWS = [
    (0.5, "Tesla shares slump as deliveries miss forecasts", "bearish"),
    (1.5, "Tesla cut to sell at big broker", "bearish"),
    (2.5, "Tesla recalls 100,000 cars", "bearish"),
    (3.5, "Tesla opens a new factory in Texas", "neutral"),
    (4.5, "TSLA jumps after upbeat guidance", "bullish"),
    (8.5, "Tesla stock soars to record high", "bullish"),
    (9.5, "Tesla upgraded to buy", "bullish"),
    (10.5, "Tesla's quarter beats estimates", "bullish"),
    (2.0, "Apple unveils new product event date", "neutral"),
    (40.0, "Tesla slides in old news", "bearish"),
]


@pytest.fixture
def harness(data_dir):
    store(data_dir, ROWS)
    return SkillHarness(skill, data_dir, model=ScriptedModel(["(the model must not be asked)"]),
                        options={"aliases": {"Tesla": ["TSLA"]}})


def test_the_mood_on_a_company_is_counted_compared_and_cited(harness):
    turn = harness.send("What's the mood on Tesla?")
    assert harness.model.calls == []  # fixed text: the language model is never asked
    report = turn.reply.extras["news_sentiment"]
    assert report["company"] == "Tesla" and report["days"] == 7
    assert report["window"]["counts"] == {"bearish": 3, "bullish": 1, "neutral": 1}  # TSLA is an alias
    assert report["previous"]["counts"] == {"bearish": 0, "bullish": 3, "neutral": 0}
    assert report["lean"] == "bearish" and report["trend"] == "more bearish"
    assert turn.said.startswith("Mood on Tesla over the last week: 5 headlines: 3 bearish, 1 bullish, 1 neutral "
                                "(leaning bearish).")
    assert "so the mood has turned more bearish" in turn.said
    citations = turn.reply.extras["citations"]
    assert [c["n"] for c in citations] == [1, 2, 3, 4, 5]
    assert citations[0]["title"] == "Tesla shares slump as deliveries miss forecasts"
    assert {"n", "title", "source", "chunk_id", "score", "url"} <= set(citations[0])
    assert "[1] " in turn.said and "Tesla shares slump" in turn.said and "Apple" not in turn.said
    (decision,) = harness.audited
    assert decision.kind == "news_sentiment" and decision.outcome["lean"] == "bearish"
    assert decision.version == "test-model"


def test_a_follow_up_keeps_the_company_and_changes_the_window(harness):
    harness.send("market sentiment about Tesla this week")
    assert skill.continues("default", harness.state, "and over the last 30 days?")
    turn = harness.send("and over the last 30 days?")
    report = turn.reply.extras["news_sentiment"]
    assert report["company"] == "Tesla" and report["days"] == 30
    assert report["window"]["total"] == 8 and report["previous"]["total"] == 1


def test_no_matching_headlines_is_said_plainly(harness):
    turn = harness.send("How is the news on Boeing this week?")
    assert turn.said == "I found no headlines mentioning Boeing in the last week."
    assert "citations" not in turn.reply.extras
    assert turn.reply.extras["news_sentiment"]["window"]["total"] == 0


def test_an_empty_store_is_said_plainly(data_dir):
    turn = SkillHarness(skill, data_dir, tenant_id="fresh").send("what's the mood on Tesla?")
    assert turn.said.startswith("No headlines have been added here yet, so I can't tell the mood on Tesla.")


def test_without_a_company_it_asks_and_the_answer_stays_with_it(harness):
    turn = harness.send("what's the market mood lately?")
    assert turn.said == ASK_COMPANY and harness.state["asking"] == "company"
    assert skill.continues("default", harness.state, "Tesla")
    assert harness.send("Tesla").reply.extras["news_sentiment"]["window"]["total"] == 5


@pytest.mark.parametrize("text,company,days", [
    ("what's the mood on Tesla?", "Tesla", 7),
    ("sentiment for $nvda over the last 30 days", "NVDA", 30),
    ("mood on Bank of America in the past 2 weeks", "Bank of America", 14),
    ("How is Apple's stock doing in the news today", "Apple", 1),
    ("what are people saying about Johnson & Johnson this month", "Johnson & Johnson", 30),
    ("Netflix sentiment?", "Netflix", 7),
])
def test_questions_give_company_and_window(text, company, days):
    question = parse_question(text)
    assert (question.company, question.days) == (company, days)


# -- actions --------------------------------------------------------------------------------


def action(harness, name):
    return next(a for a in harness.skill.actions() if a.name == name)


def test_the_sentiment_action_returns_counts_trend_and_headlines(harness):
    act = action(harness, "sentiment")
    body = act.input.model_validate({"company": "Tesla", "days": 7, "aliases": ["TSLA"], "limit": 2})
    out = act.run(ActionCall("default", harness.env), body)
    data = act.output.model_validate(out.model_dump()).model_dump(mode="json")
    assert data["window"]["counts"] == {"bearish": 3, "bullish": 1, "neutral": 1}
    assert data["trend"] == "more bearish" and data["window"]["net"] == -0.4
    assert [h["headline"] for h in data["headlines"]] == ["Tesla shares slump as deliveries miss forecasts",
                                                          "Tesla cut to sell at big broker"]
    assert data["stored"] == len(ROWS)
    earlier = act.run(ActionCall("default", harness.env), act.input.model_validate(
        {"company": "Tesla", "days": 7, "as_of": (NOW - timedelta(days=7)).isoformat()}))
    assert earlier.window.counts == {"bearish": 0, "bullish": 3, "neutral": 0}
    other = act.run(ActionCall("acme", harness.env), act.input.model_validate({"company": "Tesla"}))
    assert other.window.total == 0 and other.stored == 0  # per tenant


def test_the_classify_action_uses_the_tenant_model(harness):
    act = action(harness, "classify")
    out = act.run(ActionCall("default", harness.env), act.input.model_validate(
        {"headlines": ["Shares plunge after profit warning", "Company to hold annual meeting"]}))
    assert out.model.startswith("finnews-") and len(out.results) == 2
    assert all(r.sentiment in ("bearish", "bullish", "neutral") and 0 < r.confidence <= 1 for r in out.results)
    with pytest.raises(ValueError, match="no headline sentiment model"):
        act.run(ActionCall("nobody", harness.env), act.input.model_validate({"headlines": ["x"]}))


# -- routing ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def router():
    from assistant.router import EmbeddingRouter
    from retrieval import load_encoder
    from skills import load_skills

    skills = load_skills().skills
    assert "finance_news" in skills
    return EmbeddingRouter(load_encoder(None), {n: s.examples for n, s in skills.items()})


@pytest.mark.parametrize("text", [
    "what's the mood on Tesla this week?",
    "how bullish is the news about Amazon",
    "market sentiment on Microsoft over the last month",
    "are the headlines about Boeing negative?",
    "what's the news sentiment for NVDA",
])
def test_mood_questions_route_to_the_skill(router, text):
    assert router.route(text).skill == "finance_news"


@pytest.mark.parametrize("text,expected", [
    ("could I borrow 8000 to buy a motorbike, I earn 28k a year", "credit_scoring"),
    ("the parcel I ordered two weeks ago never arrived", "customer_service"),
    ("looking for a birthday present for my sister, she likes candles", "recommendation"),
])
def test_other_skills_keep_their_messages(router, text, expected):
    assert router.route(text).skill == expected
