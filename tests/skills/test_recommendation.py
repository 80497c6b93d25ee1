"""The recommendation skill: cleaning an export, training, the time-split evaluation,
constraints across turns, cold start, the JSON action and a conversation through the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from skills.recommendation import DATA, NO_MODEL_REPLY, skill
from skills.recommendation.data import derive_catalog, load_interactions
from skills.recommendation.model import ModelStore, train_recommender
from skills.testing import SkillHarness

SLICE = DATA / "online_retail_slice.csv.gz"


@pytest.fixture(scope="module")
def cleaned():
    return load_interactions(SLICE)


@pytest.fixture(scope="module")
def model(cleaned):
    return train_recommender(cleaned.frame, derive_catalog(cleaned.frame))


def test_cleaning_drops_what_a_retailers_export_needs_dropped_and_says_so(cleaned):
    report = cleaned.report
    assert report["cancellations"] > 0 and report["non_product_codes"] > 0
    assert report["kept"] == len(cleaned.frame) < report["rows"]
    frame = cleaned.frame
    assert not frame["order"].str.startswith("C").any() and (frame["quantity"] > 0).all()
    assert not frame["item"].isin(["POST", "M", "DOT"]).any() and not frame.duplicated().any()


def test_training_learns_a_ranker_and_keeps_to_the_catalogue(model, cleaned):
    assert model.card["ranker"] == "LGBMRanker" and model.card["items"] == cleaned.frame["item"].nunique()
    user = sorted(model.history.users)[0]
    found = model.recommend(user, k=10)
    assert len(found) == 10 and {s.item for s in found} <= set(model.items)
    assert all(s.title and s.reason for s in found)


def test_the_catalogue_is_searched_in_the_vector_store_within_the_price_limits(tmp_path, model):
    store = ModelStore(tmp_path)
    store.save(model)
    index = store.catalog(model)
    assert index.folder == tmp_path / "catalog-index" / model.version
    assert index.collection.count() == len(model.items)
    vector = skill.embed("a lantern")
    found = index.search(vector, max_price=3)
    assert found and set(found) <= set(model.items)
    assert all(model.catalog.at[item, "price"] <= 3 for item in found)
    anywhere = index.search(vector)
    assert "LANTERN" in model.catalog.at[max(anywhere, key=anywhere.get), "title"].upper()
    between = index.search(vector, min_price=2, max_price=3)
    assert all(2 <= model.catalog.at[item, "price"] <= 3 for item in between)
    # A retrained model gets its own collection; only the one before it is kept besides.
    import copy

    versions = [model.version]
    for n in (2, 3):
        retrained = copy.copy(model)
        retrained.version = f"{model.version}-{n}"
        store.save(retrained)
        versions.append(retrained.version)
    assert sorted(p.name for p in (tmp_path / "catalog-index").iterdir()) == sorted(versions[1:])
    assert store.catalog(store.load()).folder.name == versions[-1]


def _cli(tmp_path: Path, *args: str):
    from assistant.cli import cli

    return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args])


def _store_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "skills" / "recommendation" / "tenants" / "default"


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n", "has no rows"),
    ("a,b\n1,2\n", "the interactions file has no user column 'CustomerID'"),
    ("InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\nC1,85123A,1,2011-01-01,2.5,17850\n",
     "no purchases are left after cleaning: cancellations 1"),
    ("InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n1,85123A,1,not a date,2.5,17850\n",
     "holds no readable dates"),
])
def test_an_empty_or_malformed_export_is_one_line_and_writes_nothing(tmp_path, content, message):
    data = tmp_path / "orders.csv"
    data.write_text(content, encoding="utf-8")
    result = _cli(tmp_path, "recommend", "train", "--interactions", str(data))
    assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1, result.output
    assert not (_store_dir(tmp_path) / "recommender").exists()


def test_train_and_eval_through_the_cli(tmp_path):
    trained = _cli(tmp_path, "recommend", "train", "--interactions", str(SLICE), "--json")
    assert trained.exit_code == 0, trained.output
    card = json.loads(trained.output.strip().splitlines()[-1])
    assert card["cleaning"]["cancellations"] > 0 and (_store_dir(tmp_path) / "recommender" / "model.pkl").is_file()
    assert card["source"] == str(SLICE) and len(card["data_sha256"]) == 64
    evaluated = _cli(tmp_path, "eval", "recommend", "--interactions", str(SLICE), "--split-date", "2011-11-09", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output.strip().splitlines()[-1])
    keys = {"hr@10", "recall@10", "ndcg@10", "hr@10_new", "recall@10_new", "ndcg@10_new"}
    assert keys <= set(report) and report["test_users"] > 50
    assert set(report["baselines"]) == {"popularity", "repeat", "item_knn"}
    assert all(keys == set(b) for b in report["baselines"].values())
    assert all(0 <= report[k] <= 1 for k in keys)
    assert 0 < report["recommend_ms"]["p50"] <= report["recommend_ms"]["p95"]
    late = _cli(tmp_path, "eval", "recommend", "--interactions", str(SLICE), "--split-date", "2030-01-01")
    assert late.exit_code == 1 and "leaves no interactions on one side" in late.output


# -- the conversation ----------------------------------------------------------------------
@pytest.fixture
def harness(tmp_path, model):
    h = SkillHarness(skill, tmp_path)
    ModelStore(h.env.tenant_dir("default")).save(model)
    return h


def test_without_a_model_the_skill_says_so(tmp_path):
    h = SkillHarness(skill, tmp_path)
    turn = h.send("Gift ideas under 20 pounds?")
    assert turn.said == NO_MODEL_REPLY and turn.reply.declined and h.model.calls == []


def test_constraints_hold_across_turns(harness, model):
    first = harness.send("Gift ideas under 20 pounds?")
    items = first.reply.extras["recommendations"]
    assert items and all(i["price"] <= 20 for i in items) and "up to £20.00" in first.said
    assert {i["id"] for i in items} <= set(model.items) and harness.model.calls == []
    second = harness.send("the second one")
    assert second.reply.extras["recommendations"][0]["id"] == items[1]["id"]
    assert second.said.startswith(second.reply.extras["recommendations"][0]["title"][:1])
    more = harness.send("more like this")
    similar = more.reply.extras["recommendations"]
    assert items[1]["id"] not in {i["id"] for i in similar} and all(i["price"] <= 20 for i in similar)
    cheaper = harness.send("cheaper")
    shown = sorted(i["price"] for i in similar)
    limit = shown[(len(shown) - 1) // 2]
    assert all(i["price"] < limit for i in cheaper.reply.extras["recommendations"])
    dropped = cheaper.reply.extras["recommendations"][0]["id"]
    after = harness.send("not the first one")
    assert dropped not in {i["id"] for i in after.reply.extras["recommendations"]}
    assert "Leaving out" in after.said
    # still the list "like" the second item: refining it does not lose what it was like
    assert after.reply.extras["recommendation_constraints"]["like"] == [items[1]["id"]]
    later = harness.send("any price")
    assert dropped not in {i["id"] for i in later.reply.extras["recommendations"]}  # still left out
    assert later.reply.extras["recommendation_constraints"].get("max_price") is None
    fresh = harness.send("start again, a candle")
    constraints = fresh.reply.extras["recommendation_constraints"]
    assert constraints.get("exclude") is None and constraints.get("like") is None
    assert constraints["query"] == "candle"  # only the words that describe an item are searched for


def test_asking_for_gift_ideas_is_not_a_search_for_gift_tags(harness):
    turn = harness.send("Gift ideas under 20 pounds?")
    assert "query" not in turn.reply.extras["recommendation_constraints"]
    assert not any("GIFT" in i["title"].upper() for i in turn.reply.extras["recommendations"])
    gardener = harness.send("a gift for a gardener")
    assert gardener.reply.extras["recommendation_constraints"]["query"] == "gardener"


def test_something_like_the_second_but_cheaper(harness):
    items = harness.send("a lantern").reply.extras["recommendations"]
    like = harness.send("something like the second one but cheaper").reply.extras["recommendations"]
    assert like and all(i["price"] < items[1]["price"] for i in like)
    assert items[1]["id"] not in {i["id"] for i in like}


def test_an_impossible_limit_says_so(harness):
    turn = harness.send("gifts under 0.01 pounds")
    assert turn.reply.extras["recommendations"] == [] and "Nothing in the catalogue fits up to £0.01" in turn.said


def test_a_known_customer_gets_their_history_and_an_unknown_one_a_cold_start(tmp_path, model):
    busiest = max(model.history.users, key=lambda u: model.history.orders[u])
    known = SkillHarness(skill, tmp_path / "a", user_id=busiest)
    ModelStore(known.env.tenant_dir("default")).save(model)
    reasons = [i["reason"] for i in known.send("what should I buy next?").reply.extras["recommendations"]]
    assert any(r == "you bought this before" or r.startswith("often bought with") for r in reasons)
    stranger = SkillHarness(skill, tmp_path / "b", user_id="no-such-customer")
    ModelStore(stranger.env.tenant_dir("default")).save(model)
    cold = stranger.send("what should I buy next?").reply.extras["recommendations"]
    assert cold and not any(i["reason"] == "you bought this before" for i in cold)


def test_the_demo_recommender_is_trained_once(tmp_path):
    h = SkillHarness(skill, tmp_path)
    assert h.skill.prepare_demo(h.env) is True and h.skill.prepare_demo(h.env) is False
    card = ModelStore(h.env.tenant_dir("default")).card()
    assert card["version"] == "demo-online-retail" and "CC BY 4.0" in card["source"]


@pytest.mark.slow
def test_recommend_action_and_a_conversation_through_the_api(settings, assistant, start_server, model):
    import httpx
    import openai

    ModelStore(assistant.envs["recommendation"].tenant_dir("default")).save(model)
    live = start_server(settings, assistant)
    busiest = max(model.history.users, key=lambda u: model.history.orders[u])
    action = httpx.post(f"{live.base_url}/v1/skills/recommendation/recommend",
                        json={"user": busiest, "max_price": 5, "k": 3}, timeout=60)
    assert action.status_code == 200, action.text
    body = action.json()
    assert body["known_user"] and len(body["recommendations"]) == 3
    assert all(r["price"] <= 5 for r in body["recommendations"])
    bad = httpx.post(f"{live.base_url}/v1/skills/recommendation/recommend", json={"like": ["NOPE"]}, timeout=60)
    assert bad.status_code == 400 and "items not in the catalogue: NOPE" in bad.json()["error"]["message"]

    client = openai.OpenAI(base_url=f"{live.base_url}/v1", api_key="unused")
    history = [{"role": "user", "content": "Gift ideas under 20 pounds?"}]
    first = client.chat.completions.create(model="assistant", messages=history, user=busiest)
    lepton = first.model_extra["lepton"]
    assert lepton["skill"] == "recommendation" and lepton["recommendations"]
    assert all(r["price"] <= 20 for r in lepton["recommendations"])
    history += [{"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": "cheaper"}]
    second = client.chat.completions.create(model="recommendation", messages=history, user=busiest)
    prices = sorted(r["price"] for r in lepton["recommendations"])
    assert all(r["price"] < prices[(len(prices) - 1) // 2] for r in second.model_extra["lepton"]["recommendations"])
    history_reasons = [r["reason"] for r in first.model_extra["lepton"]["recommendations"]]

    # The widget: its key is public, so a page naming a customer is believed only with the
    # hash the shop's server made with the tenant's identity secret.
    from server.keys import WidgetKeys, user_hash

    keys = WidgetKeys(assistant.store)
    key = keys.create("default", ["https://shop.example"])
    secret = keys.identity_secret("default")

    def widget_turn(**lepton):
        return httpx.post(f"{live.base_url}/v1/chat/completions", timeout=60,
                          headers={"Authorization": f"Bearer {key.key}", "Origin": "https://shop.example"},
                          json={"model": "recommendation", "user": busiest, "lepton": lepton,
                                "messages": [{"role": "user", "content": "what should I buy next?"}]})

    def from_history(response) -> bool:
        assert response.status_code == 200, response.text
        reasons = [r["reason"] for r in response.json()["lepton"]["recommendations"]]
        return any(r == "you bought this before" or r.startswith("often bought with") for r in reasons)

    assert any(r == "you bought this before" or r.startswith("often bought with") for r in history_reasons)
    assert not from_history(widget_turn())  # unsigned: a cold start, whatever id the page names
    assert from_history(widget_turn(user_hash=user_hash(secret, busiest)))
    forged = widget_turn(user_hash=user_hash("is_guessed", busiest))
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "invalid_user_hash"
    assert "does not match this user" in forged.json()["error"]["message"]
