"""The records database behind ``assistant.store.Store``: SQLite, one file under the
data directory (the default), or PostgreSQL when ``LEPTON_DATABASE_URL`` is a
``postgresql://`` URL, so that several API workers and machines share one database.

The store writes its SQL once, in the dialect both engines accept; the few places
where they differ are here:

- placeholders: the store writes ``?``; PostgreSQL's driver (psycopg) takes ``%s``;
- column types in the schema (``REAL`` is double precision in SQLite, single in
  PostgreSQL; auto-numbered ids);
- null-safe equality (``IS`` in SQLite, ``IS NOT DISTINCT FROM`` in PostgreSQL);
- the error a duplicate key raises, and how a transaction is opened;
- the LangGraph checkpointer that keeps each conversation's state: LangGraph's own
  ``SqliteSaver`` or ``PostgresSaver``, on the store's connection, lock and units.

The schema is a numbered list of migrations (``MIGRATIONS``), applied in order on
start and recorded in ``schema_migrations``; a database is never downgraded. On
PostgreSQL, workers starting together take turns through an advisory lock.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["MIGRATIONS", "Database", "open_database", "sqlite_database", "postgres_database"]

log = logging.getLogger(__name__)


class _Unit(threading.local):
    """Whether the calling thread is inside ``Store.unit()`` (its writes then wait for it)."""

    active = False


class Database:
    """One connection to the records database, with the store's lock and units.

    ``execute`` takes SQL with ``?`` placeholders and returns a DB-API cursor
    (``fetchone``, ``fetchall``, ``rowcount``). Callers hold ``lock`` around a read
    and use ``transaction()`` for writes (``Store`` does both).
    """

    kind: str
    #: Raised by a statement that breaks a unique constraint.
    integrity_error: type[Exception]
    #: The driver's base error (``Store.ping``).
    error: type[Exception]
    #: Equality that also holds between two NULLs.
    same: str

    def __init__(self, conn: Any):
        self.conn = conn
        self.lock = threading.RLock()
        self.unit = _Unit()

    def execute(self, sql: str, args: Any = ()) -> Any:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractContextManager:
        """Commit what the block wrote at its end, or roll it back on an error."""
        raise NotImplementedError

    def columns(self, table: str) -> set[str]:
        raise NotImplementedError

    def checkpointer(self) -> Any:
        """LangGraph's checkpointer for this engine, on this connection, lock and units."""
        raise NotImplementedError

    @contextlib.contextmanager
    def migrating(self) -> Iterator[None]:
        """Held while the schema is checked and migrated (one process at a time)."""
        with self.lock:
            yield

    def reopen_if_lost(self) -> None:
        """Open the connection again if the last one was lost (PostgreSQL only; a SQLite
        file does not go away). Called before a write or a unit begins."""

    def close(self) -> None:
        self.conn.close()

    def describe(self) -> str:
        raise NotImplementedError


# -- SQLite ------------------------------------------------------------------------------

