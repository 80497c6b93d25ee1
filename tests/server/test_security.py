"""API keys, tenant isolation, conversation ownership and the admin routes' guard,
against a real server on loopback answered by the real model, through the clients
integrators use (openai, httpx) and raw sockets where a client would hide what
the server does."""

from __future__ import annotations

import json
import socket

import httpx
import openai
import pytest
from click.testing import CliRunner

from assistant import Assistant, Settings
from server.api_keys import AdminToken, ApiKeys
from server.cli_keys import keys_group
from server.keys import WidgetKeys
from tests.conftest import stored_text

USER = [{"role": "user", "content": "My parcel never arrived"}]


@pytest.fixture
def settings(settings, records):
    """Every test of this file runs on the SQLite file and again on PostgreSQL."""
    return settings.model_copy(update={"database_url": records})


def chat(live, key: str | None, *, messages=USER, **body) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(live.base_url + "/v1/chat/completions", headers=headers, timeout=120,
                      json={"model": "customer_service", "messages": messages, "max_tokens": 2, **body})


def get(live, path: str, key: str | None = None, **headers) -> httpx.Response:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.get(live.base_url + path, headers=headers, timeout=60)


def error_code(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, response.json()["error"]["code"]


@pytest.fixture
def keyed(settings, assistant, start_server):
    """A server with keys for two tenants: acme has two (one for customer service only), globex one."""
    keys = ApiKeys(assistant.store, settings)
    made = {
        "acme": keys.create("acme")[0],
        "acme2": keys.create("acme", label="second")[0],
        "acme_cs": keys.create("acme", skills=["customer_service"])[0],
        "globex": keys.create("globex")[0],
    }
    return start_server(settings, assistant), made


def test_once_a_key_exists_every_api_route_needs_one_but_health_and_the_widget_files(keyed):
    live, keys = keyed
    for path in ("/v1/models", "/v1/models/assistant", "/v1/conversations/conv_x", "/v1/skills/credit_scoring/actions"):
        assert error_code(get(live, path)) == (401, "missing_api_key"), path
    refused = chat(live, None)
    assert error_code(refused) == (401, "missing_api_key")
    assert "lepton keys create" in refused.json()["error"]["message"]
    assert error_code(chat(live, "sk_not-a-real-key")) == (401, "invalid_api_key")
    # An OpenAI client with another bearer token is not let in either.
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=live.base_url + "/v1", api_key="sk-proj-other", max_retries=0).models.list()
    for path in ("/healthz", "/readyz", "/widget.js", "/"):
        assert get(live, path).status_code == 200, path
    # With its key, the official client works as against OpenAI.
    client = openai.OpenAI(base_url=live.base_url + "/v1", api_key=keys["acme"], max_retries=0)
    assert "customer_service" in [m.id for m in client.models.list()]
    answer = client.chat.completions.create(model="customer_service", messages=USER, max_tokens=2)
    assert answer.choices[0].message.content is not None


def test_a_revoked_key_stops_at_once(keyed, assistant, settings):
    live, keys = keyed
    assert get(live, "/v1/models", keys["acme2"]).status_code == 200
    api_keys = ApiKeys(assistant.store, settings)
    assert api_keys.revoke(api_keys.get(keys["acme2"]).id)
    assert error_code(get(live, "/v1/models", keys["acme2"])) == (401, "invalid_api_key")


def test_a_key_limited_to_skills_sees_and_uses_only_those(keyed):
    live, keys = keyed
    models = get(live, "/v1/models", keys["acme_cs"]).json()["data"]
    assert [m["id"] for m in models] == ["customer_service"]
    refused = chat(live, keys["acme_cs"], model="assistant")
    assert error_code(refused) == (403, "skill_not_allowed")
    assert "customer_service" in refused.json()["error"]["message"]
    assert error_code(get(live, "/v1/skills/credit_scoring/actions", keys["acme_cs"])) == (404, "skill_not_found")
    assert chat(live, keys["acme_cs"]).status_code == 200


