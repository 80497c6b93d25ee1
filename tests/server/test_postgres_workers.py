"""Two API servers ("workers") on one real PostgreSQL database (tests/postgres.py),
with the real embedded model, driven by the official openai client and plain HTTP:
a conversation started on one continues on the other, a handoff opened on one
is seen, answered and released on the other, and the rate limits count the
requests to both."""

from __future__ import annotations

import httpx
import openai
import pytest

from assistant import Assistant, Settings
from assistant.prompts import HANDOFF_REPLY

pytestmark = pytest.mark.slow


@pytest.fixture
def start_workers(tmp_path, model_path, llm, postgres_url, start_server):
    made = []

    def start(**settings):
        for name in ("one", "two"):
            worker = Settings(data_dir=tmp_path / name, model=model_path, max_tokens=8, admin_access="loopback",
                              database_url=postgres_url, **settings)
            assistant = Assistant.from_settings(worker, llm=llm)
            made.append((start_server(worker, assistant), assistant))
        return [server for server, _ in made]

    yield start
    for _, assistant in made:
        assistant.close()


@pytest.fixture
def workers(start_workers):
    return start_workers()


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


def test_a_conversation_moves_between_workers(workers):
    one, two = workers
    assert httpx.get(one.base_url + "/readyz").json()["database"] == "ok"
    first = client(one).chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "My parcel never arrived"}], max_tokens=6)
    conversation = first.model_extra["lepton"]["conversation_id"]
    second = client(two).chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "It was due last Monday"}], max_tokens=6,
        extra_body={"lepton": {"conversation_id": conversation}})
    assert second.model_extra["lepton"]["conversation_id"] == conversation
    assert second.model_extra["lepton"]["skill"] == "customer_service"  # the follow-up stays with its skill
    seen = httpx.get(f"{one.base_url}/v1/conversations/{conversation}").json()
    assert [m["content"] for m in seen["messages"]] == [
        "My parcel never arrived", first.choices[0].message.content,
        "It was due last Monday", second.choices[0].message.content]


def test_a_handoff_opened_on_one_worker_is_handled_on_the_other(workers):
    one, two = workers
    asked = client(one).chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "I want to talk to a real person please"}])
    conversation = asked.model_extra["lepton"]["conversation_id"]
    assert asked.choices[0].message.content == HANDOFF_REPLY
    admin = httpx.Client(base_url=two.base_url + "/admin", timeout=30)
    assert [h["conversation_id"] for h in admin.get("/handoffs").json()["data"]] == [conversation]
    waiting = client(two).chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "My order is 1234"}],
        extra_body={"lepton": {"conversation_id": conversation}})
    assert waiting.choices[0].message.content == "" and waiting.model_extra["lepton"]["handoff"]["state"] == "pending"
    assert admin.post(f"/conversations/{conversation}/messages", json={"content": "Sam here.", "agent": "Sam"}).is_success
    released = httpx.post(f"{one.base_url}/admin/conversations/{conversation}/release", timeout=30)
    assert released.is_success, released.text
    assert admin.get("/handoffs").json()["data"] == []
    back = client(one).chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "Thanks, and where is my refund?"}], max_tokens=6,
        extra_body={"lepton": {"conversation_id": conversation}})
    assert back.model_extra["lepton"]["skill"] != "handoff" and back.choices[0].message.content
    messages = httpx.get(f"{two.base_url}/v1/conversations/{conversation}").json()["messages"]
    assert {"role": "assistant", "content": "Sam here.", "agent": "Sam"} in messages


def test_the_rate_limit_counts_requests_to_every_worker(start_workers):
    one, two = start_workers(ip_rate_per_minute=4)
    for server in (one, two, one, two):
        assert client(server).models.list().data  # 4 a minute from this address, both workers together
    for server in (one, two):
        with pytest.raises(openai.RateLimitError) as refused:
            client(server).models.list()
        assert refused.value.body["code"] == "rate_limit_exceeded"
        assert "4 per minute" in refused.value.body["message"]
        assert refused.value.response.headers["Retry-After"] == "15"