def make_private(path: Path) -> None:
    """Create the database file, and its folder if needed, readable by this user only
    (0600 in 0700); SQLite gives its -wal and -shm files the database file's mode.
    Conversations, keys' hashes and audit records are nobody else's business."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


def connect(path: Path) -> sqlite3.Connection:
    """A connection shared across threads (callers serialise writes with a lock).

    Write-ahead log with ``synchronous=NORMAL``: a commit is an append to the log,
    and the log is synced to disk at checkpoints rather than at every commit. Every
    turn commits while holding the connection's lock, so on a slow disk a sync per
    commit would make concurrent turns queue behind it (even on a fast disk a sync
    makes each commit slower; measured: benchmarks/README.md, Design measurements).
    A crash of the process loses nothing; a power cut or OS crash can lose the last
    turns committed before it, never the database's consistency.
    """
    make_private(path)
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SqliteDatabase(Database):
    kind = "sqlite"
    integrity_error = sqlite3.IntegrityError
    error = sqlite3.Error
    same = "IS"

    def __init__(self, conn: sqlite3.Connection, path: Path | None = None):
        super().__init__(conn)
        self.path = path

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, args)

    def transaction(self) -> contextlib.AbstractContextManager:
        return self.conn  # sqlite3's connection commits on leaving the block, rolls back on an error

    def executescript(self, script: str) -> None:
        self.conn.executescript(script)

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}

    def checkpointer(self) -> Any:
        from langgraph.checkpoint.sqlite import SqliteSaver

        db = self

        class UnitSaver(SqliteSaver):
            """LangGraph's SQLite checkpointer: inside ``Store.unit()`` its writes commit with
            the unit's, not one by one. It overrides ``SqliteSaver.cursor``, through which the
            saver runs every statement, only to leave the commit to an open unit."""

            def __init__(self) -> None:
                super().__init__(db.conn)
                self.lock = db.lock  # type: ignore[assignment]  # reentrant: a unit holds it while the saver writes
                self.setup()  # now: its script commits, which must not happen inside a unit

            @contextlib.contextmanager
            def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
                with self.lock:
                    self.setup()
                    cur = self.conn.cursor()
                    try:
                        yield cur
                    finally:
                        if transaction and not db.unit.active:
                            self.conn.commit()
                        cur.close()

        return UnitSaver()

    def describe(self) -> str:
        return f"SQLite {self.path}" if self.path else "SQLite"


def sqlite_database(path: Path) -> SqliteDatabase:
    return SqliteDatabase(connect(path), path)


# -- PostgreSQL --------------------------------------------------------------------------

@functools.lru_cache(maxsize=512)
def _postgres_sql(sql: str) -> str:
    """The store's SQL for psycopg: ``?`` placeholders become ``%s`` (the store's SQL
    holds no other ``?`` and no ``%``)."""
    return sql.replace("?", "%s")


#: The advisory lock key migrating workers take turns on (any fixed 64-bit number).
_MIGRATION_LOCK = 0x4C4550544F4E  # "LEPTON"


class PostgresDatabase(Database):
    kind = "postgresql"
    same = "IS NOT DISTINCT FROM"

    def __init__(self, conn: Any, url: str):
        import psycopg

        super().__init__(conn)
        self.url = url
        self.integrity_error = psycopg.errors.UniqueViolation
        self.error = psycopg.Error

    def reopen_if_lost(self) -> None:
        """A connection the server dropped (a restart, a failover, an idle timeout) is
        *broken* in psycopg's terms: the statement that met it failed, and its caller got
        the error. The next statement outside a unit opens a new connection instead of
        failing the same way until the worker restarts. Inside a unit the connection is
        the unit's transaction, so it is never swapped there."""
        if not self.conn.broken or self.unit.active:
            return
        with self.lock:
            if self.conn.broken:
                log.warning("the connection to %s was lost; connecting again", self.describe())
                self.conn = _connect(self.url)

    def execute(self, sql: str, args: Any = ()) -> Any:
        self.reopen_if_lost()
        return self.conn.execute(_postgres_sql(sql), tuple(args))

    def transaction(self) -> contextlib.AbstractContextManager:
        self.reopen_if_lost()
        return self.conn.transaction()

    def executescript(self, script: str) -> None:
        self.conn.execute(script, prepare=False)  # several statements: sent as one simple query

    def columns(self, table: str) -> set[str]:
        rows = self.execute("SELECT column_name FROM information_schema.columns"
                            " WHERE table_schema = current_schema() AND table_name = ?", (table,))
        return {row[0] for row in rows}

    @contextlib.contextmanager
    def migrating(self) -> Iterator[None]:
        # try-and-sleep rather than a blocking pg_advisory_lock: a waiting statement is an
        # open transaction, which the checkpointer's CREATE INDEX CONCURRENTLY would wait for.
        with self.lock:
            while not self.conn.execute("SELECT pg_try_advisory_lock(%s)", (_MIGRATION_LOCK,)).fetchone()[0]:
                time.sleep(0.1)
            try:
                yield
            finally:
                self.conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))

    def checkpointer(self) -> Any:
        from langgraph.checkpoint.postgres import PostgresSaver

        db = self

        class ReconnectingSaver(PostgresSaver):
            """LangGraph's PostgreSQL checkpointer on the store's current connection: it
            overrides ``PostgresSaver._cursor``, through which the saver runs every
            statement, only to pick up a connection opened again after a loss."""

            @contextlib.contextmanager
            def _cursor(self, *, pipeline: bool = False) -> Iterator[Any]:
                db.reopen_if_lost()
                self.conn = db.conn
                with super()._cursor(pipeline=pipeline) as cur:
                    yield cur

        saver = ReconnectingSaver(self.conn)
        saver.lock = self.lock  # type: ignore[assignment]  # reentrant, and shared with the store's units
        # Its batched writes then run in a (nested) transaction rather than a pipeline, so
        # inside a unit they are part of the unit's transaction.
        saver.supports_pipeline = False
        return saver

    def setup_checkpointer(self) -> None:
        """Create or migrate LangGraph's checkpoint tables (its own migrations), outside any
        transaction: some of them build indexes concurrently."""
        self.checkpointer().setup()

    def describe(self) -> str:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(self.url)
        return f"PostgreSQL {info.get('dbname', '')} on {info.get('host', 'localhost')}:{info.get('port', 5432)}"


