"""``lepton keys ...``: secret API keys, public widget keys, the admin token.

Managing keys needs no model: the commands open the SQLite database directly.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from typing import Iterator

import click

from skills.cli_types import TENANT

from assistant import Settings
from assistant.cli_support import pass_settings
from assistant.store import Store, open_store

from .api_keys import API_KEY_PREFIX, AdminToken, ApiKeys
from .keys import SELF_ORIGIN, WidgetKeys, normalize_origin, snippet

__all__ = ["keys_group"]


@contextlib.contextmanager
def _store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def _keys(settings: Settings) -> Iterator[WidgetKeys]:
    with _store(settings) as store:
        yield WidgetKeys(store)


def _default_server_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def _origin(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    try:
        return [normalize_origin(v) for v in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@pass_settings
def _skills(settings: Settings, ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    from skills import load_skills

    installed = set(load_skills(settings.skills).skills)
    unknown = [v for v in values if v not in installed]
    if unknown:
        raise click.BadParameter(f"unknown skill {unknown[0]!r}; installed: {', '.join(sorted(installed))}")
    return list(values)


@click.group("keys", help="API keys (secret, for your servers), widget keys (public, for your pages) and the "
                           "admin token.")
def keys_group() -> None:
    pass


def _skill_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    names = [v.strip() for v in (value or "").split(",") if v.strip()]
    return _skills(ctx, param, tuple(names)) if names else []


@keys_group.command("create", help="""Create a secret API key and print it (once: only its hash is kept).

Once any API key exists, every API route needs one (LEPTON_REQUIRE_KEYS=false turns that off): send it as
'Authorization: Bearer sk_...', the OpenAI clients' api_key.

Examples:

  lepton keys create --tenant acme

  lepton keys create --tenant acme --skills customer_service,recommendation --label shop-backend

  lepton keys create --tenant acme --admin --json      (the /admin routes, for tenant acme only)
