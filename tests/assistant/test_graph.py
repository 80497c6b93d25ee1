"""The agent graph end to end on the real model: memory across turns, input
guards, and no half-stored turn when the backend fails mid-answer."""

from __future__ import annotations

import pytest

from assistant import Assistant
from assistant.errors import BackendError, ConversationNotFound, InvalidRequest, UnknownSkill
from assistant.llm import Generation, GenerationParams

pytestmark = pytest.mark.slow

PARAMS = GenerationParams(max_tokens=6)


class Recording:
    """The real model, plus a record of every prompt it was given."""

    def __init__(self, inner, fail_after: int | None = None):
        self.inner, self.name, self.prompts, self.fail_after = inner, inner.name, [], fail_after

    def stream(self, messages, params, *, adapter=None):
        self.prompts.append(messages)
        generation = self.inner.stream(messages, params, adapter=adapter)
        if self.fail_after is None:
            return generation

        def failing():
            for i, piece in enumerate(generation):
                if i == self.fail_after:
                    generation.close()
                    raise BackendError("connection to the model was lost")
                yield piece

        return Generation(failing(), generation.close)

    def complete(self, messages, params, *, adapter=None):
        return self.stream(messages, params, adapter=adapter).collect()

    def load_adapter(self, name, path):
        self.inner.load_adapter(name, path)

    def adapters(self):
        return self.inner.adapters()


def say(assistant, text, conversation=None, model="customer_service"):
    return assistant.run_turn(assistant.start_turn([{"role": "user", "content": text}], model=model,
                                                   conversation_id=conversation, params=PARAMS))


def test_second_turn_prompt_contains_the_first_turn(settings, llm):
    recording = Recording(llm)
    assistant = Assistant.from_settings(settings, llm=recording)
    first = say(assistant, "My name is Ada and my order is 4417.")
    second = say(assistant, "What is my order number?", first.conversation_id)
    prompt = recording.prompts[-1]
    assert prompt[0]["role"] == "system"
    assert [m["content"] for m in prompt[1:]] == [
        "My name is Ada and my order is 4417.", first.reply, "What is my order number?"]
    assert second.conversation_id == first.conversation_id
    assert assistant.store.turn_count("default", first.conversation_id) == 2
    assistant.close()


def test_routing_streams_the_skill_before_any_text(assistant):
    request = assistant.start_turn([{"role": "user", "content": "I think my ankle is broken, it is very swollen"}],
                                   params=PARAMS)
    events = []
    turn = assistant.run_turn(request, lambda kind, value: events.append((kind, value)))
    assert events[0] == ("route", "medical_triage")
    assert all(kind == "delta" for kind, _ in events[1:])
    assert "".join(v for _, v in events[1:]) == turn.reply
    assert turn.route_scores["medical_triage"] > 0.55


def test_backend_failure_mid_answer_stores_nothing(settings, llm):
    healthy = Assistant.from_settings(settings, llm=llm)
    first = say(healthy, "Where is my parcel?")
    history = healthy.history("default", first.conversation_id)
    healthy.close()

    broken = Assistant.from_settings(settings, llm=Recording(llm, fail_after=1))
    turn = broken.start_turn([{"role": "user", "content": "It has been a week."}], model="customer_service",
                             conversation_id=first.conversation_id, params=PARAMS)
    with pytest.raises(BackendError):
        broken.run_turn(turn)
    new = broken.start_turn([{"role": "user", "content": "Hello?"}], model="customer_service", params=PARAMS)
    with pytest.raises(BackendError):
        broken.run_turn(new)
    assert broken.history("default", first.conversation_id) == history
    with pytest.raises(ConversationNotFound):
        broken.history("default", new.conversation_id)
    broken.close()


def test_a_turn_commits_its_state_and_its_record_together_or_not_at_all(settings, llm, monkeypatch):
    """The conversation's state (the checkpointer's tables) and its record (the store's)
    are written in one transaction: a failure while the record is written rolls the new
    state back too, as a process killed at that moment would leave it."""
    assistant = Assistant.from_settings(settings, llm=llm)
    first = say(assistant, "Where is my parcel?")
    history = assistant.history("default", first.conversation_id)

    def fail(*args, **kwargs):
        raise OSError("disk I/O error")

    monkeypatch.setattr(assistant.store, "record_turn", fail)
    turn = assistant.start_turn([{"role": "user", "content": "It has been a week."}], model="customer_service",
                                conversation_id=first.conversation_id, params=PARAMS)
    with pytest.raises(OSError):
        assistant.run_turn(turn)
    monkeypatch.undo()
    assert assistant.history("default", first.conversation_id) == history
    assert assistant.store.turn_count("default", first.conversation_id) == 1
    # The connection is usable afterwards: the next turn is stored whole.
    say(assistant, "Are you there?", first.conversation_id)
    assert len(assistant.history("default", first.conversation_id)) == len(history) + 2
    assistant.close()


def test_card_numbers_never_reach_the_model_or_the_history(settings, llm):
    recording = Recording(llm)
    assistant = Assistant.from_settings(settings, llm=recording)
    turn = say(assistant, "Charge my card 4111 1111 1111 1111 please")
    assert "4111" not in str(recording.prompts[-1])
    stored = assistant.history("default", turn.conversation_id)[0]["content"]
    assert stored == "Charge my card [card number removed] please"
    assert turn.lepton["masked_card_numbers"] == 1
    assistant.close()


def test_a_tenant_that_opts_in_has_contact_details_masked_before_anything_sees_them(settings, llm):
    recording = Recording(llm)
    assistant = Assistant.from_settings(settings.model_copy(update={"mask_contacts": ["default"]}), llm=recording)
    turn = say(assistant, "Reply to ada@example.org or call 020 7946 0958 about order 5551234567")
    assert "ada@" not in str(recording.prompts[-1]) and "7946" not in str(recording.prompts[-1])
    stored = assistant.history("default", turn.conversation_id)[0]["content"]
    assert stored == "Reply to [e-mail address removed] or call [phone number removed] about order 5551234567"
    assistant.close()


def test_data_files_are_private_to_the_user(settings, llm):
    assistant = Assistant.from_settings(settings, llm=llm)
    say(assistant, "hello")
    assert settings.db_path.stat().st_mode & 0o777 == 0o600
    assert settings.db_path.parent.stat().st_mode & 0o777 == 0o700
    for companion in settings.db_path.parent.glob(settings.db_path.name + "-*"):  # -wal, -shm
        assert companion.stat().st_mode & 0o077 == 0, companion
    assistant.close()


def test_tenants_cannot_see_each_others_conversations(assistant):
    turn = say(assistant, "Where is my parcel?")
    with pytest.raises(ConversationNotFound):
        assistant.start_turn([{"role": "user", "content": "hi"}], conversation_id=turn.conversation_id,
                             tenant_id="other-shop")
    with pytest.raises(ConversationNotFound):
        assistant.history("other-shop", turn.conversation_id)


@pytest.mark.parametrize("messages,model,error", [
    ([], "assistant", InvalidRequest),
    ([{"role": "user", "content": "hi"}], "nope", UnknownSkill),
    ([{"role": "robot", "content": "hi"}], "assistant", InvalidRequest),
    ([{"role": "assistant", "content": "hi"}], "assistant", InvalidRequest),
])
def test_invalid_turns_are_refused_before_anything_runs(assistant, messages, model, error):
    with pytest.raises(error):
        assistant.start_turn(messages, model=model)
    assert assistant.store._conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0
