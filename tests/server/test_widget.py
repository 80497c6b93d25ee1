"""The chat widget end to end: the API rules for widget keys over real HTTP (httpx),
then the real widget in headless Debian Chromium, embedded in a hostile page served
from another origin, talking to a real server answered by the real model."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from server.keys import WidgetKeys

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]
SHOP = "https://shop.example"
PARCEL = [{"role": "user", "content": "My parcel never arrived"}]


@pytest.fixture
def keys(assistant) -> WidgetKeys:
    return WidgetKeys(assistant.store)


def serve(settings, assistant, start_server, **overrides):
    return start_server(settings.model_copy(update=overrides), assistant)


def call(live, method: str, path: str, key: str | None = None, origin: str | None = None, **kwargs) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if origin:
        headers["Origin"] = origin
    return httpx.request(method, live.base_url + path, headers=headers, timeout=120, **kwargs)


def chat(live, key=None, origin=None, token=None, **body) -> httpx.Response:
    """A chat turn; ``token``: the widget conversation's token (``lepton.conversation_token``)."""
    headers = {"X-Lepton-Conversation-Token": token} if token else {}
    return call(live, "POST", "/v1/chat/completions", key, origin, headers=headers,
                json={"messages": PARCEL, "max_tokens": 2, **body})


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code:
        assert error["code"] == code
    return error


# -- the API ------------------------------------------------------------------------


def test_a_widget_key_decides_the_tenant_and_keyless_calls_keep_the_default(live, keys):
    key = keys.create("acme", [SHOP]).key
    answered = chat(live, key, SHOP)
    assert answered.status_code == 200, answered.text
    assert answered.headers["access-control-allow-origin"] == SHOP
    assert "Origin" in answered.headers["vary"]
    assert "Retry-After" in answered.headers["access-control-expose-headers"]
    conversation = answered.json()["lepton"]["conversation_id"]
    token = {"X-Lepton-Conversation-Token": answered.json()["lepton"]["conversation_token"]}
    # The conversation belongs to acme and to the page holding its token: visible with the
    # key and the token, not with the key alone (every visitor of the shop has the key).
    assert call(live, "GET", f"/v1/conversations/{conversation}", key, SHOP, headers=token).status_code == 200
    assert_error(call(live, "GET", f"/v1/conversations/{conversation}", key, SHOP), 404, "conversation_not_found")
    by_header = call(live, "GET", f"/v1/conversations/{conversation}", origin=SHOP,
                     headers={"X-Lepton-Key": key, **token})
    assert by_header.json()["messages"][0]["content"] == "My parcel never arrived"
    assert_error(call(live, "GET", f"/v1/conversations/{conversation}"), 404, "conversation_not_found")
    # Keyless requests (OpenAI clients send some other bearer token) work as before, without CORS.
    keyless = chat(live, origin=SHOP, headers={"Authorization": "Bearer unused"})
    assert keyless.status_code == 200 and "access-control-allow-origin" not in keyless.headers


def test_disallowed_origin_is_refused_with_403_and_nothing_is_stored(live, keys, assistant):
    key = keys.create("acme", [SHOP]).key
    refused = chat(live, key, "https://evil.example")
    error = assert_error(refused, 403, "origin_not_allowed")
    assert "https://evil.example" in error["message"]
    # Readable by the refused page, so the widget can say why it does not work there.
    assert refused.headers["access-control-allow-origin"] == "https://evil.example"
    assert assistant.store._conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0
    assert_error(call(live, "GET", "/v1/conversations/conv_x", key, "null"), 403, "origin_not_allowed")
    assert_error(chat(live, "pk_unknown_key_123", SHOP), 401, "invalid_api_key")
    keys.revoke(key)
    assert_error(chat(live, key, SHOP), 401, "invalid_api_key")


