"""Lepton's own records: conversations, feedback, audit log, handoffs, answer prompts,
keys, data skills and secrets, in SQLite or PostgreSQL (``assistant.database``); the
LangGraph checkpointer keeps each conversation's message state in the same database,
in its own tables.

Every table carries ``tenant_id`` from day one; with no API keys configured
everything belongs to the default tenant.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from typing import Any, Iterator

from .database import Database, migrate, open_database
from .errors import ConversationNotFound

__all__ = ["ANY_OWNER", "Store", "open_store", "transcript_digest"]


def transcript_digest(messages: list[dict[str, Any]], user: str | None = None) -> str:
    """A conversation's fingerprint for continuation by resent history: the roles and
    contents of its messages (as stored, i.e. cleaned) and the request's ``user``."""
    payload = json.dumps([user, [[m["role"], m["content"]] for m in messages]], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()

#: ``owner`` value of the conversation lookups meaning "whoever owns it" (the admin routes).
ANY_OWNER = object()

class Store:
    def __init__(self, db: Database):
        """The store takes ``db`` for its own and brings its schema up to date (``migrate``):
        everything else that uses it (the LangGraph checkpointer, ``checkpointer()``) goes
        through the store's lock."""
        self._db = db
        self._conn = db  # ``execute`` as on a DB-API connection, in the store's own SQL
        self._lock = db.lock
        self._unit = db.unit
        migrate(db)

    @property
    def database(self) -> Database:
        return self._db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def checkpointer(self) -> Any:
        """A LangGraph checkpointer on this store's connection, sharing its lock and units."""
        return self._db.checkpointer()

    @contextlib.contextmanager
    def unit(self) -> Iterator[None]:
        """Everything this store and its checkpointer write in the block commits at its end,
        together, or not at all: an error (or the process dying) inside it leaves the
        database as it was before. Other threads wait for the unit to end."""
        with self._lock:
            if self._unit.active:  # already inside one: part of it
                yield
                return
            self._db.reopen_if_lost()
            self._unit.active = True
            try:
                with self._db.transaction():
                    yield
            finally:
                self._unit.active = False

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write: committed at once, or with the unit it is part of."""
        with self._lock:
            if self._unit.active:
                yield
            else:
                with self._db.transaction():
                    yield

    # -- rate limits ---------------------------------------------------------------------

    def take_token(self, name: str, key: str, capacity: float, per_second: float, now: float) -> float:
        """Take a token from the bucket ``key`` of the limit ``name`` (``server.limits``):
        0.0 if there was one, else the seconds until there is. One statement, so two
        workers taking the bucket's last token at once cannot both get it. A bucket
        refills at ``per_second`` up to ``capacity``; a clock that steps back refills
        nothing (workers on several machines read their own clocks)."""
        # In an upsert, ``excluded`` is the row this call offers and ``rate_buckets`` the
        # stored one; every expression reads the stored row as it was.
        elapsed = "(CASE WHEN excluded.at > rate_buckets.at THEN excluded.at - rate_buckets.at ELSE 0 END)"
        grown = f"rate_buckets.tokens + {elapsed} * excluded.per_second"
        refilled = f"(CASE WHEN {grown} >= excluded.capacity THEN excluded.capacity ELSE {grown} END)"
        with self._write():
            tokens, granted = self._conn.execute(
                "INSERT INTO rate_buckets (name, key, tokens, at, capacity, per_second, granted)"
                " VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (name, key) DO UPDATE SET"
                f" tokens = CASE WHEN {refilled} >= 1 THEN {refilled} - 1 ELSE {refilled} END,"
                f" granted = CASE WHEN {refilled} >= 1 THEN 1 ELSE 0 END,"
                " at = CASE WHEN excluded.at > rate_buckets.at THEN excluded.at ELSE rate_buckets.at END,"
                " capacity = excluded.capacity, per_second = excluded.per_second"
                " RETURNING tokens, granted",
                (name, key, capacity - 1.0, now, capacity, per_second),
            ).fetchone()
        return 0.0 if granted else (1.0 - tokens) / per_second

    def forget_buckets(self, name: str, untouched_since: float) -> int:
        """Delete the buckets of ``name`` untouched since ``untouched_since`` (full again by
        now, so the same as no bucket); returns how many."""
        with self._write():
            return self._conn.execute("DELETE FROM rate_buckets WHERE name = ? AND at < ?",
                                      (name, untouched_since)).rowcount

    def ping(self) -> bool:
        """Whether the database answers a query. A connection found lost by this query is
        opened again and asked once more, so the answer is about the database, not about
        a connection it dropped earlier."""
        for _ in range(2):
            try:
                with self._lock:
                    self._conn.execute("SELECT 1").fetchone()
                return True
            except self._db.error:
                continue
        return False

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
                f" AND owner {self._db.same} ? LIMIT 2",
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
                " updated_at = excluded.updated_at, last_skill = excluded.last_skill, turns = conversations.turns + 1,"
                " transcript_digest = excluded.transcript_digest",
                (tenant_id, conversation_id, now, now, skill, digest, owner),
            )
            if prompt_system is not None and answer_index is not None:
                self._conn.execute(
                    "INSERT INTO answer_prompts (tenant_id, conversation_id, message_index, system)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, conversation_id, message_index)"
                    " DO UPDATE SET system = excluded.system",
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

    def open_handoff(self, tenant_id: str, conversation_id: str, reason: str) -> bool:
        """Hand the conversation to a person; False when it already waits for one (so of
        two workers opening it at once, one opens it and one sends the webhook)."""
        with self._write():
            opened = self._conn.execute(
                "INSERT INTO handoffs (tenant_id, conversation_id, state, reason, requested_at)"
                " VALUES (?, ?, 'pending', ?, ?)"
                " ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET state = 'pending',"
                " reason = excluded.reason, requested_at = excluded.requested_at, released_at = NULL,"
                " webhook_status = NULL WHERE handoffs.state <> 'pending' RETURNING 1",
                (tenant_id, conversation_id, reason, time.time()),
            ).fetchone()
        return opened is not None

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
            cursor = self._conn.execute(
                "INSERT INTO server_secrets (name, secret_hash, created_at) VALUES (?, ?, ?) ON CONFLICT (name) "
                + ("DO UPDATE SET secret_hash = excluded.secret_hash, created_at = excluded.created_at"
                   if replace else "DO NOTHING"),
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
            self._conn.execute(
                "INSERT INTO identity_secrets (tenant_id, secret, created_at) VALUES (?, ?, ?) ON CONFLICT (tenant_id) "
                + ("DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at"
                   if replace else "DO NOTHING"),
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
            " ON CONFLICT (tenant_id) DO UPDATE SET revision = data_skill_revisions.revision + 1", (tenant_id,))

    def add_data_skill(self, tenant_id: str, name: str, *, description: str, examples: list[str], prompt: str,
                       collection: str | None) -> None:
        """Store a new data skill; raises ValueError when the tenant has one of that name."""
        with self._write():
            try:
                self._conn.execute(
                    f"INSERT INTO data_skills (tenant_id, {self._DATA_SKILL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (tenant_id, name, description, json.dumps(examples), prompt, collection, time.time()))
            except self._db.integrity_error:
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


def open_store(settings: Any) -> Store:
    """The store on the database the settings name (``assistant.database.open_database``)."""
    return Store(open_database(settings))
