"""``lepton keys ...``: create, list and revoke public widget keys.

Managing keys needs no model: the commands open the SQLite database directly.
"""

from __future__ import annotations

import contextlib
import datetime
from typing import Iterator

import click

from assistant import Settings
from assistant.cli_support import pass_settings
from assistant.store import Store, connect

from .keys import SELF_ORIGIN, WidgetKeys, normalize_origin, snippet

__all__ = ["keys_group"]


@contextlib.contextmanager
def _keys(settings: Settings) -> Iterator[WidgetKeys]:
    conn = connect(settings.db_path)
    try:
        yield WidgetKeys(Store(conn))
    finally:
        conn.close()


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


@click.group("keys", help="Public widget keys: which tenant a widget belongs to and where it may run.")
def keys_group() -> None:
    pass


@keys_group.command("create-widget", help="Create a public widget key and print the <script> tag to paste.\n\n"
                    "Example:\n\n  lepton keys create-widget --tenant acme --origin https://shop.example "
                    "--origin https://www.shop.example --skill customer_service")
@click.option("--tenant", required=True, help="Tenant whose conversations and feedback the widget records.")
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


@keys_group.command("list", help="List widget keys.\n\nExample: lepton keys list --tenant acme")
@click.option("--tenant", help="Only this tenant's keys.")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@pass_settings
def list_keys(settings: Settings, tenant: str | None, include_revoked: bool) -> None:
    with _keys(settings) as keys:
        rows = keys.list(tenant, include_revoked)
    if not rows:
        click.echo("No widget keys." + ("" if include_revoked else " (--all includes revoked ones)"))
        return
    for key in rows:
        origins = ", ".join("(this server)" if o == SELF_ORIGIN else o for o in key.origins)
        state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else f"created {_when(key.created_at)}"
        click.echo(f"{key.key}  tenant={key.tenant_id}  origins={origins}  "
                   f"skills={','.join(key.skills) or 'all'}  {state}" + (f"  label={key.label}" if key.label else ""))


@keys_group.command("revoke", help="Revoke a widget key: pages using it stop working at once.\n\n"
                    "Example: lepton keys revoke pk_...")
@click.argument("key")
@pass_settings
def revoke(settings: Settings, key: str) -> None:
    with _keys(settings) as keys:
        if not keys.revoke(key):
            raise click.ClickException(f"no active widget key {key!r}")
    click.echo(f"Revoked {key}")


@keys_group.command("identity-secret", help="""Print the tenant's identity secret (created on first use).

The widget normally cannot say who the visitor is: its key is public, so any page could claim any customer id. To
recommend from a signed-in customer's history, your server signs their id with this secret and your page passes both:

  <script src=".../widget.js" data-key="pk_..." data-user-id="12345" data-user-hash="HASH" async></script>

where HASH is the hex HMAC-SHA256 of the id under the secret, e.g. in Python:
hmac.new(secret.encode(), b"12345", hashlib.sha256).hexdigest(). Keep the secret on your server only.

Example: lepton keys identity-secret --tenant acme
""")
@click.option("--tenant", required=True, help="Tenant whose customers the secret signs.")
@click.option("--rotate", is_flag=True, help="Replace the secret: hashes made with the old one stop working at once.")
@pass_settings
def identity_secret(settings: Settings, tenant: str, rotate: bool) -> None:
    with _keys(settings) as keys:
        click.echo(keys.identity_secret(tenant.strip(), rotate=rotate))
