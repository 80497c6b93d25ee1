"""Conversations as OpenAI clients hold them: routing in the context of the
conversation's skill and the tenant's help centre, the client's system messages
in the model's prompt, and continuation by a resent history. The built-in skills,
the real router and SQLite; the model is a stand-in that records its prompts."""

from __future__ import annotations

import pytest

from assistant import Assistant
from assistant.router import OUT_OF_SCOPE, ContextPolicy, Route, route_in_context
from retrieval import KnowledgeStore, ensure_demo_help_centre
from skills import load_skills
from tests.standins import InstantModel

pytestmark = pytest.mark.slow


def route(**scores: float) -> Route:
    best = max(scores, key=scores.__getitem__)
    return Route(best if best != OUT_OF_SCOPE and scores[best] >= 0.55 else OUT_OF_SCOPE, scores[best], scores)


POLICY = ContextPolicy(switch=0.7, leave=0.8, knowledge=0.45, short_reply=3)


@pytest.mark.parametrize("scores,current,expected", [
    # unsure follow-ups stay with the conversation's skill
    ({"medical_triage": 0.3, "recommendation": 0.2, OUT_OF_SCOPE: 0.5}, "medical_triage", "medical_triage"),
    ({"medical_triage": 0.1, "credit_scoring": 0.6, OUT_OF_SCOPE: 0.3}, "medical_triage", "medical_triage"),
    # a confident switch moves
    ({"medical_triage": 0.1, "recommendation": 0.85, OUT_OF_SCOPE: 0.05}, "medical_triage", "recommendation"),
    # clearly out of scope leaves; the same score on a new conversation is out of scope
    ({"medical_triage": 0.05, "recommendation": 0.05, OUT_OF_SCOPE: 0.9}, "medical_triage", OUT_OF_SCOPE),
    ({"medical_triage": 0.3, "recommendation": 0.2, OUT_OF_SCOPE: 0.5}, None, OUT_OF_SCOPE),
    # out of scope as the conversation's last turn is no skill to stay with
    ({"medical_triage": 0.3, "recommendation": 0.2, OUT_OF_SCOPE: 0.5}, OUT_OF_SCOPE, OUT_OF_SCOPE),
])
def test_context_keeps_unsure_follow_ups_and_lets_confident_switches_move(scores, current, expected):
    message = "what is the weather like in Leeds tomorrow"
    assert route_in_context(route(**scores), message, current=current, policy=POLICY).skill == expected


def test_a_short_reply_never_leaves_the_skill_however_out_of_scope_it_looks():
    scores = route(medical_triage=0.02, recommendation=0.02, **{OUT_OF_SCOPE: 0.96})
    assert route_in_context(scores, "since Monday", current="medical_triage", policy=POLICY).skill == "medical_triage"
    assert route_in_context(scores, "since Monday", current=None, policy=POLICY).skill == OUT_OF_SCOPE


def test_a_message_the_help_centre_answers_goes_to_the_skill_that_owns_it():
    asked = []

    def knowledge(skill, collection, message):
        asked.append((skill, collection))
        return 0.62 if "domain" in message else 0.2

    owners = {"customer_service": "help_centre"}
    unsure = route(customer_service=0.1, recommendation=0.2, **{OUT_OF_SCOPE: 0.7})
    found = route_in_context(unsure, "how do I connect my domain", current=None, policy=POLICY, owners=owners,
                             knowledge=knowledge)
    assert found.skill == "customer_service" and asked == [("customer_service", "help_centre")]
    assert route_in_context(unsure, "tell me a joke", current=None, policy=POLICY, owners=owners,
                            knowledge=knowledge).skill == OUT_OF_SCOPE
    # a message routed confidently on its own never costs a knowledge lookup
    sure = route(customer_service=0.05, recommendation=0.9, **{OUT_OF_SCOPE: 0.05})
    asked.clear()
    assert route_in_context(sure, "a gift for my domain-expert dad", current=None, policy=POLICY, owners=owners,
                            knowledge=knowledge).skill == "recommendation"
    assert asked == []


@pytest.fixture
def model():
    return InstantModel(("Noted.",))


@pytest.fixture
def make(settings, model, help_centre_store):
    made = []

    def build(knowledge=None):
        assistant = Assistant(settings, model, load_skills(), _encoder(), knowledge)
        made.append(assistant)
        return assistant

    yield build
    for assistant in made:
        assistant.close()


_ENCODER = []


def _encoder():
    if not _ENCODER:
        from retrieval.query_encoder import load_query_encoder

        _ENCODER.append(load_query_encoder(None, int8=True))
    return _ENCODER[0]


def turn(assistant, messages, **options):
    return assistant.run_turn(assistant.start_turn(messages, **options))