""")
@click.option("--tenant", type=TENANT, required=True, help="Tenant whose data the key reads and writes.")
@click.option("--skills", "skills", callback=_skill_list,
              help="Comma-separated skills the key may use. Default: every skill and automatic routing.")
@click.option("--admin", is_flag=True, help="Also allow the /admin routes, for this tenant only.")
@click.option("--label", help="A note to recognise the key by in `lepton keys list`.")
@click.option("--max-tokens", type=click.IntRange(min=1),
              help="Longest answer (tokens) this key gets. Default: LEPTON_MAX_ANSWER_TOKENS.")
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True),
              help="Longest a turn of this key may take, in seconds. Default: LEPTON_TURN_TIMEOUT.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with the key) last.")
@pass_settings
def create_key(settings: Settings, tenant: str, skills: list[str], admin: bool, label: str | None,
               max_tokens: int | None, max_seconds: float | None, as_json: bool) -> None:
    with _store(settings) as store:
        secret, key = ApiKeys(store, settings).create(tenant, skills, admin, label, max_tokens, max_seconds)
    if as_json:
        click.echo(json.dumps({"key": secret, "id": key.id, "tenant": key.tenant_id, "skills": list(key.skills),
                               "admin": key.admin, "label": key.label, "max_tokens": key.max_tokens,
                               "max_seconds": key.max_seconds}))
        return
    click.echo(f"API key {key.id} for tenant {key.tenant_id!r}" + (" (admin)" if key.admin else "") + ":")
    click.echo(f"\n  {secret}\n")
    click.echo("Shown only now: store it in your server's secrets. Use it as 'Authorization: Bearer <key>'.")
    click.echo(f"Allowed skills: {', '.join(key.skills) if key.skills else 'all (automatic routing)'}")
    click.echo(f"Limits: {_key_limits(key)}")


def _key_limits(key) -> str:  # noqa: ANN001 - an ApiKey
    return (f"answers up to {key.max_tokens or 'LEPTON_MAX_ANSWER_TOKENS'} tokens, "
            f"turns up to {key.max_seconds or 'LEPTON_TURN_TIMEOUT'} s")


@keys_group.command("admin-token", help="Make a new admin token for the /admin routes and print it (once).\n\n"
                    "The server generates one on its first start; this replaces it, and the old one stops "
                    "working at once. A LEPTON_ADMIN_TOKEN setting takes precedence over both.\n\n"
                    "Example: lepton keys admin-token --rotate")
@click.option("--rotate", is_flag=True, required=True, help="Replace the admin token (required: the old one "
                                                            "cannot be shown, only replaced).")
@pass_settings
def admin_token(settings: Settings, rotate: bool) -> None:
    with _store(settings) as store:
        token = AdminToken(store, settings).rotate()
    if settings.admin_token:
        click.echo("Note: LEPTON_ADMIN_TOKEN is set, and the server uses it instead of this token.", err=True)
    click.echo(token)


@keys_group.command("create-widget", help="Create a public widget key and print the <script> tag to paste.\n\n"
                    "Example:\n\n  lepton keys create-widget --tenant acme --origin https://shop.example "
                    "--origin https://www.shop.example --skill customer_service")
@click.option("--tenant", type=TENANT, required=True, help="Tenant whose conversations and feedback the widget records.")
@click.option("--origin", "origins", multiple=True, required=True, callback=_origin,
              help="Origin allowed to embed the widget, e.g. https://shop.example (repeatable).")
@click.option("--skill", "skills", multiple=True, callback=_skills,
              help="Skill the widget may use (repeatable). Default: every skill and automatic routing.")
@click.option("--label", help="A note to recognise the key by in `lepton keys list`.")
@click.option("--server-url", help="Public URL of this server for the snippet. Default: from --host/--port settings.")
@pass_settings
def create_widget(settings: Settings, tenant: str, origins: list[str], skills: list[str], label: str | None,
                  server_url: str | None) -> None:
    with _keys(settings) as keys:
        try:
            key = keys.create(tenant, origins, skills, label)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    url = server_url or _default_server_url(settings)
    click.echo(f"Widget key for tenant {key.tenant_id!r}: {key.key}")
    click.echo(f"Allowed origins: {', '.join(key.origins)}")
    click.echo(f"Allowed skills: {', '.join(key.skills) if key.skills else 'all (automatic routing)'}")
    click.echo("\nPaste this just before </body> on your pages:\n")
    # A key limited to skills cannot use automatic routing, so the tag names one.
    click.echo(snippet(url, key.key, key.skills[0] if key.skills else None))
    if len(key.skills) > 1:
        click.echo(f"\n(data-skill picks the skill; any of {', '.join(key.skills)} is allowed.)")


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


@keys_group.command("list", help="List API keys (never their secret) and widget keys.\n\n"
                    "Example: lepton keys list --tenant acme")
@click.option("--tenant", type=TENANT, help="Only this tenant's keys.")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@pass_settings
def list_keys(settings: Settings, tenant: str | None, include_revoked: bool) -> None:
    with _store(settings) as store:
        rows = WidgetKeys(store).list(tenant, include_revoked)
        api_keys = ApiKeys(store, settings).list(tenant, include_revoked)
    if not rows and not api_keys:
        click.echo("No keys." + ("" if include_revoked else " (--all includes revoked ones)"))
        return
    for api_key in api_keys:
        state = f"revoked {_when(api_key.revoked_at)}" if api_key.revoked_at else f"created {_when(api_key.created_at)}"
        click.echo(f"{api_key.id}  {api_key.hint}…  tenant={api_key.tenant_id}  skills={','.join(api_key.skills) or 'all'}"
                   + ("  admin" if api_key.admin else "")
                   + (f"  max_tokens={api_key.max_tokens}" if api_key.max_tokens else "")
                   + (f"  max_seconds={api_key.max_seconds:g}" if api_key.max_seconds else "") + f"  {state}"
                   + (f"  label={api_key.label}" if api_key.label else ""))
    for key in rows:
        origins = ", ".join("(this server)" if o == SELF_ORIGIN else o for o in key.origins)
        state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else f"created {_when(key.created_at)}"
        click.echo(f"{key.key}  tenant={key.tenant_id}  origins={origins}  "
                   f"skills={','.join(key.skills) or 'all'}  {state}" + (f"  label={key.label}" if key.label else ""))


@keys_group.command("revoke", help="Revoke an API key (by its id key_... or the key itself) or a widget key "
                    "(pk_...): it stops working at once.\n\nExamples: lepton keys revoke key_3f2a9c01b7d4   "
                    "lepton keys revoke pk_...")
@click.argument("key")
@pass_settings
def revoke(settings: Settings, key: str) -> None:
    with _store(settings) as store:
        if key.startswith("pk_"):
            done, what = WidgetKeys(store).revoke(key), "widget key"
        else:
            api_keys = ApiKeys(store, settings)
            found = api_keys.get(key) if key.startswith(API_KEY_PREFIX) else None
            done, what = api_keys.revoke(found.id if found else key), "API key"
            key = found.id if found else key
    if not done:
        raise click.ClickException(f"no active {what} {key!r}")
    click.echo(f"Revoked {key}")


@keys_group.command("identity-secret", help="""Print the tenant's identity secret (created on first use).

The widget normally cannot say who the visitor is: its key is public, so any page could claim any customer id. To
recommend from a signed-in customer's history, your server signs their id with this secret and your page passes both:

  <script src=".../widget.js" data-key="pk_..." data-user-id="12345" data-user-hash="HASH" async></script>

where HASH is the hex HMAC-SHA256 of the id under the secret, e.g. in Python:
hmac.new(secret.encode(), b"12345", hashlib.sha256).hexdigest(). Keep the secret on your server only.

Example: lepton keys identity-secret --tenant acme
""")
@click.option("--tenant", type=TENANT, required=True, help="Tenant whose customers the secret signs.")
@click.option("--rotate", is_flag=True, help="Replace the secret: hashes made with the old one stop working at once.")
@pass_settings
def identity_secret(settings: Settings, tenant: str, rotate: bool) -> None:
    with _keys(settings) as keys:
        click.echo(keys.identity_secret(tenant.strip(), rotate=rotate))
