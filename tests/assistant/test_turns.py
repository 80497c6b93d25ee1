"""The turn path with skill contract v2, on the real router, graph and SQLite (the
model is a stand-in that records what it is asked): skill state per conversation
and tenant, typed control results, audited decisions, generation options, a skill
whose setup fails, and a knowledge store that fails mid-turn."""

from __future__ import annotations

import dataclasses
import threading

import httpx
import pytest

from assistant import Assistant, GenerationParams
from assistant.state import TurnContext
from retrieval.query_encoder import load_query_encoder
from skills import Decision, LoadedSkills, Skill, SkillContext, SkillReply, load_skills
from tests.standins import InstantModel

pytestmark = pytest.mark.slow


class Counter(Skill):
    """Counts its turns in its state, reports each count as a decision, and asks
    the model with its own, shorter length limit."""

    def respond(self, ctx: SkillContext) -> SkillReply:
        count = ctx.state.get("count", 0) + 1
        text = ctx.generate([{"role": "user", "content": ctx.user_message}], max_tokens=3, stop=["END"])
        ctx.say(f" {count}")
        return SkillReply(f"{text} {count}", {"count": count}, state={"count": count},
                          decisions=[Decision("count", count, {"chars": len(ctx.user_message)}, version="counter-1")])


class Refuser(Skill):
    def respond(self, ctx: SkillContext) -> SkillReply:
        ctx.say("I can't help with that.")
        return SkillReply("I can't help with that.", declined=True, safety="emergency" if "help" in ctx.user_message else None)


class BrokenSetup(Skill):
    def setup(self, env):
        raise RuntimeError("model file missing")


def skill(cls, name):
    return cls(name=name, description=f"The {name} skill.", system_prompt="",
               examples=[f"{name} one", f"{name} two", f"{name} three"])


@pytest.fixture(scope="module")
def encoder():
    return load_query_encoder(None, int8=False)


@pytest.fixture
def make(settings, encoder):
    made = []

    def build(llm=None, knowledge=None):
        loaded = LoadedSkills({s.name: s for s in [skill(Counter, "counter"), skill(Refuser, "refuser"),
                                                   skill(BrokenSetup, "broken")]})
        assistant = Assistant(settings, llm or InstantModel(("ok.",)), loaded, encoder, knowledge)
        made.append(assistant)
        return assistant

    yield build
    for assistant in made:
        assistant.close()


def ask(assistant, text, model, conversation=None, tenant=None, max_tokens=16):
    return assistant.run_turn(assistant.start_turn([{"role": "user", "content": text}], model=model,
                                                   conversation_id=conversation, tenant_id=tenant,
                                                   params=GenerationParams(max_tokens=max_tokens, stop=["\n"])))


def test_skill_state_is_kept_per_conversation_and_tenant_and_survives_a_restart(make):
    assistant = make()
    first = ask(assistant, "hello", "counter")
    assert first.reply == "ok. 1" and first.lepton["count"] == 1
    assert ask(assistant, "again", "counter", first.conversation_id).lepton["count"] == 2
    other = ask(assistant, "hello", "counter")  # a new conversation starts from nothing
    assert other.lepton["count"] == 1
    elsewhere = ask(assistant, "hello", "counter", tenant="acme")
    assert elsewhere.lepton["count"] == 1
    assistant.close()
    again = make()
    assert ask(again, "third", "counter", first.conversation_id).lepton["count"] == 3


def test_decisions_are_audited_with_skill_tenant_conversation_and_version(make):
    assistant = make()
    first = ask(assistant, "hello", "counter", tenant="acme")
    ask(assistant, "hi again", "counter", first.conversation_id, tenant="acme")
    entries = assistant.store.audit_entries("acme")
    assert [(e["skill"], e["kind"], e["outcome"], e["inputs"], e["version"], e["conversation_id"]) for e in entries] == [
        ("counter", "count", 1, {"chars": 5}, "counter-1", first.conversation_id),
        ("counter", "count", 2, {"chars": 8}, "counter-1", first.conversation_id),
    ]
    assert assistant.store.audit_entries("default") == []
    assert assistant.store.audit_entries("acme", skill="refuser") == []


def test_a_skill_can_shorten_the_answer_and_add_stops_but_not_lengthen_it(make):
    llm = InstantModel(("ok.",))
    assistant = make(llm)
    ask(assistant, "hello", "counter", max_tokens=16)
    ask(assistant, "hello", "counter", max_tokens=2)
    assert [(p.max_tokens, p.stop) for p in llm.calls] == [(3, ["\n", "END"]), (2, ["\n", "END"])]


def test_typed_control_results_reach_the_client_and_two_refusals_call_a_person(make):
    assistant = make()
    first = ask(assistant, "please help", "refuser")
    assert first.lepton["declined"] is True and first.lepton["safety"] == "emergency"
    assert first.lepton["handoff"] == {"state": "none"}
    second = ask(assistant, "still nothing?", "refuser", first.conversation_id)
    assert "safety" not in second.lepton  # a turn's outputs never leak into the next
    assert second.lepton["handoff"]["state"] == "pending" and second.lepton["handoff"]["reason"] == "repeated_failure"


def test_a_skill_whose_setup_fails_is_left_out_and_the_rest_serve(make):
    assistant = make()
    assert set(assistant.skills) == {"counter", "refuser"}
    assert "model file missing" in assistant.loaded.failures["broken"]
    assert "broken" not in assistant.router._classes
    assert ask(assistant, "counter one", "assistant").skill == "counter"


def test_the_graph_context_is_read_only(make):
    assistant = make()
    context = TurnContext(tenant_id="t", conversation_id="c", llm=InstantModel(), params=GenerationParams(),
                          envs=assistant.envs, adapter_for=lambda name: None, cancelled=threading.Event())
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.tenant_id = "other"


def test_a_knowledge_store_outage_during_a_turn_is_an_openai_shaped_503(settings, encoder, start_server):
    """Chroma is configured as a server that is not there: customer service's search fails."""
    from tests.conftest import free_port

    down = settings.model_copy(update={"chroma_url": f"http://127.0.0.1:{free_port()}"})
    assistant = Assistant(down, InstantModel(), load_skills(["customer_service"]), encoder)
    live = start_server(down, assistant)
    try:
        response = httpx.post(f"{live.base_url}/v1/chat/completions", timeout=60, json={
            "model": "customer_service", "messages": [{"role": "user", "content": "Where is my parcel?"}]})
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "knowledge_unavailable" and error["type"] == "server_error"
        assert "Chroma" in error["message"] and response.headers["retry-after"] == "5"
        assert assistant.store._conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0
    finally:
        assistant.close()