def postgres_database(url: str) -> PostgresDatabase:
    """A connection to PostgreSQL at ``url``, in autocommit mode (LangGraph's checkpointer
    needs it; the store opens explicit transactions for its writes)."""
    return PostgresDatabase(_connect(url), url)


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def records_exist(settings: Any) -> bool:
    """Whether there may be records to read: a PostgreSQL database is named, or the
    SQLite file exists (commands that only read do not create it)."""
    return bool(settings.database_url) or settings.db_path.is_file()


def open_database(settings: Any) -> Database:
    """The database the settings name: ``database_url`` when set, else the SQLite file
    under the data directory."""
    if settings.database_url:
        return postgres_database(settings.database_url)
    return sqlite_database(settings.db_path)


# -- schema and migrations ---------------------------------------------------------------

#: Every table as it is now, in SQL both engines read once ``_for`` has adapted it.
#: Every table carries ``tenant_id``: with no API keys configured everything belongs to
#: the default tenant.
RECORD_TABLES = """
CREATE TABLE IF NOT EXISTS conversations (
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_skill TEXT,
    turns INTEGER NOT NULL DEFAULT 0,
    -- transcript_digest() of the stored messages after the last turn (Store.continuation).
    transcript_digest TEXT,
    -- The API key or widget conversation token that started it (None: keyless).
    owner TEXT,
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    message_index INTEGER NOT NULL,
    rating INTEGER NOT NULL,
    correction TEXT,
    created_at REAL NOT NULL
);
-- Decisions skills report (SkillReply.decisions, SkillEnv.audit): `lepton audit export`.
-- outcome and inputs are JSON.
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    skill TEXT NOT NULL,
    conversation_id TEXT,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    inputs TEXT NOT NULL,
    version TEXT,
    created_at REAL NOT NULL
);
-- Conversations handed to a person: at most one row per conversation, reused
-- when a released conversation is handed off again.
CREATE TABLE IF NOT EXISTS handoffs (
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_at REAL NOT NULL,
    released_at REAL,
    webhook_status TEXT,
    PRIMARY KEY (tenant_id, conversation_id)
);
-- The system message of the prompt behind each model-written answer (message_index
-- is the answer's place in the conversation): `lepton finetune export-feedback`
-- trains on what the model actually saw (the skill's prompt, retrieved sources).
CREATE TABLE IF NOT EXISTS answer_prompts (
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    message_index INTEGER NOT NULL,
    system TEXT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, message_index)
);
-- Public widget keys. The key itself is stored as is: it is published in the
-- customer's page source, so hashing it would protect nothing.
CREATE TABLE IF NOT EXISTS widget_keys (
    key TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    label TEXT,
    origins TEXT NOT NULL,
    skills TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
-- Skills a tenant made from its own data (`lepton skills create`): no code, only
-- routing examples (JSON list), instructions and an optional knowledge collection.
CREATE TABLE IF NOT EXISTS data_skills (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    examples TEXT NOT NULL,
    prompt TEXT NOT NULL,
    collection TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
-- Bumped by every change to a tenant's data skills: a running server compares it
-- on each turn and rebuilds that tenant's router when it moved.
CREATE TABLE IF NOT EXISTS data_skill_revisions (
    tenant_id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL
);
-- Secret API keys (server.api_keys): only a SHA-256 of each key is kept; the key
-- itself is shown once, when it is made. skills is a JSON list (empty: all).
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    skills TEXT NOT NULL,
    admin INTEGER NOT NULL,
    label TEXT,
    created_at REAL NOT NULL,
    revoked_at REAL,
    max_tokens INTEGER,
    max_seconds REAL
);
-- The server's own secrets, hashed (the generated admin token).
CREATE TABLE IF NOT EXISTS server_secrets (
    name TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    created_at REAL NOT NULL
);
-- Per-tenant secrets that sign end-user ids for the widget (identity
-- verification): the integrator's server computes HMAC-SHA256(secret, user id).
CREATE TABLE IF NOT EXISTS identity_secrets (
    tenant_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

#: The indexes of RECORD_TABLES (created after the columns they cover exist).
RECORD_INDEXES = """
CREATE INDEX IF NOT EXISTS audit_log_by_tenant ON audit_log (tenant_id, created_at);
CREATE INDEX IF NOT EXISTS conversations_by_transcript ON conversations (tenant_id, transcript_digest);
CREATE UNIQUE INDEX IF NOT EXISTS feedback_one_per_message ON feedback (tenant_id, conversation_id, message_index);
"""

#: Every table, in the order ``lepton db migrate-from-sqlite`` copies them (not the
#: rate-limit buckets: a minute after the copy they would all be full again anyway).
RECORD_TABLE_NAMES = ("conversations", "feedback", "audit_log", "handoffs", "answer_prompts", "widget_keys",
                      "data_skills", "data_skill_revisions", "api_keys", "server_secrets", "identity_secrets")


def _for(db: Database, ddl: str) -> str:
    """``ddl`` as ``db``'s engine reads it."""
    if db.kind == "sqlite":
        return ddl
    return (ddl.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
               .replace(" REAL", " DOUBLE PRECISION"))


