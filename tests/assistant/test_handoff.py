"""Human handoff in the graph: when a conversation goes to a person, the
assistant's silence afterwards, agent replies, release, and restarts."""

from __future__ import annotations

import pytest

from assistant import Assistant
from assistant.errors import ConversationNotFound, HandoffStateError
from assistant.handoff import frustration, is_affirmative, wants_person
from assistant.prompts import HANDOFF_REPLY
from skills.customer_service import DECLINE_REPLY


@pytest.mark.parametrize(
    "text",
    [
        "Can I speak to a human agent please?",
        "I want to talk to a real person",
        "let me chat with one of your agents",
        "connect me to someone who can actually help",
        "Transfer me now",
        "agent",
        "Human please!",
        "I need a representative",
        "can I speak with customer service",
        "please escalate this",
    ],
)
def test_requests_for_a_person_are_recognised(text):
    assert wants_person(text)


@pytest.mark.parametrize(
    "text",
    [
        "How do I add another person to my account?",
        "Where is my parcel?",
        "I need a personal loan",
        "What is your return policy?",
        "Which agent delivers to Canada?",
        "My card payment keeps getting declined",
    ],
)
def test_ordinary_questions_are_not_requests_for_a_person(text):
    assert not wants_person(text)


def test_affirmative_answers():
    for text in ["yes", "Yes please", "sure!", "ok, thanks", "please do"]:
        assert is_affirmative(text), text
    for text in ["yes but what are the fees?", "no thanks", "maybe later"]:
        assert not is_affirmative(text), text


def test_frustration_scores_list_their_evidence():
    assert frustration("Hello, where is my parcel?").score == 0  # "hello" is not "hell"
    mild = frustration("I'm disappointed, the delivery is late")
    assert (mild.label, mild.terms) == ("negative", ["disappointed"])
    angry = frustration("This is ridiculous, I've waited three weeks!!")
    assert angry.label == "angry" and set(angry.terms) == {"ridiculous", "!!"}
    assert frustration("WHERE IS MY REFUND, I ORDERED IT TWO WEEKS AGO").terms == ["SHOUTING"]


@pytest.fixture
def cs_assistant(settings, llm, help_centre_store):
    a = Assistant.from_settings(settings, llm=llm, knowledge=help_centre_store)
    yield a
    a.close()


def say(assistant, text, conversation=None, model="assistant", **kwargs):
    return assistant.run_turn(assistant.start_turn(
        [{"role": "user", "content": text}], model=model, conversation_id=conversation, **kwargs
    ))


def test_request_hands_off_then_assistant_stays_silent_until_released(settings, llm):
    assistant = Assistant.from_settings(settings, llm=llm)
    try:
        first = say(assistant, "Can I talk to a person about my order?")
        cid = first.conversation_id
        assert first.skill == "handoff" and first.reply == HANDOFF_REPLY
        assert first.lepton["handoff"]["state"] == "pending"
        assert first.lepton["handoff"]["reason"] == "requested"

        # While pending: the message is kept for the agent, the model is never asked.
        waiting = say(assistant, "Hello? My order number is 4411", cid)
        assert waiting.reply == "" and waiting.llm_seconds == 0
        assert waiting.lepton["handoff"]["state"] == "pending"
        assert assistant.history("default", cid)[-1] == {"role": "user", "content": "Hello? My order number is 4411"}

        index = assistant.agent_reply("default", cid, "Hi, I'm Sam. Order 4411 ships tomorrow.", agent="Sam")
        history = assistant.history("default", cid)
        assert history[index] == {"role": "assistant", "content": "Hi, I'm Sam. Order 4411 ships tomorrow.", "agent": "Sam"}

        # The state survives a restart of the assistant.
        assistant.close()
        assistant = Assistant.from_settings(settings, llm=llm)
        assert assistant.handoff_state("default", cid)["state"] == "pending"
        assert say(assistant, "thanks Sam", cid).reply == ""

        assert assistant.release_handoff("default", cid)["state"] == "released"
        after = say(assistant, "What is the capital of France?", cid, model="customer_service")
        assert after.skill == "customer_service" and after.reply and after.llm_seconds > 0
        assert after.lepton["handoff"]["state"] == "released"
        # The agent's message reached the model as plain history (no extra fields).
        assert any(m.get("agent") == "Sam" for m in assistant.history("default", cid))

        with pytest.raises(HandoffStateError):
            assistant.agent_reply("default", cid, "too late")
        with pytest.raises(HandoffStateError):
            assistant.release_handoff("default", cid)
        with pytest.raises(ConversationNotFound):
            assistant.agent_reply("default", "conv_missing", "hello")
    finally:
        assistant.close()


def test_explicit_flag_hands_off_whatever_the_message(assistant):
    turn = say(assistant, "My parcel is late", handoff=True)
    assert turn.skill == "handoff" and turn.lepton["handoff"]["reason"] == "requested"


def test_anger_escalates_at_once_and_a_repeated_complaint_on_the_second(assistant):
    angry = say(assistant, "This is ridiculous and unacceptable, where is my refund?!")
    assert angry.skill == "handoff" and angry.lepton["handoff"]["reason"] == "angry"
    assert angry.lepton["sentiment"] == "angry"

    first = say(assistant, "I'm disappointed, my order is late", model="customer_service")
    assert first.skill == "customer_service" and first.lepton["handoff"] == {"state": "none"}
    assert first.lepton["sentiment"] == "negative"
    second = say(assistant, "Still waiting and the tracking page is wrong", first.conversation_id)
    assert second.skill == "handoff" and second.lepton["handoff"]["reason"] == "repeated_complaint"


def test_two_declines_in_a_row_call_a_person(cs_assistant):
    first = say(cs_assistant, "What is the boiling point of mercury?", model="customer_service")
    assert first.reply == DECLINE_REPLY and first.lepton["handoff"] == {"state": "none"}
    second = say(cs_assistant, "Who won the chess world championship in 1972?", first.conversation_id,
                 model="customer_service")
    assert second.reply == DECLINE_REPLY + "\n\n" + HANDOFF_REPLY
    assert second.lepton["handoff"]["reason"] == "repeated_failure"


def test_yes_after_an_offer_hands_off(cs_assistant):
    first = say(cs_assistant, "What is the boiling point of mercury?", model="customer_service")
    assert first.reply == DECLINE_REPLY  # which offers a person
    yes = say(cs_assistant, "yes please", first.conversation_id)
    assert yes.skill == "handoff" and yes.lepton["handoff"]["reason"] == "requested"
    # Without an offer, "yes" is just a message.
    plain = say(cs_assistant, "yes please", model="recommendation")
    assert plain.skill == "recommendation"
