"""The clients integrators use, against a real server on loopback with the real
embedded model: the official openai SDK (sync, async, streaming), LangChain's
ChatOpenAI, LiteLLM and LlamaIndex's OpenAI-like client. Also what the API
refuses rather than ignores, and its model and unknown-path answers."""

from __future__ import annotations

import asyncio
import os

import httpx
import openai
import pytest

from assistant import Assistant

pytestmark = pytest.mark.slow

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM must not fetch its price list

FEVER = "I have had a fever since yesterday"
PARCEL = "My parcel never arrived"


class Recording:
    """The real model, recording the messages of every call."""

    def __init__(self, inner):
        self.inner = inner
        self.prompts: list[list[dict]] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stream(self, messages, params, *, adapter=None):
        self.prompts.append([dict(m) for m in messages])
        return self.inner.stream(messages, params, adapter=adapter)


@pytest.fixture
def recorded(settings, llm):
    model = Recording(llm)
    assistant = Assistant.from_settings(settings, llm=model)
    yield assistant, model
    assistant.close()


@pytest.fixture
def server(settings, recorded, start_server):
    return start_server(settings, recorded[0])


def conversations(assistant) -> list[str]:
    return [row[0] for row in assistant.store._conn.execute("SELECT conversation_id FROM conversations")]


def test_openai_sdk_sync_async_and_streaming(server):
    api = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused")
    answer = api.chat.completions.create(model="assistant", messages=[{"role": "user", "content": FEVER}],
                                         max_tokens=8)
    assert answer.choices[0].message.content and answer.model_extra["lepton"]["skill"] == "medical_triage"
    pieces = [c.choices[0].delta.content or "" for c in api.chat.completions.create(
        model="medical_triage", messages=[{"role": "user", "content": FEVER}], max_tokens=8, stream=True) if c.choices]
    assert "".join(pieces).strip()

    async def both():
        client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="unused")
        reply = await client.chat.completions.create(model="medical_triage", max_tokens=8,
                                                     messages=[{"role": "user", "content": FEVER}])
        stream = await client.chat.completions.create(model="medical_triage", max_tokens=8, stream=True,
                                                      messages=[{"role": "user", "content": FEVER}])
        streamed = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return reply.choices[0].message.content, "".join(streamed)

    reply, streamed = asyncio.run(both())
    assert reply.strip() and streamed.strip()
    assert api.models.retrieve("medical_triage").id == "medical_triage"


def test_langchain_keeps_one_conversation_and_its_skill_and_passes_the_system_prompt(server, recorded):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    assistant, model = recorded
    chat = ChatOpenAI(base_url=server.base_url + "/v1", api_key="unused", model="assistant", max_tokens=8)
    history = [SystemMessage("You work for Example Shop."), HumanMessage(PARCEL)]
    first = chat.invoke(history)
    assert first.content.strip()
    assert model.prompts[-1][0]["content"].endswith("You work for Example Shop.")
    history += [AIMessage(first.content), HumanMessage("It was due on Monday")]
    second = "".join(chunk.content for chunk in chat.stream(history))
    assert second.strip()
    [conversation] = conversations(assistant)  # the resent history continued it
    stored = assistant.history(assistant.settings.default_tenant, conversation)
    assert [m["content"] for m in stored][:4] == [m.content for m in history]
    assert assistant.store._conn.execute("SELECT last_skill FROM conversations").fetchone()[0] == "customer_service"


def test_langchain_structured_output_is_refused_not_answered_with_none(server):
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    class Triage(BaseModel):
        level: str

    chat = ChatOpenAI(base_url=server.base_url + "/v1", api_key="unused", model="assistant", max_tokens=8)
    with pytest.raises(openai.BadRequestError) as refused:
        chat.with_structured_output(Triage, method="function_calling").invoke(FEVER)
    assert refused.value.code == "unsupported_parameter"
    assert "tool and function calling are not supported" in refused.value.message


def test_litellm(server):
    import litellm

    answer = litellm.completion(model="openai/medical_triage", api_base=server.base_url + "/v1", api_key="unused",
                                messages=[{"role": "user", "content": FEVER}], max_tokens=8)
    assert answer.choices[0].message.content.strip()


def test_llamaindex_as_a_chat_model_and_the_404_that_says_so_without(server):
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    common = dict(model="medical_triage", api_base=server.base_url + "/v1", api_key="unused", max_tokens=8)
    answer = OpenAILike(is_chat_model=True, **common).chat([ChatMessage(role="user", content=FEVER)])
    assert answer.message.content.strip()
    with pytest.raises(openai.NotFoundError) as missing:  # its default: the legacy /v1/completions
        OpenAILike(**common).complete(FEVER)
    assert "POST /v1/completions is not an endpoint" in missing.value.message
    assert "POST /v1/chat/completions" in missing.value.message


REFUSED = [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
     "messages.0.content.0"),
]


@pytest.mark.parametrize("extra,param", REFUSED, ids=[p for _, p in REFUSED])
def test_what_the_assistant_does_not_do_is_refused_by_name_and_stores_nothing(server, recorded, extra, param):
    body = {"model": "assistant", "messages": [{"role": "user", "content": FEVER}], **extra}
    response = httpx.post(server.base_url + "/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsupported_parameter" and error["param"] == param
    assert conversations(recorded[0]) == []


def test_text_parts_plain_options_and_penalties_are_accepted(server, recorded):
    assistant, model = recorded
    body = {"model": "customer_service", "max_completion_tokens": 4, "seed": 7, "presence_penalty": 0.5,
            "frequency_penalty": 0.5, "response_format": {"type": "text"}, "logprobs": False, "store": False,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "My parcel "},
                                                      {"type": "text", "text": "never arrived"}]}]}
    response = httpx.post(server.base_url + "/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert model.prompts[-1][-1]["content"] == PARCEL
    assert response.json()["usage"]["completion_tokens"] <= 4


def test_models_by_id_and_unknown_paths_answer_in_the_openai_shape(server):
    found = httpx.get(server.base_url + "/v1/models/assistant")
    assert found.status_code == 200 and found.json()["id"] == "assistant" and found.json()["object"] == "model"
    missing = httpx.get(server.base_url + "/v1/models/gpt-4")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert "available: assistant" in missing.json()["error"]["message"]
    unknown = httpx.post(server.base_url + "/v1/embeddings", json={"input": "x"})
    assert unknown.status_code == 404
    error = unknown.json()["error"]
    assert error["code"] == "unknown_endpoint" and "GET /v1/models/{model_id}" in error["message"]