def test_a_conversation_is_read_continued_and_rated_only_with_the_key_that_started_it(keyed, assistant):
    live, keys = keyed
    first = chat(live, keys["acme"]).json()
    cid = first["lepton"]["conversation_id"]
    path = f"/v1/conversations/{cid}"
    assert get(live, path, keys["acme"]).status_code == 200
    # Same tenant with another key, another tenant, a guessed id: all read as "not found".
    for other in ("acme2", "globex"):
        assert error_code(get(live, path, keys[other])) == (404, "conversation_not_found"), other
        continued = chat(live, keys[other], lepton={"conversation_id": cid})
        assert error_code(continued) == (404, "conversation_not_found"), other
        rated = httpx.post(live.base_url + "/v1/feedback", headers={"Authorization": f"Bearer {keys[other]}"},
                           json={"conversation_id": cid, "message_index": 1, "rating": -1})
        assert error_code(rated) == (404, "conversation_not_found"), other
    assert error_code(get(live, "/v1/conversations/conv_" + "0" * 32, keys["acme"])) == (404, "conversation_not_found")
    # Resending acme's history with another key starts a new conversation, never joins acme's.
    history = USER + [{"role": "assistant", "content": first["choices"][0]["message"]["content"]},
                      {"role": "user", "content": "Any news?"}]
    resent = chat(live, keys["acme2"], messages=history).json()
    assert resent["lepton"]["conversation_id"] != cid
    same_key = chat(live, keys["acme"], messages=history).json()
    assert same_key["lepton"]["conversation_id"] == cid
    assert len(get(live, path, keys["acme"]).json()["messages"]) == 4
    assert assistant.store.feedback("acme") == []


def test_a_widget_conversation_opens_only_with_its_token(settings, assistant, start_server):
    live = start_server(settings, assistant)
    key = WidgetKeys(assistant.store).create("acme", ["https://shop.example"]).key
    headers = {"Authorization": f"Bearer {key}", "Origin": "https://shop.example"}
    started = httpx.post(live.base_url + "/v1/chat/completions", headers=headers, timeout=120,
                         json={"messages": USER, "max_tokens": 2}).json()["lepton"]
    cid, token = started["conversation_id"], started["conversation_token"]
    assert len(token) >= 32
    path = f"/v1/conversations/{cid}"
    assert get(live, path, **headers, **{"X-Lepton-Conversation-Token": token}).status_code == 200
    assert error_code(get(live, path, **headers)) == (404, "conversation_not_found")
    assert error_code(get(live, path, **headers, **{"X-Lepton-Conversation-Token": "guess" * 8})) == \
        (404, "conversation_not_found")
    # The database never holds the token itself.
    owners = assistant.store._conn.execute("SELECT owner FROM conversations").fetchall()
    assert owners and all(token not in (o or "") for (o,) in owners)


def test_json_routes_refuse_bodies_not_declared_json_and_store_nothing(live, assistant):
    # text/plain needs no CORS preflight: a page on any site could send it with a visitor's browser.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": content_type} if content_type else {}
        response = httpx.post(live.base_url + "/v1/chat/completions", headers=headers, timeout=60,
                              content=json.dumps({"messages": USER}))
        assert error_code(response) == (415, "unsupported_media_type"), content_type
        assert "application/json" in response.json()["error"]["message"]
    assert assistant.store._conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0


# -- admin ---------------------------------------------------------------------------


@pytest.fixture
def token_server(tmp_path, model_path, llm, start_server, records):
    """A server in the default admin mode, with its generated token and keys."""
    settings = Settings(data_dir=tmp_path / "data", model=model_path, max_tokens=8, max_admin_request_bytes=4096,
                        database_url=records)
    assistant = Assistant.from_settings(settings, llm=llm)
    token = AdminToken(assistant.store, settings).ensure()
    keys = ApiKeys(assistant.store, settings)
    made = {"admin": keys.create("acme", admin=True)[0], "plain": keys.create("acme")[0],
            "globex": keys.create("globex")[0]}
    yield start_server(settings, assistant), token, made
    assistant.close()