def _sqlite_upgrade_before_versions(db: Database) -> None:
    """SQLite databases made before the schema was versioned: bring each to the first
    version's layout (every step is a no-op on a database that already has it)."""
    # An audit_log of an earlier layout that nothing wrote to: dropped when empty, else
    # kept as audit_log_v1.
    if "subject" in db.columns("audit_log"):
        if db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]:
            db.execute("ALTER TABLE audit_log RENAME TO audit_log_v1")
        else:
            db.execute("DROP TABLE audit_log")


def _sqlite_add_later_columns(db: Database) -> None:
    """Columns added before versions existed: conversations made before continuation by
    resent history or before owners (read by keyless callers and the admin routes only),
    API keys made before per-key limits (the server's limits apply to them)."""
    for table, column, kind in (("conversations", "transcript_digest", "TEXT"), ("conversations", "owner", "TEXT"),
                                ("api_keys", "max_tokens", "INTEGER"), ("api_keys", "max_seconds", "REAL")):
        if column not in db.columns(table):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    # One rating per message (a new one replaces it): databases from before kept every
    # rating; the latest of each message stays.
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'feedback_one_per_message'").fetchone():
        db.execute("DELETE FROM feedback WHERE id NOT IN (SELECT MAX(id) FROM feedback"
                   " GROUP BY tenant_id, conversation_id, message_index)")


def _records(db: Database) -> None:
    if db.kind == "sqlite":
        _sqlite_upgrade_before_versions(db)
        db.executescript(RECORD_TABLES)
        _sqlite_add_later_columns(db)
        db.executescript(RECORD_INDEXES)
    else:
        db.executescript(_for(db, RECORD_TABLES) + RECORD_INDEXES)


def _handoffs_by_state(db: Database) -> None:
    db.execute("CREATE INDEX IF NOT EXISTS handoffs_by_state ON handoffs (tenant_id, state, requested_at)")


RATE_BUCKETS = """
CREATE TABLE IF NOT EXISTS rate_buckets (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    tokens REAL NOT NULL,
    at REAL NOT NULL,
    capacity REAL NOT NULL,
    per_second REAL NOT NULL,
    granted INTEGER NOT NULL,
    PRIMARY KEY (name, key)
)
"""


def _rate_buckets(db: Database) -> None:
    db.execute(_for(db, RATE_BUCKETS))
    db.execute("CREATE INDEX IF NOT EXISTS rate_buckets_by_time ON rate_buckets (at)")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Database], None]


#: The schema's history, oldest first. A new version appends one; none is ever edited.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "records: conversations, feedback, audit log, handoffs, prompts, keys, data skills, secrets",
              _records),
    Migration(2, "index of handoffs by state (the handoff queue)", _handoffs_by_state),
    Migration(3, "rate-limit token buckets, shared by every API worker", _rate_buckets),
)

_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at REAL NOT NULL
)
"""


def schema_version(db: Database) -> int:
    """The newest migration applied to ``db`` (0: none)."""
    with db.lock:
        db.execute(_for(db, _VERSIONS))
        return int(db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])


def migrate(db: Database, target: int | None = None) -> list[int]:
    """Apply the migrations ``db`` lacks, up to ``target`` (default: all), each in its own
    transaction with its record; returns the versions applied. A database newer than this
    code is refused (an older release must not write to it)."""
    newest = MIGRATIONS[-1].version
    target = newest if target is None else target
    applied = []
    with db.migrating():
        current = schema_version(db)
        if current > newest:
            raise RuntimeError(f"the database ({db.describe()}) has schema version {current}, newer than this "
                               f"release's {newest}: upgrade Lepton before using it")
        for migration in MIGRATIONS:
            if current < migration.version <= target:
                with db.transaction():
                    migration.apply(db)
                    db.execute("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                               (migration.version, migration.description, time.time()))
                applied.append(migration.version)
        if isinstance(db, PostgresDatabase):
            db.setup_checkpointer()
    return applied
