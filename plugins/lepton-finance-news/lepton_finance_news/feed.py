"""Headline feeds: reading a tenant's CSV or JSONL feed, and the tenant's headline store.

A feed row has a ``time`` (ISO 8601 date or date-time, with or without a UTC
offset, or Unix seconds), a ``headline`` and a ``source``; ``url`` is optional
(a citation links to it). A feed is read whole before anything is stored, so a
bad row (its line number is named) leaves the store as it was.

The store is one SQLite file per tenant (``headlines.sqlite3`` in the tenant's
folder of the skill). Each headline is kept with the sentiment the tenant's
model gave it at ingestion and the model's version. Ingesting the same headline
(same time, text and source) twice keeps one copy, so a feed can be re-sent.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

__all__ = ["FeedError", "Headline", "StoredHeadline", "HeadlineStore", "read_feed", "parse_time", "window_bounds",
           "REQUIRED_FIELDS"]

REQUIRED_FIELDS = ("time", "headline", "source")
MAX_HEADLINE = 1000
STORE_FILE = "headlines.sqlite3"


class FeedError(ValueError):
    """A feed that cannot be ingested; the message says which line and what to fix."""


@dataclass(frozen=True)
class Headline:
    time: datetime  # timezone-aware, UTC
    headline: str
    source: str
    url: str | None = None


@dataclass(frozen=True)
class StoredHeadline:
    id: int
    time: datetime
    headline: str
    source: str
    url: str | None
    sentiment: str
    confidence: float
    model: str


def parse_time(value: str) -> datetime:
    """A UTC datetime from ISO 8601 text (a date alone means its midnight, UTC) or Unix seconds."""
    text = value.strip()
    if not text:
        raise ValueError("empty time")
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return datetime.fromtimestamp(float(text), tz=timezone.utc)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _row(where: str, record: dict, fallback_source: str) -> Headline:
    fields = {str(k).strip().lower(): v for k, v in record.items() if k is not None}
    raw_time = fields.get("time")
    if raw_time is None or str(raw_time).strip() == "":
        raise FeedError(f"{where}: empty time")
    try:
        when = parse_time(str(raw_time))
    except (ValueError, OverflowError, OSError):
        raise FeedError(f"{where}: time {str(raw_time)[:40]!r} is not an ISO 8601 date/time or Unix seconds") from None
    text = " ".join(str(fields.get("headline") or "").split())
    if not text:
        raise FeedError(f"{where}: empty headline")
    if len(text) > MAX_HEADLINE:
        raise FeedError(f"{where}: headline longer than {MAX_HEADLINE} characters")
    source = " ".join(str(fields.get("source") or "").split()) or fallback_source
    url = str(fields.get("url") or "").strip() or None
    return Headline(when, text, source, url)


def read_feed(path: str | Path) -> list[Headline]:
    """Every headline of a ``.csv`` (with a header) or ``.jsonl`` feed; raises FeedError."""
    path = Path(path)
    if not path.is_file():
        raise FeedError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise FeedError(f"{path}: a feed is a .csv or .jsonl file")
    rows: list[Headline] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            if suffix == ".csv":
                reader = csv.DictReader(fh)
                columns = [c.strip().lower() for c in reader.fieldnames or [] if c]
                missing = [c for c in ("time", "headline") if c not in columns]
                if not columns:
                    raise FeedError(f"{path}: empty file (a header with time, headline, source is needed)")
                if missing:
                    raise FeedError(f"{path}: needs columns time, headline, source; missing {', '.join(missing)} "
                                    f"(got {', '.join(columns)})")
                for number, record in enumerate(reader, start=2):
                    rows.append(_row(f"{path}:{number}", record, path.name))
            else:
                for number, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError as exc:
                        raise FeedError(f"{path}:{number}: not a JSON object ({exc.msg})") from None
                    if not isinstance(record, dict):
                        raise FeedError(f"{path}:{number}: not a JSON object")
                    missing = [c for c in ("time", "headline") if c not in {str(k).lower() for k in record}]
                    if missing:
                        raise FeedError(f"{path}:{number}: needs fields time, headline, source; "
                                        f"missing {', '.join(missing)}")
                    rows.append(_row(f"{path}:{number}", record, path.name))
    except UnicodeDecodeError:
        raise FeedError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise FeedError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise FeedError(f"{path}: no headlines")
    return rows


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


class HeadlineStore:
    """One tenant's classified headlines (a SQLite file in the tenant's folder)."""

    def __init__(self, tenant_dir: str | Path):
        self.path = Path(tenant_dir) / STORE_FILE

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("""CREATE TABLE IF NOT EXISTS headlines (
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            headline TEXT NOT NULL,
            source TEXT NOT NULL,
            url TEXT,
            sentiment TEXT NOT NULL,
            confidence REAL NOT NULL,
            model TEXT NOT NULL,
            ingested TEXT NOT NULL,
            UNIQUE (time, headline, source))""")
        db.execute("CREATE INDEX IF NOT EXISTS headlines_time ON headlines (time)")
        return db

    def add(self, headlines: Sequence[Headline], sentiments: Sequence[tuple[str, float]], model: str) -> int:
        """Store classified headlines in one transaction; returns how many were new."""
        if len(headlines) != len(sentiments):
            raise ValueError("one sentiment per headline is needed")
        now = _iso(datetime.now(timezone.utc))
        with closing(self._connect()) as db, db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO headlines (time, headline, source, url, sentiment, confidence, model, ingested) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(_iso(h.time), h.headline, h.source, h.url, label, float(conf), model, now)
                 for h, (label, conf) in zip(headlines, sentiments)])
            return db.total_changes - before

    def between(self, start: datetime, end: datetime) -> list[StoredHeadline]:
        """Headlines with ``start <= time < end``, newest first."""
        if not self.path.is_file():
            return []
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT id, time, headline, source, url, sentiment, confidence, model FROM headlines "
                "WHERE time >= ? AND time < ? ORDER BY time DESC, id DESC", (_iso(start), _iso(end))).fetchall()
        return [StoredHeadline(r[0], parse_time(r[1]), r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]

    def count(self) -> int:
        if not self.path.is_file():
            return 0
        with closing(self._connect()) as db:
            return int(db.execute("SELECT COUNT(*) FROM headlines").fetchone()[0])

    def latest(self) -> datetime | None:
        if not self.path.is_file():
            return None
        with closing(self._connect()) as db:
            found = db.execute("SELECT MAX(time) FROM headlines").fetchone()[0]
        return parse_time(found) if found else None


def window_bounds(end: datetime, days: int) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """The window ``[end - days, end)`` and the one of the same length before it."""
    span = timedelta(days=days)
    return (end - span, end), (end - 2 * span, end - span)