def raw_request(live, head: str) -> str:
    """Send only a request's head (no body) and read what the server answers at once."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        return sock.recv(65536).decode("latin-1")


def test_the_admin_token_is_generated_once_and_kept_hashed(token_server):
    live, token, _ = token_server
    assert token and token.startswith("adm_")
    assert error_code(get(live, "/admin/collections")) == (401, "invalid_api_key")
    assert error_code(get(live, "/admin/collections", "adm_wrong")) == (401, "invalid_api_key")
    assert get(live, "/admin/collections", token).status_code == 200
    assert get(live, "/admin/collections?tenant=anyone", token).json()["tenant"] == "anyone"


def test_admin_keys_act_for_their_own_tenant_only(token_server):
    live, _, keys = token_server
    assert get(live, "/admin/collections", keys["admin"]).json()["tenant"] == "acme"
    assert get(live, "/admin/handoffs?tenant=acme", keys["admin"]).status_code == 200
    assert error_code(get(live, "/admin/handoffs?tenant=globex", keys["admin"])) == (403, "tenant_forbidden")
    assert error_code(get(live, "/admin/collections", keys["plain"])) == (403, "admin_forbidden")


def test_no_admin_route_lets_one_tenants_admin_key_touch_another_tenants_data(token_server):
    """Every /admin operation the OpenAPI schema lists, called with acme's admin key for
    tenant globex, is refused before it does anything; with acme's own tenant, globex's
    conversation ids are not found. globex's data is the same afterwards."""
    live, token, keys = token_server
    globex_chat = chat(live, keys["globex"]).json()
    globex_conversation = globex_chat["lepton"]["conversation_id"]
    before = {path: get(live, path + "?tenant=globex", token).json()
              for path in ("/admin/collections", "/admin/skills", "/admin/handoffs")}
    before["conversation"] = get(live, f"/admin/conversations/{globex_conversation}?tenant=globex", token).json()
    operations = [(method.upper(), path) for path, ops in httpx.get(live.base_url + "/openapi.json").json()["paths"].items()
                  if path.startswith("/admin/") for method in ops]
    assert len(operations) == 10
    acme_admin = {"Authorization": f"Bearer {keys['admin']}"}
    for method, template in operations:
        path = template.format(collection="help_centre", name="faq", conversation_id=globex_conversation)
        sent = {"json": {"content": "x"}} if template.endswith("/messages") else {}
        response = httpx.request(method, live.base_url + path, params={"tenant": "globex", "source": "a.md"},
                                 headers=acme_admin, timeout=30, **sent)
        assert error_code(response) == (403, "tenant_forbidden"), (method, template, response.text)
        if "{conversation_id}" in template:  # acme's own tenant: globex's id is not found
            response = httpx.request(method, live.base_url + path, params={"tenant": "acme"}, headers=acme_admin,
                                     timeout=30, **sent)
            assert error_code(response) == (404, "conversation_not_found"), (method, template, response.text)
    after = {path: get(live, path + "?tenant=globex", token).json()
             for path in ("/admin/collections", "/admin/skills", "/admin/handoffs")}
    after["conversation"] = get(live, f"/admin/conversations/{globex_conversation}?tenant=globex", token).json()
    assert after == before


