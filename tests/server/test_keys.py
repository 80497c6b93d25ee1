"""Widget keys, origins, rate limits and `lepton keys ...` — no model needed: a real
SQLite file, a fake clock for the token buckets, the click group invoked directly."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from assistant import Settings
from assistant.store import open_store
from server.cli_keys import keys_group
from server.errors import ApiError
from server.keys import SELF_ORIGIN, WidgetKeys, normalize_origin, snippet
from server.limits import RateLimiter


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def keys(settings):
    store = open_store(settings)
    yield WidgetKeys(store)
    store.close()


ORIGINS = [
    ("https://shop.example", "https://shop.example"),
    ("HTTPS://Shop.Example/", "https://shop.example"),
    ("https://shop.example:443", "https://shop.example"),
    ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
    ("http://[::1]:9000", "http://[::1]:9000"),
]


@pytest.mark.parametrize("given,expected", ORIGINS)
def test_origins_are_normalized(given, expected):
    assert normalize_origin(given) == expected


@pytest.mark.parametrize("bad", ["shop.example", "ftp://shop.example", "https://shop.example/path",
                                 "https://user@shop.example", "https://shop.example?x=1", "null", "*", "self"])
def test_bad_origins_are_refused_with_a_reason(bad):
    with pytest.raises(ValueError, match="origin"):
        normalize_origin(bad)


def test_keys_are_stored_per_tenant_and_revocable(keys):
    key = keys.create("acme", ["https://shop.example/", "https://shop.example"], ["customer_service"], "shop")
    assert re.fullmatch(r"pk_[A-Za-z0-9_-]{24}", key.key)
    assert key.origins == ("https://shop.example",)  # normalized and deduplicated
    again = keys.get(key.key)
    assert again == key and again.tenant_id == "acme"
    assert again.allows_origin("https://SHOP.example", None)
    assert not again.allows_origin("https://evil.example", None)
    assert not again.allows_origin("null", None)
    assert again.allows_skill("customer_service") and not again.allows_skill("assistant")
    assert keys.origin_allowed_anywhere("https://shop.example")
    assert [k.key for k in keys.list("acme")] == [key.key]
    assert keys.list("other") == []

    assert keys.revoke(key.key) and not keys.revoke(key.key)
    assert keys.get(key.key) is None
    assert not keys.origin_allowed_anywhere("https://shop.example")
    assert keys.list("acme", include_revoked=True)[0].revoked_at is not None
    assert keys.get("not-a-key") is None


def test_the_demo_key_is_created_once_and_allows_the_servers_own_origin(keys):
    first = keys.demo("default")
    assert keys.demo("default").key == first.key
    assert first.origins == (SELF_ORIGIN,)
    assert first.allows_origin("http://127.0.0.1:8000", own_origin="http://127.0.0.1:8000")
    assert not first.allows_origin("http://evil.example", own_origin="http://127.0.0.1:8000")
    assert not keys.origin_allowed_anywhere("http://evil.example")


def test_feedback_rows_carry_the_tenant(keys):
    store = keys.store
    store.add_feedback("acme", "conv_1", 1, -1, "It is delayed")
    store.add_feedback("other", "conv_1", 1, 1, None)
    rows = store.feedback("acme")
    assert [(r["conversation_id"], r["message_index"], r["rating"], r["correction"]) for r in rows] == [
        ("conv_1", 1, -1, "It is delayed")
    ]


def test_snippet_is_the_exact_tag_to_paste():
    assert snippet("https://chat.example/", "pk_abc") == (
        '<script src="https://chat.example/widget.js" data-key="pk_abc" async></script>'
    )
    assert 'data-skill="customer_service"' in snippet("https://chat.example", "pk_abc", "customer_service")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_refills_evenly():
    clock = Clock()
    limiter = RateLimiter(3, "from this address", clock=clock)
    for _ in range(3):
        limiter.check("1.2.3.4")
    with pytest.raises(ApiError) as refused:
        limiter.check("1.2.3.4")
    error = refused.value
    assert error.status == 429 and error.code == "rate_limit_exceeded"
    assert error.headers["Retry-After"] == "20"  # 3 a minute: one token every 20 s
    assert "3 per minute" in error.message and "20 s" in error.message
    limiter.check("5.6.7.8")  # other keys have their own bucket
    clock.now += 19.5
    with pytest.raises(ApiError) as soon:
        limiter.check("1.2.3.4")
    assert soon.value.headers["Retry-After"] == "1"
    clock.now += 0.5
    limiter.check("1.2.3.4")


def test_token_bucket_forgets_the_least_recent_keys_past_its_size():
    limiter = RateLimiter(1, "x", max_keys=2, clock=Clock())
    limiter.check("a")
    limiter.check("b")
    limiter.check("c")  # "a" is forgotten, so it starts again with a full bucket
    limiter.check("a")
    with pytest.raises(ApiError):
        limiter.check("c")


def run_keys(settings: Settings, *args: str):
    return CliRunner().invoke(keys_group, list(args), obj=settings)


def test_cli_creates_lists_and_revokes_widget_keys(settings):
    created = run_keys(settings, "create-widget", "--tenant", "acme", "--origin", "https://shop.example",
                       "--origin", "https://www.shop.example", "--skill", "customer_service",
                       "--server-url", "https://chat.shop.example")
    assert created.exit_code == 0, created.output
    key = re.search(r"pk_[A-Za-z0-9_-]+", created.output).group(0)
    assert ("<script src=\"https://chat.shop.example/widget.js\" data-key=\"" + key
            + "\" data-skill=\"customer_service\" async></script>") in created.output
    assert "https://shop.example, https://www.shop.example" in created.output

    listed = run_keys(settings, "list", "--tenant", "acme")
    assert listed.exit_code == 0 and key in listed.output and "skills=customer_service" in listed.output

    assert run_keys(settings, "revoke", key).exit_code == 0
    assert key not in run_keys(settings, "list").output
    assert "revoked" in run_keys(settings, "list", "--all").output
    again = run_keys(settings, "revoke", key)
    assert again.exit_code == 1 and "no active widget key" in again.output


def test_identity_secret_signs_user_ids_per_tenant_and_rotates(settings, keys):
    from server.keys import Caller, user_hash

    printed = run_keys(settings, "identity-secret", "--tenant", "acme")
    assert printed.exit_code == 0, printed.output
    secret = printed.output.strip()
    assert secret.startswith("is_") and run_keys(settings, "identity-secret", "--tenant", "acme").output.strip() == secret
    assert keys.signed_user("acme", "cust-1", user_hash(secret, "cust-1"))
    assert not keys.signed_user("acme", "cust-2", user_hash(secret, "cust-1"))  # another customer's hash
    assert not keys.signed_user("other", "cust-1", user_hash(secret, "cust-1"))  # a tenant without a secret

    widget = Caller("acme", key=keys.create("acme", ["https://shop.example"]), keys=keys)
    assert widget.trusts_user("cust-1", user_hash(secret, "cust-1"))
    assert not widget.trusts_user("cust-1", None)  # unsigned: the page's claim is not believed
    assert Caller("acme").trusts_user("cust-1", None)  # the integrator's server
    with pytest.raises(ApiError) as forged:
        widget.trusts_user("cust-2", user_hash(secret, "cust-1"))
    assert forged.value.status == 403 and "does not match this user" in forged.value.message

    rotated = run_keys(settings, "identity-secret", "--tenant", "acme", "--rotate").output.strip()
    assert rotated != secret and not keys.signed_user("acme", "cust-1", user_hash(secret, "cust-1"))


def test_cli_default_snippet_points_at_the_configured_server(settings):
    result = run_keys(settings.model_copy(update={"port": 9000}), "create-widget", "--tenant", "t",
                      "--origin", "http://localhost:3000")
    assert result.exit_code == 0, result.output
    assert 'src="http://127.0.0.1:9000/widget.js"' in result.output
    assert "data-skill" not in result.output


@pytest.mark.parametrize("args,message", [
    (["--tenant", "t", "--origin", "shop.example"], "must look like https://shop.example"),
    (["--tenant", "t"], "Missing option '--origin'"),
    (["--tenant", "t", "--origin", "https://a.example", "--skill", "nope"], "unknown skill 'nope'"),
])
def test_cli_user_errors_are_one_clear_line(settings, args, message):
    result = run_keys(settings, "create-widget", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_keys_group_attaches_to_a_root_group(settings):
    @click.group()
    @click.pass_context
    def root(ctx):
        ctx.obj = settings

    root.add_command(keys_group)
    result = CliRunner().invoke(root, ["keys", "list"])
    assert result.exit_code == 0 and "No keys" in result.output
