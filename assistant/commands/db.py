"""``lepton db``: the records database — its schema version, its migrations, and the
copy of a SQLite data directory into PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli_support import pass_settings

__all__ = ["db"]


@click.group(help="The records database: SQLite under the data directory, or PostgreSQL (LEPTON_DATABASE_URL).")
def db() -> None:
    pass


def _open(settings):
    from ..database import open_database

    try:
        return open_database(settings)
    except Exception as exc:  # the driver's connection errors: one line, not a traceback
        raise click.ClickException(f"cannot open the database: {str(exc).strip().splitlines()[0]}") from None


@db.command("status", help="Say which database is in use and which schema migrations it has.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_settings
def status(settings, as_json: bool) -> None:
    from ..database import MIGRATIONS, schema_version

    database = _open(settings)
    try:
        version = schema_version(database)
        described = database.describe()
    finally:
        database.close()
    pending = [m.version for m in MIGRATIONS if m.version > version]
    if as_json:
        click.echo(json.dumps({"database": described, "schema_version": version, "pending": pending}))
        return
    click.echo(f"{described}: schema version {version}"
               + (f", {len(pending)} migration(s) pending (lepton db migrate)" if pending else ", up to date"))


@db.command("migrate", help="""Bring the database's schema up to date.

`lepton serve` does it on start too; run it once before starting several workers
on a new release, so that none of them waits for another's migration.""")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_settings
def migrate_command(settings, as_json: bool) -> None:
    from ..database import migrate

    database = _open(settings)
    try:
        applied = migrate(database)
        described = database.describe()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.close()
    if as_json:
        click.echo(json.dumps({"database": described, "applied": applied}))
    else:
        click.echo(f"{described}: " + (f"applied migration(s) {', '.join(map(str, applied))}" if applied
                                       else "already up to date"))


@db.command("migrate-from-sqlite", help="""Copy a SQLite data directory into PostgreSQL, and check the copy.

The target is LEPTON_DATABASE_URL, which must name an empty PostgreSQL database.
Every record and every conversation's saved states are copied in one transaction,
then compared (row counts per table, a sample of rows, the checkpoints and the
latest state of a sample of conversations); a copy that does not verify is rolled
back, leaving the target empty. The SQLite file is read, and migrated to this
release's schema first, never otherwise changed.

\b
Examples:
  LEPTON_DATABASE_URL=postgresql://lepton@db.internal/lepton lepton db migrate-from-sqlite
  LEPTON_DATABASE_URL=postgresql://lepton@db.internal/lepton lepton db migrate-from-sqlite --from /srv/old-data
""")
@click.option("--from", "source", type=click.Path(path_type=Path),
              help="A data directory or its lepton.sqlite3 file (default: this data directory's).")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object.")
@pass_settings
def migrate_from_sqlite(settings, source: Path | None, as_json: bool) -> None:
    from ..database import PostgresDatabase, sqlite_database
    from ..database_copy import CopyRefused, copy_sqlite_to_postgres

    path = source or settings.db_path
    if path.is_dir():
        path = path / settings.db_path.name
    if not path.is_file():
        raise click.ClickException(f"no SQLite database at {path}: name a data directory or its {settings.db_path.name}")
    if not settings.database_url:
        raise click.ClickException("set LEPTON_DATABASE_URL to the PostgreSQL database to copy into")
    target = _open(settings)
    assert isinstance(target, PostgresDatabase)
    origin = sqlite_database(path)
    try:
        result = copy_sqlite_to_postgres(origin, target)
    except (CopyRefused, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        origin.close()
        target.close()
    rows = sum(result["tables"].values())
    click.echo(f"copied {rows} rows from {len(result['tables'])} tables and {result['checkpoints']} checkpoints "
               f"into {result['target']}; verified: counts equal, {result['rows_sampled']} sampled rows and "
               f"the latest state of {result['conversations_sampled']} conversations identical")
    if as_json:
        click.echo(json.dumps(result))