@pytest.mark.parametrize("tenant", ["a__b", "Acme Corp", "../etc", "x" * 200])
def test_a_bad_tenant_name_is_a_400_on_every_admin_route(token_server, tenant):
    live, token, _ = token_server
    for path in ("/admin/collections", "/admin/skills", "/admin/handoffs", "/admin/conversations/conv_x"):
        response = httpx.get(live.base_url + path, params={"tenant": tenant},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert error_code(response) == (400, "invalid_tenant"), (path, response.text)


def test_an_upload_is_authenticated_and_capped_before_its_body_is_read(token_server):
    live, token, _ = token_server
    # Only the head of a 300 MB upload is sent; the answer comes without waiting for the body.
    head = ("POST /admin/collections/kb/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 300000000\r\n\r\n")
    assert raw_request(live, head).startswith("HTTP/1.1 401")
    authorised = head.replace("Host: 127.0.0.1\r\n", f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n")
    answer = raw_request(live, authorised)
    assert answer.startswith("HTTP/1.1 413") and "nothing was read" in answer
    # A body without a declared length is cut off as it passes the cap.
    def chunks():  # a well-formed part whose file never ends before the cap
        yield b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n'
        for _ in range(64):
            yield b"a" * 1024

    streamed = httpx.post(live.base_url + "/admin/collections/kb/documents", content=chunks(), timeout=30,
                          headers={"Authorization": f"Bearer {token}",
                                   "Content-Type": "multipart/form-data; boundary=x"})
    assert error_code(streamed) == (413, "request_too_large")
    assert get(live, "/admin/collections", token).json()["collections"] == []


def test_loopback_admin_refuses_rebound_host_names_and_cross_site_pages(live):
    assert get(live, "/admin/collections").status_code == 200
    refusals = [
        ({"Host": "rebind.attacker.example:8000"}, "admin_forbidden"),
        ({"Origin": "https://attacker.example"}, "cross_site_refused"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross_site_refused"),
        ({"Sec-Fetch-Site": "same-site"}, "cross_site_refused"),
    ]
    for headers, code in refusals:
        assert error_code(get(live, "/admin/handoffs?state=all", **headers)) == (403, code), headers
    assert get(live, "/admin/collections", **{"Sec-Fetch-Site": "same-origin"}).status_code == 200


# -- the CLI -------------------------------------------------------------------------


def test_lepton_keys_create_prints_the_key_once_and_stores_only_its_hash(settings):
    runner = CliRunner()
    made = runner.invoke(keys_group, ["create", "--tenant", "acme", "--skills", "customer_service", "--json"],
                         obj=settings)
    assert made.exit_code == 0, made.output
    record = json.loads(made.output.strip().splitlines()[-1])
    assert record["key"].startswith("sk_") and record["tenant"] == "acme" and record["skills"] == ["customer_service"]
    listed = runner.invoke(keys_group, ["list"], obj=settings).output
    assert record["id"] in listed and record["key"] not in listed
    assert record["key"].encode() not in stored_text(settings)
    bad = runner.invoke(keys_group, ["create", "--tenant", "Acme Corp"], obj=settings)
    assert bad.exit_code == 2 and "invalid tenant name 'Acme Corp'" in bad.output
    revoked = runner.invoke(keys_group, ["revoke", record["key"]], obj=settings)
    assert revoked.exit_code == 0 and record["id"] in revoked.output
    again = runner.invoke(keys_group, ["revoke", record["id"]], obj=settings)
    assert again.exit_code == 1 and "no active API key" in again.output


def test_no_request_gets_a_longer_answer_than_the_servers_cap(settings, assistant, start_server):
    live = start_server(settings.model_copy(update={"max_answer_tokens": 3}), assistant)
    answer = chat(live, None, max_tokens=40).json()
    assert answer["usage"]["completion_tokens"] <= 3 and answer["choices"][0]["finish_reason"] == "length"


def test_conversations_and_keyless_addresses_have_rate_limits(settings, assistant, start_server):
    """One conversation of an API key (or a keyless caller) past LEPTON_CONVERSATION_RATE_PER_MINUTE
    gets 429 with Retry-After while the key's other conversations go on; a keyless client
    past LEPTON_IP_RATE_PER_MINUTE gets 429 on any route."""
    limited = settings.model_copy(update={"conversation_rate_per_minute": 2, "ip_rate_per_minute": 5})
    secret, _ = ApiKeys(assistant.store, settings).create("acme")
    live = start_server(limited, assistant)
    first = chat(live, secret)
    conversation = first.json()["lepton"]["conversation_id"]
    assert chat(live, secret, lepton={"conversation_id": conversation}).status_code == 200
    refused = chat(live, secret, lepton={"conversation_id": conversation})
    assert error_code(refused) == (429, "rate_limit_exceeded")
    assert int(refused.headers["Retry-After"]) >= 1 and "in this conversation" in refused.json()["error"]["message"]
    assert chat(live, secret).status_code == 200  # a new conversation of the same key

    keyless = start_server(limited.model_copy(update={"require_keys": False}), assistant)
    statuses = [get(keyless, "/v1/models").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    over = get(keyless, "/v1/models")
    assert error_code(over) == (429, "rate_limit_exceeded") and "from this address" in over.json()["error"]["message"]
    assert get(live, "/v1/models", secret).status_code == 200  # API keys are limited per key, not per address
