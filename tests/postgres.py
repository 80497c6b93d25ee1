"""A throwaway PostgreSQL server on loopback for the tests of the PostgreSQL store.

It runs Debian's PostgreSQL programs (``initdb``, ``pg_ctl``) on a fresh cluster in a
temporary folder, with trust authentication on 127.0.0.1 only, and gives each test a
database of its own. As root (CI) the cluster runs as the ``postgres`` user, since
PostgreSQL refuses to run as root. ``scripts/test.sh`` installs the programs when the
machine lacks them; a test that needs the server fails, naming what is missing.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def _program(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PostgresServer:
    def __init__(self, port: int):
        self.port = port
        self._folder = Path(tempfile.mkdtemp(prefix="lepton-pg-"))
        self._data = self._folder / "data"
        self._names = itertools.count(1)
        self._as_postgres = os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else list(argv)
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> "PostgresServer":
        initdb, pg_ctl = _program("initdb"), _program("pg_ctl")
        if not (initdb and pg_ctl):
            raise RuntimeError("the PostgreSQL server programs (initdb, pg_ctl) are not installed: "
                               "apt-get install postgresql (scripts/test.sh does it when run as root)")
        self._pg_ctl = pg_ctl
        if self._as_postgres:
            shutil.chown(self._folder, "postgres", "postgres")
        self._run(initdb, "-D", str(self._data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = f"-p {self.port} -k {self._folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(pg_ctl, "-D", str(self._data), "-o", options, "-l", str(self._folder / "log"), "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        name = f"lepton_test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(self._pg_ctl, "-D", str(self._data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)


def database_text(url: str) -> str:
    """Every row of every table of the database at ``url``, as JSON text."""
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        return "\n".join(row for table in tables for (row,) in conn.execute(
            f'SELECT row_to_json(t)::text FROM "{table}" t'))