def test_a_follow_up_stays_in_triage_where_on_its_own_it_is_out_of_scope(make):
    assistant = make()
    first = turn(assistant, [{"role": "user", "content": "I have had a fever since yesterday"}])
    assert first.skill == "medical_triage"
    alone = turn(assistant, [{"role": "user", "content": "It is 39.5 now"}])
    assert alone.skill != "medical_triage"  # what the README's example used to get
    follow_up = turn(assistant, [{"role": "user", "content": "It is 39.5 now"}], conversation_id=first.conversation_id)
    assert follow_up.skill == "medical_triage"
    switch = turn(assistant, [{"role": "user", "content": "by the way, can you recommend a birthday gift for my dad?"}],
                  conversation_id=first.conversation_id)
    assert switch.skill == "recommendation"


def test_help_centre_questions_reach_customer_service_on_a_tenant_with_the_articles(make, help_centre_store):
    question = [{"role": "user", "content": "How do I block off time slots in a staff schedule for a single staff member?"}]
    without = make()  # this data directory's default tenant has no help centre
    assert turn(without, question).skill == OUT_OF_SCOPE
    with_articles = make(help_centre_store)
    assert turn(with_articles, question).skill == "customer_service"


def test_client_system_and_developer_messages_reach_the_model_after_the_skills_rules(make, model):
    assistant = make()
    turn(assistant, [{"role": "system", "content": "Always answer in French."},
                     {"role": "user", "content": "My parcel never arrived"}], model="customer_service")
    system = model.prompts[-1][0]
    assert system["role"] == "system"
    skill_rules = load_skills().skills["customer_service"].system_prompt
    assert system["content"].startswith(skill_rules)  # the skill's rules first: they keep precedence
    assert system["content"].endswith("Always answer in French.")
    assert sum(m["role"] == "system" for m in model.prompts[-1]) == 1  # not passed on a second time


def test_without_client_instructions_the_prompt_is_the_skills_own(make, model):
    assistant = make()
    turn(assistant, [{"role": "user", "content": "My parcel never arrived"}], model="customer_service")
    assert model.prompts[-1][0]["content"] == load_skills().skills["customer_service"].system_prompt


def resend(history, result, text):
    return history + [{"role": "assistant", "content": result.reply}, {"role": "user", "content": text}]


def test_a_resent_history_continues_its_conversation_and_its_handoff_offer(make, settings):
    assistant = make()
    history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "I have had a fever since yesterday"}]
    first = turn(assistant, history)
    history = resend(history, first, "It is 39.5 now")
    second = turn(assistant, history)
    assert second.conversation_id == first.conversation_id and second.skill == "medical_triage"
    stored = assistant.history(settings.default_tenant, first.conversation_id)
    assert [m["content"] for m in stored] == [m["content"] for m in history] + [second.reply]
    assert assistant.store.turn_count(settings.default_tenant, first.conversation_id) == 2


def test_unanswered_turns_and_the_offer_of_a_person_count_across_resent_turns(make, help_centre_store):
    assistant = make(help_centre_store)
    history = [{"role": "user", "content": "what is the capital of Australia?"}]
    first = turn(assistant, history)
    assert first.skill == OUT_OF_SCOPE and first.lepton["handoff"]["state"] == "none"
    second = turn(assistant, resend(history, first, "who won the football last night?"))
    assert second.conversation_id == first.conversation_id
    assert second.lepton["handoff"]["state"] == "pending"  # the second unanswered turn in a row
    # a declined answer offers a person; "yes", resent with the history, takes the offer up
    history = [{"role": "user", "content": "where is my parcel? it was due on Monday"}]
    declined = turn(assistant, history, model="customer_service")  # the help centre has no answer
    assert declined.lepton.get("declined")
    accepted = turn(assistant, resend(history, declined, "yes please"), model="customer_service")
    assert accepted.conversation_id == declined.conversation_id and accepted.skill == "handoff"


def test_resent_histories_never_cross_users_tenants_or_ambiguous_transcripts(make):
    assistant = make()
    opening = [{"role": "user", "content": "I have had a fever since yesterday"}]
    first = turn(assistant, opening, user="alice")
    follow = resend(opening, first, "It is 39.5 now")
    assert turn(assistant, follow, user="bob").conversation_id != first.conversation_id
    assert turn(assistant, follow, tenant_id="other", user="alice").conversation_id != first.conversation_id
    assert turn(assistant, follow, user="alice").conversation_id == first.conversation_id
    # two conversations whose transcripts read the same: neither is continued
    a = turn(assistant, [{"role": "user", "content": "my knee hurts when I walk"}])
    b = turn(assistant, [{"role": "user", "content": "my knee hurts when I walk"}])
    assert a.reply == b.reply and a.conversation_id != b.conversation_id
    resent = resend([{"role": "user", "content": "my knee hurts when I walk"}], a, "for two weeks")
    assert turn(assistant, resent).conversation_id not in (a.conversation_id, b.conversation_id)


def test_a_resent_history_that_was_edited_starts_a_new_conversation(make):
    assistant = make()
    opening = [{"role": "user", "content": "I have had a fever since yesterday"}]
    first = turn(assistant, opening)
    edited = [{"role": "user", "content": "I have had a fever since Monday"},
              {"role": "assistant", "content": first.reply}, {"role": "user", "content": "It is 39.5 now"}]
    again = turn(assistant, edited)
    assert again.conversation_id != first.conversation_id