def test_preflight_answers_only_allowed_origins(live, keys):
    keys.create("acme", [SHOP])
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = call(live, "OPTIONS", "/v1/chat/completions", origin=SHOP, headers=asked)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers
    refused = call(live, "OPTIONS", "/v1/chat/completions", origin="https://evil.example", headers=asked)
    assert_error(refused, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in refused.headers


def test_skills_not_allowed_for_the_key_are_refused(live, keys):
    key = keys.create("acme", [SHOP], ["customer_service"]).key
    error = assert_error(chat(live, key, SHOP, model="medical_triage"), 403, "skill_not_allowed")
    assert "customer_service" in error["message"] and error["param"] == "model"
    # Automatic routing could land on any skill, so a restricted key must name one.
    assert_error(chat(live, key, SHOP), 403, "skill_not_allowed")
    assert chat(live, key, SHOP, model="customer_service").status_code == 200
    models = call(live, "GET", "/v1/models", key, SHOP).json()["data"]
    assert [m["id"] for m in models] == ["customer_service"]
    config = call(live, "GET", f"/v1/widget/config?key={key}", origin=SHOP)
    assert config.status_code == 200 and config.json()["models"] == ["customer_service"]


def test_per_ip_rate_limit_answers_429_with_retry_after(settings, assistant, start_server):
    live = serve(settings, assistant, start_server, widget_ip_rate_per_minute=2)
    key = WidgetKeys(assistant.store).create("acme", [SHOP]).key
    for _ in range(2):
        assert call(live, "GET", f"/v1/widget/config?key={key}", origin=SHOP).status_code == 200
    limited = call(live, "GET", f"/v1/widget/config?key={key}", origin=SHOP)
    error = assert_error(limited, 429, "rate_limit_exceeded")
    assert limited.headers["retry-after"] == "30"
    assert "2 per minute" in error["message"] and "Retry in 30 s" in error["message"]
    assert limited.headers["access-control-allow-origin"] == SHOP  # the widget can read the Retry-After
    assert chat(live).status_code == 200  # keyless calls are not limited here


def test_per_ip_limit_believes_x_forwarded_for_only_from_trusted_proxies(settings, assistant, start_server):
    key = WidgetKeys(assistant.store).create("acme", [SHOP]).key

    def config(live, forwarded):
        return call(live, "GET", f"/v1/widget/config?key={key}", origin=SHOP, headers={"X-Forwarded-For": forwarded})

    # Not behind a trusted proxy: the header is the client's word and is ignored.
    live = serve(settings, assistant, start_server, widget_ip_rate_per_minute=2)
    assert config(live, "203.0.113.1").status_code == 200
    assert config(live, "203.0.113.2").status_code == 200
    assert_error(config(live, "203.0.113.3"), 429, "rate_limit_exceeded")

    # Behind a trusted proxy (this machine): each forwarded client has its own budget,
    # and an address forged in front of the real one does not buy a new budget.
    proxied = serve(settings, assistant, start_server, widget_ip_rate_per_minute=2, trusted_proxies=["127.0.0.0/8"])
    assert config(proxied, "203.0.113.1").status_code == 200
    assert config(proxied, "198.51.100.7, 203.0.113.1").status_code == 200
    assert_error(config(proxied, "192.0.2.99, 203.0.113.1"), 429, "rate_limit_exceeded")
    assert config(proxied, "203.0.113.2").status_code == 200


def test_widget_keys_cannot_ask_for_longer_answers_than_the_cap(settings, assistant, start_server):
    live = serve(settings, assistant, start_server, widget_max_tokens=3)
    key = WidgetKeys(assistant.store).create("acme", [SHOP]).key
    capped = chat(live, key, SHOP, model="customer_service", max_tokens=40)
    assert capped.status_code == 200 and capped.json()["usage"]["completion_tokens"] <= 3
    assert capped.json()["choices"][0]["finish_reason"] == "length"
    # Integrators without a widget key are not capped by it.
    free = chat(live, model="customer_service", max_tokens=6)
    assert free.json()["usage"]["completion_tokens"] > 3


def test_per_conversation_rate_limit(settings, assistant, start_server):
    live = serve(settings, assistant, start_server, widget_rate_per_minute=1)
    key = WidgetKeys(assistant.store).create("acme", [SHOP]).key
    sent = time.monotonic()
    first = chat(live, key, SHOP).json()["lepton"]
    conversation = first["conversation_id"]
    limited = chat(live, key, SHOP, first["conversation_token"], lepton={"conversation_id": conversation})
    elapsed = time.monotonic() - sent
    assert_error(limited, 429, "rate_limit_exceeded")
    # Retry when the minute that began with the first message is over (less the
    # seconds the first answer took: several on a busy machine).
    assert 60 - math.ceil(elapsed) <= int(limited.headers["retry-after"]) <= 60
    assert "in this conversation" in limited.json()["error"]["message"]
    assert chat(live, key, SHOP).status_code == 200  # a new conversation has its own bucket


def test_feedback_is_validated_and_stored_with_the_tenant(live, keys, assistant):
    key = keys.create("acme", [SHOP]).key
    started = chat(live, key, SHOP).json()["lepton"]
    conversation = started["conversation_id"]
    token = {"X-Lepton-Conversation-Token": started["conversation_token"]}

    def feedback(body, **kwargs):
        headers = {**token, **kwargs.pop("headers", {})}
        return call(live, "POST", "/v1/feedback", key, SHOP, headers=headers,
                    **({"json": body} if not kwargs else kwargs))

    good = {"conversation_id": conversation, "message_index": 1, "rating": -1}
    bad = [
        ({**good, "rating": 0}, "rating"),
        ({**good, "rating": True}, "rating"),
        ({**good, "rating": "1"}, "rating"),
        ({**good, "message_index": -1}, "message_index"),
        ({**good, "message_index": 0}, "message_index"),  # the user's message
        ({**good, "message_index": 7}, "message_index"),
        ({**good, "correction": 42}, "correction"),
        ({**good, "correction": "x" * 4001}, "correction"),
        ({**good, "colour": "red"}, "colour"),
        ({"conversation_id": conversation, "rating": 1}, "message_index"),
    ]
    for body, param in bad:
        error = assert_error(feedback(body), 400)
        assert error["param"] == param, (body, error)
    assert_error(feedback(None, content=b"{nope", headers={"content-type": "application/json"}), 400)
    assert_error(feedback({**good, "conversation_id": "conv_missing"}), 404, "conversation_not_found")
    # Another tenant cannot rate acme's conversation, nor another visitor of the shop (same key, no token).
    assert_error(call(live, "POST", "/v1/feedback", json=good), 404, "conversation_not_found")
    assert_error(call(live, "POST", "/v1/feedback", key, SHOP, json=good), 404, "conversation_not_found")
    # A body that is not declared JSON (what a cross-site form could send) is refused unread.
    assert_error(feedback(None, content=b"{}", headers={"content-type": "text/plain"}), 415, "unsupported_media_type")
    assert assistant.store.feedback("acme") == []

    stored = feedback({**good, "correction": "  It is delayed, here is the tracking link.  "})
    assert stored.status_code == 200, stored.text
    assert stored.json()["object"] == "feedback"
    rows = assistant.store.feedback("acme")
    assert [(r["conversation_id"], r["message_index"], r["rating"], r["correction"]) for r in rows] == [
        (conversation, 1, -1, "It is delayed, here is the tracking link.")
    ]
    # One rating per message: rating it again replaces the first (no pile of votes to export).
    assert feedback({**good, "rating": 1}).status_code == 200
    rows = assistant.store.feedback("acme")
    assert [(r["message_index"], r["rating"], r["correction"]) for r in rows] == [(1, 1, None)]
    assert assistant.store.feedback("default") == []


def test_demo_page_and_script_are_served(live):
    page = httpx.get(live.base_url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    key = page.text.split('<script src="/widget.js" data-key="')[1].split('"')[0]
    assert key.startswith("pk_")
    assert f'data-key="{key}"' in httpx.get(live.base_url + "/").text  # created once
    script = httpx.get(live.base_url + "/widget.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "attachShadow" in script.text and "innerHTML" not in script.text
    # The demo key works on the server's own origin and nowhere else.
    own = call(live, "GET", f"/v1/widget/config?key={key}", origin=live.base_url)
    assert own.status_code == 200
    assert_error(call(live, "GET", f"/v1/widget/config?key={key}", origin="https://evil.example"), 403)


# -- the widget in a real browser -----------------------------------------------------


class HostPages:
    """Another origin: a tiny HTTP server with fixed pages, like a customer's site."""

    def __init__(self):
        self.pages: dict[str, str] = {}
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = host.pages.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "not found").encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


HOSTILE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hostile shop</title>
<style>
* { all: unset; color: red !important; font-size: 40px }
button { display: none !important }
lepton-chat-widget { display: none !important; transform: scale(0.2) !important; color: red !important }
</style></head>
<body><h1>Hostile shop</h1><p id="probe">The shop's own text</p><button id="shop-button">Shop button</button>
<script src="{server}/widget.js" data-key="{key}" data-title="Shop help" data-accent="#0f766e"
        data-greeting="Hello from the shop!" data-max-tokens="12" async></script>
</body></html>
"""


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api

    # scripts/test.sh installs Debian's chromium; a missing browser is a failure, not a skip.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def shadow_eval(page, script: str):
    return page.evaluate(f"() => {{ const root = document.querySelector('lepton-chat-widget').shadowRoot; {script} }}")


def test_widget_on_a_hostile_page_streams_rates_remembers_and_refuses_other_origins(
    browser, live, keys, assistant
):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    allowed, refused = HostPages(), HostPages()
    try:
        key = keys.create("acme", [allowed.origin]).key
        allowed.pages["/"] = refused.pages["/"] = HOSTILE_PAGE.replace("{server}", live.base_url).replace("{key}", key)

        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        crashes: list[str] = []
        page.on("pageerror", lambda exc: crashes.append(str(exc)))
        page.goto(allowed.origin + "/")
        widget = page.locator("lepton-chat-widget")

        # The page's CSS cannot hide or restyle the widget; the widget's CSS leaves the page alone.
        launcher = widget.get_by_role("button", name="Open chat: Shop help")
        expect(launcher).to_be_visible()
        launcher.click()
        panel = widget.get_by_role("dialog", name="Shop help")
        expect(panel).to_be_visible()
        textbox = widget.get_by_role("textbox", name="Your message")
        expect(textbox).to_be_focused()
        expect(widget.get_by_text("Hello from the shop!")).to_be_visible()
        assert page.evaluate("getComputedStyle(document.getElementById('probe')).fontSize") == "40px"
        assert page.evaluate("getComputedStyle(document.getElementById('shop-button')).display") == "none"
        style = shadow_eval(page, "const s = getComputedStyle(root.querySelector('.bubble'));"
                                  " return [s.fontSize, s.color];")
        assert style[0] == "15px" and style[1] != "rgb(255, 0, 0)"
        assert shadow_eval(page, "return getComputedStyle(root.querySelector('.header')).backgroundColor;") == \
            "rgb(15, 118, 110)"  # data-accent

        # Tokens appear as they are generated: watch the answer bubble change.
        shadow_eval(page, """
            window.__seen = [];
            new MutationObserver(() => {
              const bubbles = root.querySelectorAll('.msg-assistant .bubble');
              window.__seen.push(bubbles[bubbles.length - 1].textContent);
            }).observe(root.querySelector('.log'), {subtree: true, childList: true, characterData: true});
        """)
        textbox.fill("My parcel never arrived")
        textbox.press("Enter")
        expect(widget.locator(".msg-user .bubble")).to_have_text("My parcel never arrived")
        thumbs_down = widget.get_by_role("button", name="Not helpful")
        expect(thumbs_down).to_be_visible(timeout=120_000)
        answer = widget.locator(".msg-assistant .bubble").last.text_content()
        partial = {text for text in page.evaluate("window.__seen") if text and text != answer}
        assert answer.strip() and len(partial) >= 1, page.evaluate("window.__seen")
        saved = json.loads(page.evaluate(f"localStorage.getItem('lepton-widget:{key}:conversation')"))
        conversation = saved["id"]
        # The page keeps the conversation's token: with the key alone nobody reads it.
        assert_error(call(live, "GET", f"/v1/conversations/{conversation}", key), 404, "conversation_not_found")
        stored = call(live, "GET", f"/v1/conversations/{conversation}", key,
                      headers={"X-Lepton-Conversation-Token": saved["token"]}).json()["messages"]
        assert stored[0]["content"] == "My parcel never arrived"
        assert " ".join(stored[1]["content"].split()) == " ".join(answer.split())
        assert page.evaluate("document.activeElement.tagName") == "LEPTON-CHAT-WIDGET"

        # Thumbs down with a correction, stored for acme.
        thumbs_down.click()
        correction = widget.get_by_role("textbox", name="What should the answer have said? (optional)")
        expect(correction).to_be_focused()
        correction.fill("Your parcel is delayed; track it on the orders page.")
        widget.get_by_role("button", name="Send feedback").click()
        expect(widget.get_by_text("Thanks for your feedback.")).to_be_visible()
        rows = assistant.store.feedback("acme", conversation)
        assert [(r["message_index"], r["rating"], r["correction"]) for r in rows] == [
            (1, -1, "Your parcel is delayed; track it on the orders page.")
        ]
        page.screenshot(path=str(ARTIFACTS / "widget-desktop.png"))

        # Escape closes the panel and gives focus back to the launcher.
        textbox.focus()
        page.keyboard.press("Escape")
        expect(panel).to_be_hidden()
        expect(launcher).to_be_focused()

        # After a reload the conversation is fetched and shown again; on a phone the panel is full-screen.
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        widget.get_by_role("button", name="Open chat: Shop help").click()
        expect(widget.locator(".msg-user .bubble")).to_have_text("My parcel never arrived")
        expect(widget.locator(".msg-assistant .bubble").last).to_have_text(answer)
        expect(widget.get_by_role("button", name="Not helpful")).to_be_visible()
        box = panel.bounding_box()
        assert box == {"x": 0, "y": 0, "width": 390, "height": 844}
        expect(widget.get_by_role("button", name="Close chat: Shop help")).to_be_hidden()
        page.screenshot(path=str(ARTIFACTS / "widget-phone.png"))

        # Offline: the message is kept and the visitor is told why it was not sent.
        context.set_offline(True)
        textbox = widget.get_by_role("textbox", name="Your message")
        textbox.fill("Are you there?")
        textbox.press("Enter")
        expect(widget.get_by_role("alert")).to_contain_text("offline")
        expect(widget.locator(".msg-failed")).to_contain_text("Not sent")
        expect(textbox).to_have_value("Are you there?")
        context.set_offline(False)
        assert crashes == []

        # The same snippet on an origin the key does not allow: the widget says so.
        other = context.new_page()
        other.set_viewport_size({"width": 1280, "height": 800})
        other.goto(refused.origin + "/")
        other_widget = other.locator("lepton-chat-widget")
        other_widget.get_by_role("button", name="Open chat: Shop help").click()
        alert = other_widget.get_by_role("alert")
        expect(alert).to_contain_text(f"not enabled for {refused.origin}")
        expect(other_widget.get_by_role("textbox", name="Your message")).to_be_disabled()
        other.screenshot(path=str(ARTIFACTS / "widget-refused.png"))
        context.close()
    finally:
        allowed.close()
        refused.close()


def test_demo_page_hands_off_to_a_person_and_shows_their_replies(browser, live):
    import httpx
    from playwright.sync_api import expect

    from assistant.prompts import HANDOFF_REPLY

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(live.base_url + "/")
    widget = page.locator("lepton-chat-widget")
    widget.get_by_role("button", name="Open chat: Lepton demo").click()
    widget.get_by_role("button", name="Talk to a person").click()
    expect(widget.locator(".msg-user .bubble")).to_have_text("I'd like to talk to a person")
    expect(widget.locator(".msg-assistant .bubble").last).to_have_text(HANDOFF_REPLY, timeout=60_000)
    status = widget.get_by_role("status")
    expect(status).to_contain_text("A person from our team will reply here")
    expect(widget.get_by_role("button", name="Talk to a person")).to_be_hidden()
    expect(widget.get_by_role("alert")).to_have_text("")

    # An agent answers through the admin API; the open widget shows it, named.
    storage = page.evaluate("() => Object.assign({}, window.localStorage)")
    cid = next(json.loads(v)["id"] for k, v in storage.items() if k.endswith(":conversation"))
    reply = httpx.post(f"{live.base_url}/admin/conversations/{cid}/messages",
                       json={"content": "Hi, I'm **Sam**. How can I help?", "agent": "Sam"})
    assert reply.status_code == 200, reply.text
    agent = widget.locator(".msg-agent")
    expect(agent.locator(".bubble")).to_have_text("Hi, I'm Sam. How can I help?", timeout=15_000)
    expect(agent.locator(".agent-name")).to_have_text("Sam")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-handoff.png"))

    # After a reload the person's message and the waiting state are still there.
    page.reload()
    widget.get_by_role("button", name="Open chat: Lepton demo").click()
    expect(widget.locator(".msg-agent .bubble")).to_have_text("Hi, I'm Sam. How can I help?")
    expect(widget.get_by_role("status")).to_contain_text("A person from our team will reply here")

    # Released: the widget says so and offers the person button again.
    assert httpx.post(f"{live.base_url}/admin/conversations/{cid}/release").status_code == 200
    expect(widget.get_by_role("status")).to_have_text("You are back with the assistant.", timeout=15_000)
    expect(widget.get_by_role("button", name="Talk to a person")).to_be_visible()
    context.close()


SIGNED_IN_PAGE = """<!doctype html><html><head><title>Shop</title></head><body><h1>Welcome back</h1>
<script src="{server}/widget.js" data-key="{key}" data-title="Shop help" data-skill="recommendation"
        data-user-id="{user}" data-user-hash="{hash}" async></script>
</body></html>
"""


def test_a_signed_in_customer_gets_recommendations_from_their_history_in_the_widget(browser, live, keys, assistant):
    from playwright.sync_api import expect

    from server.keys import user_hash
    from skills.recommendation import DATA
    from skills.recommendation.data import derive_catalog, load_interactions
    from skills.recommendation.model import ModelStore, train_recommender

    cleaned = load_interactions(DATA / "online_retail_slice.csv.gz")
    model = train_recommender(cleaned.frame, derive_catalog(cleaned.frame))
    ModelStore(assistant.envs["recommendation"].tenant_dir("acme")).save(model)
    customer = max(model.history.users, key=lambda u: model.history.orders[u])
    shop = HostPages()
    try:
        key = keys.create("acme", [shop.origin]).key
        secret = keys.identity_secret("acme")
        page_for = lambda signature: SIGNED_IN_PAGE.format(server=live.base_url, key=key, user=customer,  # noqa: E731
                                                           hash=signature)
        shop.pages["/signed"] = page_for(user_hash(secret, customer))
        shop.pages["/forged"] = page_for(user_hash("is_guessed", customer))
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(shop.origin + "/signed")
        widget = page.locator("lepton-chat-widget")
        widget.get_by_role("button", name="Open chat: Shop help").click()
        textbox = widget.get_by_role("textbox", name="Your message")
        textbox.fill("Gift ideas under 20 pounds?")
        textbox.press("Enter")
        answer = widget.locator(".msg-assistant .bubble").last
        expect(answer).to_contain_text("Here are some ideas from our catalogue, up to £20.00", timeout=60_000)
        # A numbered list of titles with prices, and reasons from this customer's own purchases.
        items = [li.text_content() for li in answer.locator("ol > li").all()]
        assert len(items) == 5 and all(re.search(r".+ — £\d+\.\d\d \(.+\)$", i) for i in items), items
        assert any("you bought this before" in i or "often bought with" in i for i in items), items
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "widget-recommendations.png"))

        # A page that signs the id with anything but the tenant's secret gets a clear refusal.
        page.goto(shop.origin + "/forged")
        widget.get_by_role("button", name="Open chat: Shop help").click()
        textbox.fill("Gift ideas under 20 pounds?")
        textbox.press("Enter")
        expect(widget.get_by_role("alert")).to_contain_text("does not match this user", timeout=60_000)
        context.close()
    finally:
        shop.close()


# A third-party skill, installed the way pip lays one out, whose answer carries hostile
# Markdown and citations: what the widget must render safely comes through the real
# plugin, graph, server and stream.
HELP_CENTRE_SKILL = '''
from skills import Skill, SkillReply

ANSWER = """**Bold** and *italic*, `code` and snake_case_name.
- [help page](https://shop.example/help)
- [bad link](javascript:steal)
- <img src=x onerror="window.__pwned = 1">
1. See https://shop.example/orders."""


class HelpCentre(Skill):
    def respond(self, ctx):
        ctx.say(ANSWER)
        return SkillReply(text=ANSWER, extras={"citations": [
            {"title": "Shipping policy", "url": "https://shop.example/help/shipping"},
            {"title": "Returns", "source": "returns.md"},
            {"title": "Evil", "url": "javascript:steal"},
        ]})


skill = HelpCentre(
    name="help_centre",
    description="Answers from the shop's help centre.",
    examples=["where is the help page", "shipping policy", "how do returns work"],
    system_prompt="You answer from the help centre.",
)
'''


@pytest.fixture
def help_centre_plugin(tmp_path, monkeypatch):
    import sys

    root = tmp_path / "site"
    info = root / "help_centre_skill-1.0.dist-info"
    info.mkdir(parents=True)
    (root / "help_centre_skill.py").write_text(HELP_CENTRE_SKILL)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: help_centre_skill\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[lepton.skills]\nhelp_centre = help_centre_skill:skill\n")
    monkeypatch.syspath_prepend(str(root))
    yield
    sys.modules.pop("help_centre_skill", None)


def test_markdown_and_citations_are_rendered_safely(browser, settings, llm, help_centre_plugin, start_server):
    from playwright.sync_api import expect

    from assistant import Assistant

    assistant = Assistant.from_settings(settings, llm=llm)
    host = HostPages()
    try:
        live = start_server(settings.model_copy(update={"widget_rate_per_minute": 1}), assistant)
        key = WidgetKeys(assistant.store).create("acme", [host.origin], ["help_centre"]).key
        host.pages["/"] = HOSTILE_PAGE.replace("{server}", live.base_url).replace("{key}", key).replace(
            "async>", 'data-skill="help_centre" async>')
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(host.origin + "/")
        widget = page.locator("lepton-chat-widget")
        widget.get_by_role("button", name="Open chat: Shop help").click()
        widget.get_by_role("textbox", name="Your message").fill("Where is the shipping policy?")
        widget.get_by_role("button", name="Send message").click()
        expect(widget.get_by_role("button", name="Not helpful")).to_be_visible(timeout=60_000)

        rendered = shadow_eval(page, """
            const answer = [...root.querySelectorAll('.msg-assistant')].pop();
            const bubble = answer.querySelector('.bubble');
            const texts = (selector) => [...bubble.querySelectorAll(selector)].map(e => e.textContent);
            const links = (scope) => [...scope.querySelectorAll('a')].map(
                a => [a.textContent, a.getAttribute('href'), a.rel, a.target]);
            return {strong: texts('strong'), em: texts('em'), code: texts('code'),
                    bullets: texts('ul > li'), numbered: texts('ol > li'), links: links(bubble),
                    images: root.querySelectorAll('img').length, pwned: window.__pwned === 1,
                    sources: [...answer.querySelectorAll('.sources li')].map(li => li.textContent),
                    sourceLinks: links(answer.querySelector('.sources'))};
        """)
        assert rendered["strong"] == ["Bold"]
        assert rendered["em"] == ["italic"]  # snake_case_name stays a word
        assert rendered["code"] == ["code"]
        assert rendered["bullets"] == ["help page", "bad link", '<img src=x onerror="window.__pwned = 1">']
        assert rendered["numbered"] == ["See https://shop.example/orders."]
        noopener = "noopener noreferrer"
        assert rendered["links"] == [
            ["help page", "https://shop.example/help", noopener, "_blank"],
            ["https://shop.example/orders", "https://shop.example/orders", noopener, "_blank"],
        ]
        assert rendered["images"] == 0 and not rendered["pwned"]
        assert rendered["sources"] == ["Shipping policy", "Returns", "Evil"]
        assert rendered["sourceLinks"] == [
            ["Shipping policy", "https://shop.example/help/shipping", noopener, "_blank"]
        ]

        # One message a minute in this conversation: the next one is refused with the wait.
        widget.get_by_role("textbox", name="Your message").fill("And returns?")
        widget.get_by_role("button", name="Send message").click()
        expect(widget.get_by_role("alert")).to_have_text(
            "You are sending messages too quickly. Please wait 60 seconds and try again.")

        # After a reload the answer comes back with its sources, rendered as safely.
        page.reload()
        widget.get_by_role("button", name="Open chat: Shop help").click()
        expect(widget.locator(".msg-assistant .sources li")).to_have_text(["Shipping policy", "Returns", "Evil"])
        assert shadow_eval(page, "return [...root.querySelectorAll('.sources a')].map(a => a.getAttribute('href'))") == [
            "https://shop.example/help/shipping"
        ]
        context.close()
    finally:
        host.close()
        assistant.close()


#: Which skill the demo page says answers each of its suggestions (the words after "—").
DEMO_SKILLS = {"customer service": "customer_service", "medical triage": "medical_triage",
               "credit application": "credit_scoring", "recommendations": "recommendation"}


@pytest.fixture
def demo_server(tmp_path, settings, llm, help_centre_store, start_server):
    """A server set up as `lepton serve` sets up a fresh install: every demo's data."""
    import shutil

    from assistant import Assistant
    from retrieval import KnowledgeStore

    chroma = tmp_path / "chroma"
    shutil.copytree(help_centre_store.path, chroma)  # the session's copy is shared read-only
    assistant = Assistant.from_settings(settings, llm=llm, knowledge=KnowledgeStore(path=chroma))
    assistant.ensure_demo_data(progress=None)
    yield start_server(settings, assistant), assistant
    assistant.close()


def test_every_demo_suggestion_gets_a_useful_answer_from_the_skill_it_names(browser, demo_server):
    """What a visitor of the demo page reads when they try its suggestions: each in a
    new conversation, answered by the skill the page names, in words that are not a
    loop (assistant.text_quality), and on the topic asked about."""
    from playwright.sync_api import expect

    from assistant.text_quality import degenerate

    live, assistant = demo_server
    page_html = httpx.get(live.base_url + "/").text
    suggestions = re.findall(r'<li>"(.+?)" — (.+?)</li>', page_html)
    assert len(suggestions) == 4
    on_topic = {"customer_service": "template", "medical_triage": "temperature", "credit_scoring": "application",
                "recommendation": "£"}
    ARTIFACTS.mkdir(exist_ok=True)
    for text, label in suggestions:
        skill = next(s for words, s in DEMO_SKILLS.items() if words in label.replace("&amp;", "&").lower())
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(live.base_url + "/")
        widget = page.locator("lepton-chat-widget")
        widget.get_by_role("button", name="Open chat: Lepton demo").click()
        textbox = widget.get_by_role("textbox", name="Your message")
        textbox.fill(text.replace("&#39;", "'"))
        textbox.press("Enter")
        expect(widget.locator(".msg-user .bubble")).to_have_text(text.replace("&#39;", "'"))
        # The whole answer is in: no message is still typing, and the widget takes a turn again.
        expect(widget.locator('[aria-busy="true"]')).to_have_count(0, timeout=60_000)
        expect(widget.get_by_role("button", name="Talk to a person")).to_be_enabled(timeout=60_000)
        shown = widget.locator(".msg-assistant .bubble").last.inner_text()
        storage = page.evaluate("() => Object.assign({}, window.localStorage)")
        cid = next(json.loads(v)["id"] for k, v in storage.items() if k.endswith(":conversation"))
        page.screenshot(path=str(ARTIFACTS / f"demo-{skill}.png"))
        context.close()
        assert assistant.store.last_skill("default", cid) == skill, (text, shown)
        assert len(shown) > 60 and not degenerate(shown), (text, shown)
        assert on_topic[skill] in shown.lower(), (text, shown)
