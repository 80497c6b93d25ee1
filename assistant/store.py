"""Lepton's own records in the SQLite database (the LangGraph checkpointer keeps
message state in the same file, in its own tables).

Every table carries ``tenant_id`` from day one; with no API keys configured
everything belongs to the default tenant.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["Store", "connect"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_skill TEXT,
    turns INTEGER NOT NULL DEFAULT 0,
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
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection shared across threads (callers serialise writes with a lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


class Store:
    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self._lock = threading.Lock()
        with self._lock, self._conn:
            self._conn.executescript(_SCHEMA)

    def conversation_exists(self, tenant_id: str, conversation_id: str) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM conversations WHERE tenant_id = ? AND conversation_id = ?",
                (tenant_id, conversation_id),
            ).fetchone()
        return row is not None

    def record_turn(self, tenant_id: str, conversation_id: str, skill: str) -> None:
        now = time.time()
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO conversations (tenant_id, conversation_id, created_at, updated_at, last_skill, turns)"
                " VALUES (?, ?, ?, ?, ?, 1)"
                " ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET"
                " updated_at = excluded.updated_at, last_skill = excluded.last_skill, turns = turns + 1",
                (tenant_id, conversation_id, now, now, skill),
            )

    def turn_count(self, tenant_id: str, conversation_id: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT turns FROM conversations WHERE tenant_id = ? AND conversation_id = ?",
                (tenant_id, conversation_id),
            ).fetchone()
        return row[0] if row else 0
