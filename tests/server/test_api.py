"""The OpenAI-compatible API through the official openai client against a real
uvicorn server on loopback, answered by the real embedded model."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from assistant import Assistant

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(settings, records):
    """Every test of this file runs on the SQLite file and again on PostgreSQL."""
    return settings.model_copy(update={"database_url": records})


def client(live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.base_url + "/v1", api_key="unused", max_retries=0)


def lepton_of(obj) -> dict:
    return obj.model_extra["lepton"]


def test_models_lists_assistant_and_every_skill(live):
    ids = [m.id for m in client(live).models.list().data]
    assert ids[0] == "assistant"
    # The built-in skills, and any plugin skill installed beside them.
    assert set(ids[1:]) >= {"customer_service", "medical_triage", "credit_scoring", "recommendation"}
    assert len(ids) == len(set(ids))


def test_non_streaming_completion_is_routed_and_counted(live):
    response = client(live).chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "My card was stolen yesterday, what should I do?"}],
        max_tokens=12,
    )
    assert response.object == "chat.completion"
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content.strip()
    assert response.choices[0].finish_reason in ("stop", "length")
    assert 0 < response.usage.completion_tokens <= 12
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    extra = lepton_of(response)
    assert extra["skill"] == "customer_service"
    assert extra["conversation_id"].startswith("conv_")


def test_streaming_sends_lepton_first_usage_last_and_done(live):
    stream = client(live).chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "My parcel never arrived, can you help me track my order?"}],
        max_tokens=10,
        stream=True,
    )
    chunks = list(stream)
    assert lepton_of(chunks[0])["skill"] == "customer_service"
    assert lepton_of(chunks[0])["conversation_id"].startswith("conv_")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].usage.completion_tokens > 0

    # The raw stream is SSE and ends with the [DONE] sentinel.
    with httpx.stream("POST", live.base_url + "/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "hello, I need a loan of 2000 pounds"}],
        "stream": True, "max_tokens": 4,
    }) as raw:
        lines = [line for line in raw.iter_lines() if line]
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][len("data: "):])["lepton"]["skill"] == "credit_scoring"


def test_explicit_skill_bypasses_routing(live):
    response = client(live).chat.completions.create(
        model="recommendation", messages=[{"role": "user", "content": "what's the weather in Paris?"}], max_tokens=4
    )
    assert lepton_of(response)["skill"] == "recommendation"
    assert response.model == "recommendation"


def test_out_of_scope_message_gets_what_the_assistant_can_do(live):
    response = client(live).chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "Who won the world cup in 1998?"}]
    )
    assert lepton_of(response)["skill"] == "out_of_scope"
    assert "I can help with" in response.choices[0].message.content
    assert response.usage.completion_tokens == 0  # no model call


def test_two_turn_conversation_remembers_and_survives_restart(settings, assistant, llm, start_server):
    live = start_server(settings, assistant)
    api = client(live)
    first = api.chat.completions.create(
        model="customer_service", messages=[{"role": "user", "content": "My order number is 4417."}], max_tokens=8
    )
    conversation = lepton_of(first)["conversation_id"]
    # Continue by body field, as an OpenAI client would (extra_body), then by header.
    second = api.chat.completions.create(
        model="customer_service",
        messages=[{"role": "user", "content": "What was my order number?"}],
        max_tokens=8,
        extra_body={"lepton": {"conversation_id": conversation}},
    )
    assert lepton_of(second)["conversation_id"] == conversation
    # The model saw the first turn: the second prompt is longer by the whole first exchange.
    assert second.usage.prompt_tokens > first.usage.prompt_tokens + 8

    history = httpx.get(f"{live.base_url}/v1/conversations/{conversation}").json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["content"] == "My order number is 4417."
    assert history[1]["content"] == first.choices[0].message.content

    # Restart: a new server process state over the same data directory.
    live.stop()
    restarted = Assistant.from_settings(settings, llm=llm)
    try:
        live2 = start_server(settings, restarted)
        third = client(live2).chat.completions.create(
            model="customer_service",
            messages=[{"role": "user", "content": "Thanks!"}],
            max_tokens=4,
            extra_headers={"X-Conversation-Id": conversation},
        )
        assert lepton_of(third)["conversation_id"] == conversation
        after = httpx.get(f"{live2.base_url}/v1/conversations/{conversation}").json()["messages"]
        assert len(after) == 6 and after[:4] == history
    finally:
        restarted.close()


def _post(live, body, **kwargs) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return httpx.post(live.base_url + "/v1/chat/completions", content=body, **kwargs)
    return httpx.post(live.base_url + "/v1/chat/completions", json=body, **kwargs)


USER = [{"role": "user", "content": "hello"}]

BAD_INPUTS = [
    # (what the client sends, status, what the error message tells the user)
    ("{not json", 400, "not valid JSON"),
    ({"model": "assistant"}, 400, "'messages' is required"),
    ({"messages": []}, 400, "at least 1 item"),
    ({"messages": "hello"}, 400, "messages"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role 'wizard' is not supported"),
    ({"messages": [{"role": "tool", "content": "hi"}]}, 400, "messages[0].role 'tool': tool and function calling"),
    ({"messages": [{"role": "user"}]}, 400, "'messages.0.content' is required"),
    ({"messages": [{"role": "user", "content": 42}]}, 400, "messages.0.content"),
    ({"messages": [{"role": "user", "content": "   "}]}, 400, "last user message is empty"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, 400,
     "last message must have role 'user'"),
    ({"messages": USER, "model": "no_such_skill"}, 404, "does not exist"),
    ({"messages": USER, "model": 7}, 400, "model"),
    ({"messages": USER, "temperature": "hot"}, 400, "temperature"),
    ({"messages": USER, "temperature": 9}, 400, "temperature"),
    ({"messages": USER, "max_tokens": 0}, 400, "max_tokens"),
    ({"messages": USER, "max_tokens": "ten"}, 400, "max_tokens"),
    ({"messages": USER, "stream": "yes"}, 400, "stream"),
    ({"messages": USER, "n": 3}, 400, "n"),
    ({"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"messages": USER, "lepton": {"conversation_id": "conv_missing"}}, 404, "not found"),
    ({"messages": USER, "lepton": {"conversation": "x"}}, 400, "lepton"),
    ({"messages": [{"role": "user", "content": "x" * 9000}]}, 400, "limit is 8000"),
    ({"messages": [{"role": "user", "content": "hi"}] * 201}, 400, "messages has 201 items; the limit is 200"),
]


@pytest.mark.parametrize("body,status,message", BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_input_gets_openai_shaped_4xx_and_stores_nothing(live, assistant, body, status, message):
    before = assistant.store._conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
    response = _post(live, body, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert message in error["message"]
    assert error["type"] == "invalid_request_error"
    after = assistant.store._conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
    assert after == before


def test_oversized_body_is_refused_with_413(live):
    huge = json.dumps({"messages": [{"role": "user", "content": "x" * 2_000_000}]})
    response = _post(live, huge, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]


def test_openai_client_raises_clear_errors(live):
    api = client(live)
    with pytest.raises(openai.NotFoundError) as missing_model:
        api.chat.completions.create(model="gpt-4", messages=USER)
    assert "model 'gpt-4' does not exist" in missing_model.value.message
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(model="assistant", messages=[])


def test_unknown_conversation_history_is_404(live):
    response = httpx.get(live.base_url + "/v1/conversations/conv_nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "conversation_not_found"


def test_health(live):
    assert httpx.get(live.base_url + "/healthz").json() == {"status": "ok"}


class CountingModel:
    """The real model, counting the pieces each generation handed out."""

    def __init__(self, inner):
        self.inner, self.pieces = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stream(self, messages, params, *, adapter=None):
        from assistant.llm import Generation

        generation = self.inner.stream(messages, params, adapter=adapter)
        self.pieces.append(0)

        def counted():
            for piece in generation:
                self.pieces[-1] += 1
                yield piece

        return Generation(counted(), generation.close)


def test_client_leaving_mid_stream_stops_the_model_and_stores_nothing(settings, llm, start_server):
    counting = CountingModel(llm)
    assistant = Assistant.from_settings(settings, llm=counting)
    try:
        live = start_server(settings, assistant)
        first = client(live).chat.completions.create(
            model="customer_service", messages=[{"role": "user", "content": "My parcel is late"}], max_tokens=4)
        conversation = lepton_of(first)["conversation_id"]
        history = assistant.history("default", conversation)

        # The user closes the page after the first words of a long answer.
        with httpx.stream("POST", live.base_url + "/v1/chat/completions", json={
            "model": "customer_service", "stream": True, "max_tokens": 200,
            "messages": [{"role": "user", "content": "Tell me everything about your delivery options"}],
            "lepton": {"conversation_id": conversation},
        }) as response:
            lines = response.iter_lines()
            assert any('"content": "' in line and '"content": ""' not in line for line in lines)
        # Turns of one conversation run one after another, so this one starts once the
        # abandoned turn has ended.
        after = client(live).chat.completions.create(
            model="customer_service", messages=[{"role": "user", "content": "And returns?"}], max_tokens=4,
            extra_body={"lepton": {"conversation_id": conversation}})

        # The model was stopped long before 200 tokens, and the abandoned turn left no trace.
        assert counting.pieces[1] < 50
        stored = assistant.history("default", conversation)
        assert stored[:2] == history and [m["content"] for m in stored[2:]] == [
            "And returns?", after.choices[0].message.content]
        assert assistant.store.turn_count("default", conversation) == 2
    finally:
        assistant.close()
