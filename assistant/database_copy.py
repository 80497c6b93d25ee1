"""Copy a SQLite data directory's records and conversation states into PostgreSQL
(``lepton db migrate-from-sqlite``), then check the copy.

Everything is copied in one transaction on the target: a failure leaves it empty. The
target must hold no records and no checkpoints (a copy never merges). Records are
copied table by table with their ids; conversation states go through LangGraph's own
checkpointers (read from ``SqliteSaver``, written by ``PostgresSaver``), oldest
checkpoint first, each with its pending writes, so that the history of every
conversation (not only its latest state) survives.

The check afterwards compares, per table, the row counts and a sample of rows (each
sampled row must be found, identical, in the target), the numbers of checkpoints and
of pending writes, and the latest state of a sample of conversations.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from .database import RECORD_TABLE_NAMES, Database, PostgresDatabase, SqliteDatabase, migrate

__all__ = ["CopyRefused", "copy_sqlite_to_postgres"]

#: Rows per table (and conversations) the check compares one by one.
SAMPLE = 50
#: Tables with an auto-numbered id, whose sequence must continue after the copied ids.
_NUMBERED = ("feedback", "audit_log")


class CopyRefused(Exception):
    """The copy cannot start or did not verify; nothing was left in the target."""


def _columns(db: Database, table: str) -> list[str]:
    return sorted(db.columns(table))


def _count(db: Database, table: str) -> int:
    return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _checkpoint_counts(db: Database) -> tuple[int, int]:
    writes = "writes" if db.kind == "sqlite" else "checkpoint_writes"
    return _count(db, "checkpoints"), _count(db, writes)


def _copy_records(source: SqliteDatabase, target: PostgresDatabase) -> dict[str, int]:
    copied = {}
    for table in RECORD_TABLE_NAMES:
        columns = _columns(target, table)
        missing = set(columns) - source.columns(table)
        if missing:  # cannot happen once the source is migrated; a clear stop if it does
            raise CopyRefused(f"the SQLite table {table} lacks columns {sorted(missing)}")
        names = ", ".join(columns)
        rows = source.execute(f"SELECT {names} FROM {table}").fetchall()
        if rows:
            marks = ", ".join(["%s"] * len(columns))
            with target.conn.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        copied[table] = len(rows)
    for table in _NUMBERED:  # the next id after the largest copied one
        target.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 1),"
                       f" MAX(id) IS NOT NULL) FROM {table}")
    return copied


def _copy_checkpoints(source_saver: Any, target_saver: Any) -> int:
    """Every checkpoint of every conversation, oldest first, with its pending writes."""
    tuples = list(source_saver.list(None))
    tuples.sort(key=lambda t: t.checkpoint["id"])  # ids are time-ordered (uuid6)
    for saved in tuples:
        conf = saved.config["configurable"]
        parent = (saved.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        put_config = {"configurable": {"thread_id": conf["thread_id"], "checkpoint_ns": conf.get("checkpoint_ns", ""),
                                       **({"checkpoint_id": parent} if parent else {})}}
        stored = target_saver.put(put_config, saved.checkpoint, saved.metadata,
                                  saved.checkpoint.get("channel_versions", {}))
        by_task: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for task_id, channel, value in saved.pending_writes or []:
            by_task[task_id].append((channel, value))
        for task_id, writes in by_task.items():
            target_saver.put_writes(stored, writes, task_id)
    return len(tuples)


def _sample(rows: list, seed: int) -> list:
    return random.Random(seed).sample(rows, min(SAMPLE, len(rows)))


def _verify(source: SqliteDatabase, target: PostgresDatabase, source_saver: Any, target_saver: Any) -> dict[str, Any]:
    problems = []
    sampled = 0
    for table in RECORD_TABLE_NAMES:
        have, got = _count(source, table), _count(target, table)
        if have != got:
            problems.append(f"{table}: {have} rows in SQLite, {got} in PostgreSQL")
            continue
        columns = _columns(target, table)
        rows = source.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        where = " AND ".join(f"{c} IS NOT DISTINCT FROM ?" for c in columns)
        for row in _sample(rows, seed=len(rows)):
            sampled += 1
            if target.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", row).fetchone()[0] != 1:
                problems.append(f"{table}: a row differs in PostgreSQL ({dict(zip(columns, row))})")
                break
    have, got = _checkpoint_counts(source), _checkpoint_counts(target)
    if have != got:
        problems.append(f"checkpoints and pending writes: {have} in SQLite, {got} in PostgreSQL")
    threads = sorted({row[0] for row in source.execute("SELECT DISTINCT thread_id FROM checkpoints").fetchall()})
    for thread in _sample(threads, seed=len(threads)):
        config = {"configurable": {"thread_id": thread}}
        before, after = source_saver.get_tuple(config), target_saver.get_tuple(config)
        if after is None or before.checkpoint["channel_values"] != after.checkpoint["channel_values"]:
            problems.append(f"conversation {thread!r}: its latest state differs in PostgreSQL")
            break
    if problems:
        raise CopyRefused("the copy did not verify, so it was rolled back: " + "; ".join(problems))
    return {"rows_sampled": sampled, "conversations_sampled": min(SAMPLE, len(threads))}


def copy_sqlite_to_postgres(source: SqliteDatabase, target: PostgresDatabase) -> dict[str, Any]:
    """Copy ``source`` into the empty ``target`` and verify the copy, all in one target
    transaction; returns what was copied and checked. Both are migrated first."""
    migrate(source)
    migrate(target)
    source_saver, target_saver = source.checkpointer(), target.checkpointer()
    held = {t: n for t in RECORD_TABLE_NAMES if (n := _count(target, t))}
    checkpoints, _ = _checkpoint_counts(target)
    if held or checkpoints:
        what = ", ".join(f"{n} rows in {t}" for t, n in held.items()) or f"{checkpoints} checkpoints"
        raise CopyRefused(f"the target ({target.describe()}) is not empty ({what}): copy into an empty database")
    # One transaction: the checkpointer's own writes are savepoints inside it.
    with target.lock, target.transaction():
        tables = _copy_records(source, target)
        copied = _copy_checkpoints(source_saver, target_saver)
        checked = _verify(source, target, source_saver, target_saver)
    return {"source": source.describe(), "target": target.describe(), "tables": tables,
            "checkpoints": copied, **checked}
