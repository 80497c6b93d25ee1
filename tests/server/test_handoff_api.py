"""A handoff round trip through the API: the official openai client asks for a
person, a real webhook receiver on loopback gets the signed transcript, an
agent replies and releases through the admin routes, and the state survives a
server restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

from assistant import Assistant, Settings
from assistant.prompts import HANDOFF_REPLY

pytestmark = pytest.mark.slow

SECRET = "whsec-test"


class WebhookReceiver:
    """A real HTTP server that records every POST (body and headers)."""

    def __init__(self):
        events: queue.Queue = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                events.put((body, dict(self.headers)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.events = events
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/lepton"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self) -> dict:
        body, headers = self.events.get(timeout=30)
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Lepton-Signature"] == expected
        assert headers["X-Lepton-Event-Id"].startswith("evt_")
        return json.loads(body)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    yield r
    r.close()


def test_handoff_round_trip(tmp_path, model_path, llm, receiver, start_server, records):
    """On the SQLite file and on PostgreSQL."""
    settings = Settings(
        data_dir=tmp_path / "data", model=model_path, max_tokens=12, admin_access="loopback",
        handoff_webhook_url=receiver.url, handoff_webhook_secret=SECRET, database_url=records,
    )
    assistant = Assistant.from_settings(settings, llm=llm)
    live = start_server(settings, assistant)
    client = openai.OpenAI(base_url=live.base_url + "/v1", api_key="unused", max_retries=0)
    admin = httpx.Client(base_url=live.base_url + "/admin", timeout=30)

    # 1. The user asks for a person: a fixed reply, state pending, transcript to the webhook.
    reply = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "I want to talk to a real person please"}]
    )
    lepton = reply.model_extra["lepton"]
    cid = lepton["conversation_id"]
    assert reply.choices[0].message.content == HANDOFF_REPLY
    assert lepton["skill"] == "handoff"
    assert lepton["handoff"]["state"] == "pending" and lepton["handoff"]["reason"] == "requested"
    event = receiver.next()
    assert event["type"] == "handoff.requested" and event["conversation_id"] == cid
    assert event["tenant_id"] == "default" and event["reason"] == "requested"
    assert event["transcript"] == [
        {"role": "user", "content": "I want to talk to a real person please"},
        {"role": "assistant", "content": HANDOFF_REPLY},
    ]

    # 2. While pending, the assistant does not answer (streaming too); the agent is told.
    stream = client.chat.completions.create(
        model="assistant", stream=True, messages=[{"role": "user", "content": "My order is 1234"}],
        extra_body={"lepton": {"conversation_id": cid}},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
    assert chunks[-1].model_extra["lepton"]["handoff"]["state"] == "pending"
    event = receiver.next()
    assert event["type"] == "handoff.message"
    assert event["message"] == {"role": "user", "content": "My order is 1234"}

    # 3. An agent finds it, reads it and answers.
    pending = admin.get("/handoffs").json()["data"]
    assert [h["conversation_id"] for h in pending] == [cid]
    transcript = admin.get(f"/conversations/{cid}").json()
    assert transcript["messages"][-1]["content"] == "My order is 1234"
    assert transcript["webhook_status"] == "delivered"
    answer = admin.post(f"/conversations/{cid}/messages", json={"content": "Hi, Sam here: it ships today.", "agent": "Sam"})
    assert answer.status_code == 200, answer.text
    # The user's side (the widget polls this) shows the agent's message.
    seen = httpx.get(f"{live.base_url}/v1/conversations/{cid}").json()
    assert seen["messages"][-1] == {"role": "assistant", "content": "Hi, Sam here: it ships today.", "agent": "Sam"}
    assert seen["handoff"]["state"] == "pending"

    # 4. The state survives a restart: a new server on the same data directory.
    live.stop()
    assistant.close()
    assistant = Assistant.from_settings(settings, llm=llm)
    live = start_server(settings, assistant)
    client = openai.OpenAI(base_url=live.base_url + "/v1", api_key="unused", max_retries=0)
    admin = httpx.Client(base_url=live.base_url + "/admin", timeout=30)
    again = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "thanks"}], extra_body={"lepton": {"conversation_id": cid}}
    )
    assert again.choices[0].message.content == ""
    assert again.model_extra["lepton"]["handoff"]["state"] == "pending"
    assert receiver.next()["type"] == "handoff.message"

    # 5. Released: the assistant answers again.
    released = admin.post(f"/conversations/{cid}/release")
    assert released.status_code == 200 and released.json()["handoff"]["state"] == "released"
    assert receiver.next()["type"] == "handoff.released"
    back = client.chat.completions.create(
        model="recommendation", messages=[{"role": "user", "content": "Any gift ideas?"}],
        extra_body={"lepton": {"conversation_id": cid}},
    )
    assert back.choices[0].message.content.strip()
    assert back.model_extra["lepton"]["skill"] == "recommendation"
    assert admin.get("/handoffs").json()["data"] == []

    # 6. What an agent's client sees when it gets something wrong.
    late = admin.post(f"/conversations/{cid}/messages", json={"content": "hello?"})
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "handoff_state"
    assert "not waiting for a person" in late.json()["error"]["message"]
    missing = admin.post("/conversations/conv_nope/release")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "conversation_not_found"
    empty = admin.post(f"/conversations/{cid}/messages", json={"content": ""})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "content"
    assistant.close()


def test_widget_flag_hands_off_and_a_failing_webhook_is_recorded(tmp_path, model_path, llm, start_server):
    # Nothing listens on this port: delivery fails, the handoff still happens.
    from tests.conftest import free_port

    settings = Settings(
        data_dir=tmp_path / "data", model=model_path, max_tokens=12, admin_access="loopback",
        handoff_webhook_url=f"http://127.0.0.1:{free_port()}/hook",
    )
    assistant = Assistant.from_settings(settings, llm=llm)
    assistant.handoffs.webhook.attempts = 1
    live = start_server(settings, assistant)
    response = httpx.post(
        f"{live.base_url}/v1/chat/completions",
        json={"model": "assistant", "messages": [{"role": "user", "content": "where is my parcel"}],
              "lepton": {"handoff": True}},
        timeout=60,
    ).json()
    cid = response["lepton"]["conversation_id"]
    assert response["lepton"]["handoff"]["state"] == "pending"
    for _ in range(100):
        status = httpx.get(f"{live.base_url}/admin/conversations/{cid}").json()["webhook_status"]
        if status:
            break
        threading.Event().wait(0.1)
    assert status.startswith("failed: ConnectError")
    assistant.close()


def test_tenant_intents_pick_templates_and_escalate(tmp_path, model_path, llm, start_server):
    """Intent training on a small CSV, then through the API: a templated answer,
    an escalating intent, and an intent without an action answered normally."""
    from click.testing import CliRunner

    from assistant.cli import cli
    from tests.skills.test_intents import ROWS, write_csv

    settings = Settings(data_dir=tmp_path / "data", model=model_path, max_tokens=12)
    data = write_csv(tmp_path / "intents.csv", [(t, label) for label, texts in ROWS.items() for t in texts])
    template = "New cards arrive within 5 working days of ordering."
    actions = tmp_path / "actions.json"

    # A bad actions file is refused before training, with one line, and nothing is saved.
    actions.write_text(json.dumps({"card_swallowed": {"handoff": True}}))
    bad = CliRunner().invoke(cli, ["--data-dir", str(settings.data_dir), "customer-service", "train-intents",
                                   "--data", str(data), "--actions", str(actions)])
    assert bad.exit_code == 1 and "unknown intent 'card_swallowed'" in bad.output
    assert not list(settings.data_dir.rglob("*.pkl"))

    actions.write_text(json.dumps({"lost_card": {"handoff": True}, "card_arrival": {"reply": template}}))
    trained = CliRunner().invoke(cli, ["--data-dir", str(settings.data_dir), "customer-service", "train-intents",
                                       "--data", str(data), "--actions", str(actions), "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.output.strip().splitlines()[-1])["labels"] == 3

    assistant = Assistant.from_settings(settings, llm=llm)
    live = start_server(settings, assistant)
    client = openai.OpenAI(base_url=live.base_url + "/v1", api_key="unused", max_retries=0)

    def ask(text):
        reply = client.chat.completions.create(model="customer_service", messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content, reply.model_extra["lepton"]

    text, lepton = ask("when will my new card be delivered?")
    assert text == template and lepton["intent"] == "card_arrival" and lepton["template"] == "card_arrival"

    text, lepton = ask("my card was stolen this morning")
    assert text == HANDOFF_REPLY and lepton["intent"] == "lost_card"
    assert lepton["handoff"]["state"] == "pending" and lepton["handoff"]["reason"] == "intent"

    text, lepton = ask("how long until my refund shows up?")
    assert lepton["intent"] == "refund" and "template" not in lepton
    assert text.strip() and lepton["handoff"] == {"state": "none"}

    # The two intent actions are audited decisions; the plain answer is not one.
    exported = CliRunner().invoke(cli, ["--data-dir", str(settings.data_dir), "audit", "export", "--tenant", "default"])
    assert exported.exit_code == 0, exported.output
    entries = [json.loads(line) for line in exported.output.splitlines()]
    assert [(e["skill"], e["kind"], e["outcome"], e["inputs"]["intent"]) for e in entries] == [
        ("customer_service", "intent_action", "reply", "card_arrival"),
        ("customer_service", "intent_action", "handoff", "lost_card")]
    assert all(e["conversation_id"].startswith("conv_") and e["version"] and e["time"] for e in entries)
    other = CliRunner().invoke(cli, ["--data-dir", str(settings.data_dir), "audit", "export", "--tenant", "acme"])
    assert other.exit_code == 0 and other.output == ""

    # The skill's typed action, under the caller's tenant.
    action = httpx.post(f"{live.base_url}/v1/skills/customer_service/classify-intent",
                        json={"text": "my card was stolen"}, timeout=30)
    assert action.status_code == 200 and action.json() == {**action.json(), "intent": "lost_card", "action": "handoff"}
    listed = httpx.get(f"{live.base_url}/v1/skills/customer_service/actions", timeout=30).json()
    assert [a["name"] for a in listed["data"]] == ["classify-intent"]
    assert listed["data"][0]["input_schema"]["required"] == ["text"]
    bad_body = httpx.post(f"{live.base_url}/v1/skills/customer_service/classify-intent", json={"txt": "x"}, timeout=30)
    assert bad_body.status_code == 400 and bad_body.json()["error"]["param"] in ("text", "txt")
    unknown = httpx.post(f"{live.base_url}/v1/skills/customer_service/refund", json={}, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "action_not_found"
    assistant.close()
