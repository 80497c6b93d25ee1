"""The router on the real embedding model: deterministic, no LLM, threshold respected."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.router import OUT_OF_SCOPE, EmbeddingRouter
from retrieval import load_encoder
from retrieval.query_encoder import load_query_encoder
from skills import load_skills


@pytest.fixture(scope="module", params=["float", "int8"])
def router(request):
    """The router on sentence-transformers' float vectors, and on the int8 copy the server uses."""
    encoder = load_encoder(None) if request.param == "float" else load_query_encoder(None, int8=True)
    skills = load_skills().skills
    return EmbeddingRouter(encoder, {n: s.examples for n, s in skills.items()})


@pytest.mark.parametrize("text,skill", [
    ("the parcel I ordered two weeks ago never arrived", "customer_service"),
    ("my little boy has a temperature of 40 and is very drowsy", "medical_triage"),
    ("could I borrow 8000 to buy a motorbike, I earn 28k a year", "credit_scoring"),
    ("looking for a birthday present for my sister, she likes candles", "recommendation"),
    ("what's the time difference between London and New York", OUT_OF_SCOPE),
    ("sing me a song", OUT_OF_SCOPE),
])
def test_routes_plain_messages(router, text, skill):
    assert router.route(text).skill == skill


def test_decisions_are_deterministic_and_scores_are_probabilities(router):
    a, b = router.route("I lost my wallet with my card in it"), router.route("I lost my wallet with my card in it")
    assert a == b
    assert sum(a.scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_probabilities_are_scikit_learns(router):
    """Routing applies the fitted weights itself; a message gets the probabilities
    scikit-learn's predict_proba would give, and the route follows them."""
    texts = ["I lost my wallet with my card in it", "sing me a song", "a gift for my dad", "refund"]
    vectors = router._embed(texts)
    # scikit-learn works in float32 for float32 vectors; the router in float64.
    assert router.probabilities(vectors) == pytest.approx(router.model.predict_proba(vectors), abs=1e-6)
    route = router.route(texts[2])
    assert route.scores == pytest.approx(dict(zip(router.classes, router.model.predict_proba(vectors[2:3])[0])), abs=1e-6)


def test_two_classes_use_the_logistic_function():
    """One skill: the classes are that skill and out-of-scope, scored as scikit-learn's binary model does."""
    router = EmbeddingRouter(load_query_encoder(None, int8=True), {"recommendation": load_skills().skills[
        "recommendation"].examples})
    vectors = router._embed(["a present for my niece", "what time is it in Tokyo"])
    assert router.classes == ["out_of_scope", "recommendation"]
    assert router.probabilities(vectors) == pytest.approx(router.model.predict_proba(vectors), abs=1e-6)
    assert [r.skill for r in router.route_many(["a present for my niece", "what time is it in Tokyo"])] == [
        "recommendation", OUT_OF_SCOPE]


def test_threshold_one_sends_everything_out_of_scope():
    skills = load_skills().skills
    strict = EmbeddingRouter(load_encoder(None), {n: s.examples for n, s in skills.items()}, threshold=1.0)
    assert strict.route("I want to return my shoes").skill == OUT_OF_SCOPE


def test_eval_routing_reports_accuracy_and_json(tmp_path):
    data = tmp_path / "routing.jsonl"
    rows = [
        {"text": "I'd like a refund for the broken kettle", "skill": "customer_service"},
        {"text": "I have a rash and a fever", "skill": "medical_triage"},
        {"text": "can I get a loan for a car", "skill": "credit_scoring"},
        {"text": "suggest a gift for my dad", "skill": "recommendation"},
        {"text": "what's the weather in Oslo", "skill": "out_of_scope"},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["--data-dir", str(tmp_path / "d"), "eval", "routing", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["n"] == 5
    assert report["accuracy"] == 1.0 and report["out_of_scope_recall"] == 1.0
    # Every label is scored; installed plugins (the test script installs one) are classes too.
    assert {r["skill"] for r in rows} <= set(report["per_class"])

    text = runner.invoke(cli, ["--data-dir", str(tmp_path / "d"), "eval", "routing", str(data)])
    assert "accuracy: 1.000" in text.stdout


def test_the_assistant_routes_on_the_int8_copy_and_searches_with_the_float_encoder(assistant):
    """LEPTON_ROUTER_INT8 is on by default; both encoders are exported at start-up."""
    routing = assistant.router._encoder
    search = load_query_encoder(assistant.settings.embedding_model)
    assert routing.int8 and routing._session is not None, routing.reason
    assert not search.int8 and search._checked and search._session is not None, search.reason


BIKE_HIRE = ["Can I rent a bike for the weekend?", "How much is an electric bike per day?",
             "Do you have child seats for the rental bikes?", "What time do I have to bring the rented bike back?",
             "Is a helmet included when I hire a bike?", "What happens if the rental bike gets a puncture?"]


@pytest.mark.parametrize("text,skill", [
    ("how much would two e-bikes cost for three days", "bike_hire"),
    ("do the hire bikes come with a lock", "bike_hire"),
    # The installed skills keep what is theirs, even when it mentions a bike.
    ("I'd like to take out finance on a bike, around 1200 pounds, I earn 30k", "credit_scoring"),
    ("the parcel I ordered two weeks ago never arrived", "customer_service"),
    ("sing me a song", OUT_OF_SCOPE),
])
def test_a_tenant_router_gates_its_data_skills_in_front_of_the_installed_router(router, text, skill):
    from assistant.router import TenantRouter

    tenant = TenantRouter(router, {"bike_hire": BIKE_HIRE})
    route = tenant.route(text)
    assert route.skill == skill
    assert set(route.scores) == set(router.classes) | {"bike_hire"} == set(tenant.classes)
    if skill != "bike_hire":  # the installed router's decision, unchanged
        assert router.route(text).skill == skill
    with pytest.raises(ValueError, match="already has customer_service"):
        TenantRouter(router, {"customer_service": BIKE_HIRE})
