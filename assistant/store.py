"""Lepton's own records in the SQLite database (the LangGraph checkpointer keeps
message state in the same file, in its own tables).

Every table carries ``tenant_id`` from day one; with no API keys configured
everything belongs to the default tenant.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from langgraph.checkpoint.sqlite import SqliteSaver

from .errors import ConversationNotFound

__all__ = ["ANY_OWNER", "Store", "UnitSaver", "connect", "transcript_digest"]


def transcript_digest(messages: list[dict[str, Any]], user: str | None = None) -> str:
    """A conversation's fingerprint for continuation by resent history: the roles and
    contents of its messages (as stored, i.e. cleaned) and the request's ``user``."""
    payload = json.dumps([user, [[m["role"], m["content"]] for m in messages]], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()

#: ``owner`` value of the conversation lookups meaning "whoever owns it" (the admin routes).
ANY_OWNER = object()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_skill TEXT,
    turns INTEGER NOT NULL DEFAULT 0,
    -- transcript_digest() of the stored messages after the last turn (Store.continuation).
    transcript_digest TEXT,
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
CREATE INDEX IF NOT EXISTS audit_log_by_tenant ON audit_log (tenant_id, created_at);
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
-- Per-tenant secrets that sign end-user ids for the widget (identity
-- verification): the integrator's server computes HMAC-SHA256(secret, user id).
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
CREATE TABLE IF NOT EXISTS identity_secrets (
    tenant_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


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


class _Unit(threading.local):
    """Whether the calling thread is inside ``Store.unit()`` (its writes then wait for it)."""

    active = False


class UnitSaver(SqliteSaver):
    """LangGraph's SQLite checkpointer on the Store's connection, lock and units: inside
    ``Store.unit()`` its writes commit with the unit's, not one by one.

    It overrides ``SqliteSaver.cursor``, through which the saver runs every statement,
    only to leave the commit to an open unit."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock, unit: _Unit):
        super().__init__(conn)
        self.lock = lock  # type: ignore[assignment]  # reentrant: a unit holds it while the saver writes
        self._unit = unit
        self.setup()  # now: its script commits, which must not happen inside a unit

    @contextlib.contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        with self.lock:
            self.setup()
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                if transaction and not self._unit.active:
                    self.conn.commit()
                cur.close()


class Store:
    def __init__(self, conn: sqlite3.Connection):
        """The store takes ``conn`` for its own: everything else that uses it (the
        LangGraph checkpointer, ``checkpointer()``) goes through the store's lock."""
        self._conn = conn
        self._lock = threading.RLock()
        self._unit = _Unit()
        with self._lock, self._conn:
            self._retire_first_audit_table()
            self._conn.executescript(_SCHEMA)
            self._add_transcript_digests()
            self._add_owners()
            self._one_rating_per_message()
            self._add_key_limits()

    def checkpointer(self) -> UnitSaver:
        """A LangGraph checkpointer on this store's connection, sharing its lock and units."""
        return UnitSaver(self._conn, self._lock, self._unit)

    @contextlib.contextmanager
    def unit(self) -> Iterator[None]:
        """Everything this store and its checkpointer write in the block commits at its end,
        together, or not at all: an error (or the process dying) inside it leaves the
        database as it was before. Other threads wait for the unit to end."""
        with self._lock:
            if self._unit.active:  # already inside one: part of it
                yield
                return
            self._unit.active = True
            try:
                yield
            except BaseException:
                self._conn.rollback()
                raise
            else:
                self._conn.commit()
            finally:
                self._unit.active = False

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write: committed at once, or with the unit it is part of."""
        with self._lock:
            if self._unit.active:
                yield
            else:
                with self._conn:
                    yield

    def _add_transcript_digests(self) -> None:
        """Databases made before continuation by resent history lack its column; their
        conversations continue by id only until their next turn records a digest."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(conversations)")}
        if "transcript_digest" not in columns:
            self._conn.execute("ALTER TABLE conversations ADD COLUMN transcript_digest TEXT")
        self._conn.execute("CREATE INDEX IF NOT EXISTS conversations_by_transcript"
                           " ON conversations (tenant_id, transcript_digest)")

    def _add_owners(self) -> None:
        """Conversations made before API keys have no owner: only keyless callers and the
        admin routes read them."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(conversations)")}
        if "owner" not in columns:
            self._conn.execute("ALTER TABLE conversations ADD COLUMN owner TEXT")

    def _add_key_limits(self) -> None:
        """API keys made before per-key limits have none: the server's limits apply to them."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(api_keys)")}
        for column, kind in (("max_tokens", "INTEGER"), ("max_seconds", "REAL")):
            if column not in columns:
                self._conn.execute(f"ALTER TABLE api_keys ADD COLUMN {column} {kind}")

    def _one_rating_per_message(self) -> None:
        """One rating per message (a new one replaces it): databases from before kept every
        rating; the latest of each message stays."""
        if self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'feedback_one_per_message'").fetchone():
            return
        self._conn.execute("DELETE FROM feedback WHERE id NOT IN (SELECT MAX(id) FROM feedback"
                           " GROUP BY tenant_id, conversation_id, message_index)")
        self._conn.execute("CREATE UNIQUE INDEX feedback_one_per_message"
                           " ON feedback (tenant_id, conversation_id, message_index)")

    def _retire_first_audit_table(self) -> None:
        """Databases made before decisions were audited have an ``audit_log`` of another
        layout that nothing wrote to: drop it when empty, else keep it as ``audit_log_v1``."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(audit_log)")}
        if "subject" not in columns:
            return
        if self._conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]:
            self._conn.execute("ALTER TABLE audit_log RENAME TO audit_log_v1")
        else:
            self._conn.execute("DROP TABLE audit_log")

    def ping(self) -> bool:
        """Whether the database answers a query."""
        try:
            with self._lock:
                self._conn.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def conversation_exists(self, tenant_id: str, conversation_id: str, owner: object = ANY_OWNER) -> bool:
        """Whether the tenant has this conversation and, unless ``owner`` is ANY_OWNER, it
        belongs to ``owner`` (None: started without a key)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT owner FROM conversations WHERE tenant_id = ? AND conversation_id = ?",
                (tenant_id, conversation_id),
            ).fetchone()
        return row is not None and (owner is ANY_OWNER or row[0] == owner)

    def last_skill(self, tenant_id: str, conversation_id: str) -> str | None:
        """The skill that answered the conversation's latest turn (None: no such conversation)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT last_skill FROM conversations WHERE tenant_id = ? AND conversation_id = ?",
                (tenant_id, conversation_id),
            ).fetchone()
        return row[0] if row else None

    def require_conversation(self, tenant_id: str, conversation_id: str, owner: object = ANY_OWNER) -> None:
        """Raise ConversationNotFound unless the tenant has this conversation (of ``owner``:
        someone else's reads as missing, so ids cannot be probed)."""
        if not self.conversation_exists(tenant_id, conversation_id, owner):
            raise ConversationNotFound(f"conversation {conversation_id!r} not found")

    def continuation(self, tenant_id: str, digest: str, owner: str | None = None) -> str | None:
        """The tenant's one conversation whose transcript has this digest, or None when no
        conversation, or more than one, has it (two visitors who said the same "hi" and got
        the same answer are never merged). Only ``owner``'s conversations are candidates.
        An indexed lookup, never a scan."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT conversation_id FROM conversations WHERE tenant_id = ? AND transcript_digest = ?"
                " AND owner IS ? LIMIT 2",
                (tenant_id, digest, owner),
            ).fetchall()
        return rows[0][0] if len(rows) == 1 else None

    def record_turn(
        self,
        tenant_id: str,
        conversation_id: str,
        skill: str,
        answer_index: int | None = None,
        prompt_system: str | None = None,
        digest: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Count a committed turn and keep its transcript's ``digest`` (``continuation``);
        a new conversation belongs to ``owner`` (the API key or widget conversation token
        that started it; None: keyless) for good;
        with ``prompt_system``, also keep the system message of the prompt behind the
        answer at ``answer_index``."""
        now = time.time()
        with self._write():
            self._conn.execute(
                "INSERT INTO conversations"
                " (tenant_id, conversation_id, created_at, updated_at, last_skill, turns, transcript_digest, owner)"
                " VALUES (?, ?, ?, ?, ?, 1, ?, ?)"
                " ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET"
                " updated_at = excluded.updated_at, last_skill = excluded.last_skill, turns = turns + 1,"
                " transcript_digest = excluded.transcript_digest",
                (tenant_id, conversation_id, now, now, skill, digest, owner),
            )
            if prompt_system is not None and answer_index is not None:
                self._conn.execute(
                    "INSERT OR REPLACE INTO answer_prompts (tenant_id, conversation_id, message_index, system)"
                    " VALUES (?, ?, ?, ?)",
                    (tenant_id, conversation_id, answer_index, prompt_system),
                )

    def add_audit(
        self,
        tenant_id: str,
        skill: str,
        kind: str,
        outcome: Any,
        *,
        inputs: Any = None,
        version: str | None = None,
        conversation_id: str | None = None,
    ) -> None:
        """Write one decision to the audit log (outcome and inputs must be JSON-serialisable)."""
        row = (tenant_id, skill, conversation_id, kind, json.dumps(outcome), json.dumps(dict(inputs or {})),
               version, time.time())
        with self._write():
            self._conn.execute(
                "INSERT INTO audit_log (tenant_id, skill, conversation_id, kind, outcome, inputs, version, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    def audit_entries(
        self, tenant_id: str, *, since: float | None = None, skill: str | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's audit log, oldest first; ``since`` is a Unix time."""
        query = ("SELECT id, skill, conversation_id, kind, outcome, inputs, version, created_at FROM audit_log"
                 " WHERE tenant_id = ?")
        args: list[Any] = [tenant_id]
        if since is not None:
            query += " AND created_at >= ?"
            args.append(since)
        if skill is not None:
            query += " AND skill = ?"
            args.append(skill)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", args).fetchall()
        return [
            {"id": r[0], "tenant_id": tenant_id, "skill": r[1], "conversation_id": r[2], "kind": r[3],
             "outcome": json.loads(r[4]), "inputs": json.loads(r[5]), "version": r[6], "created_at": r[7]}
            for r in rows
        ]

    def answer_prompt(self, tenant_id: str, conversation_id: str, message_index: int) -> str | None:
        """The system message the model was given for that answer, if one was recorded."""
        with self._lock:
            row = self._conn.execute(
                "SELECT system FROM answer_prompts WHERE tenant_id = ? AND conversation_id = ? AND message_index = ?",
                (tenant_id, conversation_id, message_index),
            ).fetchone()
        return row[0] if row else None

    def turn_count(self, tenant_id: str, conversation_id: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT turns FROM conversations WHERE tenant_id = ? AND conversation_id = ?",
                (tenant_id, conversation_id),
            ).fetchone()
        return row[0] if row else 0

    # -- feedback ----------------------------------------------------------------

    def add_feedback(
        self, tenant_id: str, conversation_id: str, message_index: int, rating: int, correction: str | None
    ) -> int:
        """Record the rating (+1/-1) of one message of a conversation, replacing an earlier
        one of the same message; returns the row id."""
        with self._write():
            return int(self._conn.execute(
                "INSERT INTO feedback (tenant_id, conversation_id, message_index, rating, correction, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, conversation_id, message_index) DO UPDATE SET"
                " rating = excluded.rating, correction = excluded.correction, created_at = excluded.created_at"
                " RETURNING id",
                (tenant_id, conversation_id, message_index, rating, correction, time.time()),
            ).fetchone()[0])

    def feedback(self, tenant_id: str, conversation_id: str | None = None) -> list[dict[str, Any]]:
        """A tenant's feedback, oldest first (optionally of one conversation)."""
        query = ("SELECT id, conversation_id, message_index, rating, correction, created_at"
                 " FROM feedback WHERE tenant_id = ?")
        args: tuple = (tenant_id,)
        if conversation_id is not None:
            query += " AND conversation_id = ?"
            args += (conversation_id,)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", args).fetchall()
        keys = ("id", "conversation_id", "message_index", "rating", "correction", "created_at")
        return [dict(zip(keys, row)) for row in rows]

    # -- handoffs -----------------------------------------------------------------

    _HANDOFF_COLUMNS = ("conversation_id", "state", "reason", "requested_at", "released_at", "webhook_status")

    def handoff(self, tenant_id: str, conversation_id: str) -> dict[str, Any] | None:
        """The conversation's handoff record (pending or released), or None."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {', '.join(self._HANDOFF_COLUMNS)} FROM handoffs WHERE tenant_id = ? AND conversation_id = ?",
                (tenant_id, conversation_id),
            ).fetchone()
        return dict(zip(self._HANDOFF_COLUMNS, row)) if row else None

    def open_handoff(self, tenant_id: str, conversation_id: str, reason: str) -> dict[str, Any]:
        with self._write():
            self._conn.execute(
                "INSERT INTO handoffs (tenant_id, conversation_id, state, reason, requested_at)"
                " VALUES (?, ?, 'pending', ?, ?)"
                " ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET state = 'pending',"
                " reason = excluded.reason, requested_at = excluded.requested_at, released_at = NULL,"
                " webhook_status = NULL",
                (tenant_id, conversation_id, reason, time.time()),
            )
        return self.handoff(tenant_id, conversation_id)  # type: ignore[return-value]

    def release_handoff(self, tenant_id: str, conversation_id: str) -> bool:
        """Release a pending handoff; False when the conversation has none pending."""
        with self._write():
            cursor = self._conn.execute(
                "UPDATE handoffs SET state = 'released', released_at = ?"
                " WHERE tenant_id = ? AND conversation_id = ? AND state = 'pending'",
                (time.time(), tenant_id, conversation_id),
            )
        return cursor.rowcount == 1

    def set_webhook_status(self, tenant_id: str, conversation_id: str, status: str) -> None:
        with self._write():
            self._conn.execute(
                "UPDATE handoffs SET webhook_status = ? WHERE tenant_id = ? AND conversation_id = ?",
                (status, tenant_id, conversation_id),
            )

    def handoffs(self, tenant_id: str, state: str | None = "pending") -> list[dict[str, Any]]:
        """A tenant's handoffs, oldest request first (``state=None``: all)."""
        query = f"SELECT {', '.join(self._HANDOFF_COLUMNS)} FROM handoffs WHERE tenant_id = ?"
        args: tuple = (tenant_id,)
        if state is not None:
            query += " AND state = ?"
            args += (state,)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY requested_at", args).fetchall()
        return [dict(zip(self._HANDOFF_COLUMNS, row)) for row in rows]

    # -- widget keys ---------------------------------------------------------------

    _KEY_COLUMNS = "key, tenant_id, label, origins, skills, created_at, revoked_at"

    @staticmethod
    def _key_row(row: tuple | None) -> dict[str, Any] | None:
        if row is None:
            return None
        key, tenant_id, label, origins, skills, created_at, revoked_at = row
        return {"key": key, "tenant_id": tenant_id, "label": label, "origins": json.loads(origins),
                "skills": json.loads(skills), "created_at": created_at, "revoked_at": revoked_at}

    def add_widget_key(
        self, key: str, tenant_id: str, origins: list[str], skills: list[str], label: str | None = None
    ) -> dict[str, Any]:
        with self._write():
            self._conn.execute(
                f"INSERT INTO widget_keys ({self._KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (key, tenant_id, label, json.dumps(origins), json.dumps(skills), time.time()),
            )
        return self.widget_key(key)  # type: ignore[return-value]

    def ensure_widget_key(
        self, key: str, tenant_id: str, origins: list[str], skills: list[str], label: str
    ) -> dict[str, Any]:
        """The tenant's active key with this label, created with the given values if there is none."""
        with self._write():
            row = self._conn.execute(
                f"SELECT {self._KEY_COLUMNS} FROM widget_keys WHERE tenant_id = ? AND label = ?"
                " AND revoked_at IS NULL ORDER BY created_at LIMIT 1",
                (tenant_id, label),
            ).fetchone()
            if row is None:
                row = (key, tenant_id, label, json.dumps(origins), json.dumps(skills), time.time(), None)
                self._conn.execute(f"INSERT INTO widget_keys ({self._KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        return self._key_row(row)  # type: ignore[return-value]

    def widget_key(self, key: str) -> dict[str, Any] | None:
        """A key (revoked ones included: the caller decides what revocation means)."""
        with self._lock:
            row = self._conn.execute(f"SELECT {self._KEY_COLUMNS} FROM widget_keys WHERE key = ?", (key,)).fetchone()
        return self._key_row(row)

    def widget_keys(self, tenant_id: str | None = None, include_revoked: bool = False) -> list[dict[str, Any]]:
        query = f"SELECT {self._KEY_COLUMNS} FROM widget_keys WHERE 1 = 1"
        args: tuple = ()
        if tenant_id is not None:
            query += " AND tenant_id = ?"
            args += (tenant_id,)
        if not include_revoked:
            query += " AND revoked_at IS NULL"
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY created_at", args).fetchall()
        return [self._key_row(row) for row in rows]  # type: ignore[misc]

    # -- API keys (server.api_keys) -----------------------------------------------------
    _API_KEY_COLUMNS = "id, hint, tenant_id, skills, admin, label, created_at, revoked_at, max_tokens, max_seconds"

    @staticmethod
    def _api_key_row(row: tuple | None) -> dict[str, Any] | None:
        if row is None:
            return None
        key_id, hint, tenant_id, skills, admin, label, created_at, revoked_at, max_tokens, max_seconds = row
        return {"id": key_id, "hint": hint, "tenant_id": tenant_id, "skills": json.loads(skills),
                "admin": bool(admin), "label": label, "created_at": created_at, "revoked_at": revoked_at,
                "max_tokens": max_tokens, "max_seconds": max_seconds}

    def add_api_key(self, key_id: str, secret_hash: str, hint: str, tenant_id: str, skills: list[str],
                    admin: bool, label: str | None, max_tokens: int | None = None,
                    max_seconds: float | None = None) -> dict[str, Any]:
        with self._write():
            self._conn.execute(
                "INSERT INTO api_keys (id, secret_hash, hint, tenant_id, skills, admin, label, created_at,"
                " max_tokens, max_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key_id, secret_hash, hint, tenant_id, json.dumps(skills), int(admin), label, time.time(),
                 max_tokens, max_seconds))
        return self.api_keys(key_id=key_id, include_revoked=True)[0]

    def api_key_by_hash(self, secret_hash: str) -> dict[str, Any] | None:
        """The active key with this hash, or None."""
        with self._lock:
            row = self._conn.execute(f"SELECT {self._API_KEY_COLUMNS} FROM api_keys"
                                     " WHERE secret_hash = ? AND revoked_at IS NULL", (secret_hash,)).fetchone()
        return self._api_key_row(row)

    def api_keys(self, tenant_id: str | None = None, include_revoked: bool = False,
                 key_id: str | None = None) -> list[dict[str, Any]]:
        query, args = f"SELECT {self._API_KEY_COLUMNS} FROM api_keys WHERE 1 = 1", ()
        for column, value in (("tenant_id", tenant_id), ("id", key_id)):
            if value is not None:
                query += f" AND {column} = ?"
                args += (value,)
        if not include_revoked:
            query += " AND revoked_at IS NULL"
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY created_at", args).fetchall()
        return [self._api_key_row(row) for row in rows]  # type: ignore[misc]

    def any_api_key(self) -> bool:
        """Whether any API key is active (then keys are required unless configured otherwise)."""
        with self._lock:
            return self._conn.execute("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1").fetchone() is not None

    def revoke_api_key(self, key_id: str) -> bool:
        with self._write():
            cursor = self._conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                                        (time.time(), key_id))
        return cursor.rowcount == 1

    def server_secret_hash(self, name: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT secret_hash FROM server_secrets WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_server_secret_hash(self, name: str, secret_hash: str, *, replace: bool) -> bool:
        """Keep ``secret_hash`` under ``name``; without ``replace``, only if there is none. True if stored."""
        with self._write():
            verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
            cursor = self._conn.execute(f"{verb} INTO server_secrets (name, secret_hash, created_at) VALUES (?, ?, ?)",
                                        (name, secret_hash, time.time()))
        return cursor.rowcount == 1

    # -- identity secrets --------------------------------------------------------------
    def identity_secret(self, tenant_id: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT secret FROM identity_secrets WHERE tenant_id = ?", (tenant_id,)).fetchone()
        return row[0] if row else None

    def set_identity_secret(self, tenant_id: str, secret: str, *, replace: bool) -> str:
        """Store ``secret`` for the tenant unless it has one and ``replace`` is false; returns the one in force."""
        with self._write():
            verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
            self._conn.execute(f"{verb} INTO identity_secrets (tenant_id, secret, created_at) VALUES (?, ?, ?)",
                               (tenant_id, secret, time.time()))
            return self._conn.execute("SELECT secret FROM identity_secrets WHERE tenant_id = ?",
                                      (tenant_id,)).fetchone()[0]

    def revoke_widget_key(self, key: str) -> bool:
        """Revoke an active key; False if there is no such active key."""
        with self._write():
            cursor = self._conn.execute(
                "UPDATE widget_keys SET revoked_at = ? WHERE key = ? AND revoked_at IS NULL", (time.time(), key)
            )
        return cursor.rowcount == 1

    # -- data skills (assistant.tenant_skills) ------------------------------------------
    _DATA_SKILL_COLUMNS = "name, description, examples, prompt, collection, created_at"

    def _bump_data_skills(self, tenant_id: str) -> None:
        self._conn.execute(
            "INSERT INTO data_skill_revisions (tenant_id, revision) VALUES (?, 1)"
            " ON CONFLICT (tenant_id) DO UPDATE SET revision = revision + 1", (tenant_id,))

    def add_data_skill(self, tenant_id: str, name: str, *, description: str, examples: list[str], prompt: str,
                       collection: str | None) -> None:
        """Store a new data skill; raises ValueError when the tenant has one of that name."""
        with self._write():
            try:
                self._conn.execute(
                    f"INSERT INTO data_skills (tenant_id, {self._DATA_SKILL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (tenant_id, name, description, json.dumps(examples), prompt, collection, time.time()))
            except sqlite3.IntegrityError:
                raise ValueError(f"tenant {tenant_id!r} already has a skill named {name!r}") from None
            self._bump_data_skills(tenant_id)

    def data_skills(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's data skills, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {self._DATA_SKILL_COLUMNS} FROM data_skills WHERE tenant_id = ? ORDER BY created_at, name",
                (tenant_id,)).fetchall()
        return [{"name": r[0], "description": r[1], "examples": json.loads(r[2]), "prompt": r[3],
                 "collection": r[4], "created_at": r[5]} for r in rows]

    def delete_data_skill(self, tenant_id: str, name: str) -> bool:
        """False when the tenant has no data skill of that name."""
        with self._write():
            cursor = self._conn.execute("DELETE FROM data_skills WHERE tenant_id = ? AND name = ?", (tenant_id, name))
            if cursor.rowcount:
                self._bump_data_skills(tenant_id)
        return cursor.rowcount == 1

    def data_skill_tenant(self, name: str) -> str | None:
        """The tenant that has a data skill of this name, if any (names are unique on a server)."""
        with self._lock:
            row = self._conn.execute("SELECT tenant_id FROM data_skills WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def data_skill_revision(self, tenant_id: str) -> int:
        """Changes so far to the tenant's data skills (0: it never had any)."""
        with self._lock:
            row = self._conn.execute("SELECT revision FROM data_skill_revisions WHERE tenant_id = ?",
                                     (tenant_id,)).fetchone()
        return row[0] if row else 0
