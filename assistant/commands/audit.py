"""``lepton audit export``: a tenant's audit log (the decisions skills reported) as JSON lines."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import click

from skills.cli_types import TENANT

from ..cli_support import pass_settings

__all__ = ["audit"]


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


@click.group(help="The audit log: every decision a skill reported, per tenant.")
def audit() -> None:
    pass


@audit.command("export", help="""Print a tenant's audit log as JSON lines, oldest first.

Each line: id, tenant_id, skill, conversation_id, kind, outcome, inputs, version,
created_at (Unix time) and time (ISO 8601, UTC).

\b
Examples:
  lepton audit export --tenant acme > acme-audit.jsonl
  lepton audit export --tenant acme --since 2026-11-01 --skill customer_service --out audit.jsonl
""")
@click.option("--tenant", type=TENANT, help="Tenant whose log to export (default: the keyless tenant).")
@click.option("--since", callback=_since, help="Only entries from this date (UTC unless it says otherwise).")
@click.option("--skill", help="Only this skill's decisions.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@pass_settings
def export(settings, tenant: str | None, since: float | None, skill: str | None, out: Path | None) -> None:
    from ..database import records_exist
    from ..store import open_store

    if not records_exist(settings):
        raise click.ClickException(f"no database at {settings.db_path}: nothing has been recorded there yet")
    store = open_store(settings)
    try:
        entries = store.audit_entries(tenant or settings.default_tenant, since=since, skill=skill)
    finally:
        store.close()
    lines = "".join(
        json.dumps({**e, "time": datetime.fromtimestamp(e["created_at"], timezone.utc).isoformat()}) + "\n"
        for e in entries
    )
    if out is None:
        click.echo(lines, nl=False)
        return
    # Written whole or not at all: a temporary file in the same folder, then renamed.
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(lines)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    click.echo(f"{len(entries)} entries written to {out}", err=True)
