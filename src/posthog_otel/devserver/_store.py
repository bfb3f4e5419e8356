"""Where the devserver keeps events: SQLite, in memory unless given a file."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL,
    event TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    properties TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_event ON events (event);
CREATE INDEX IF NOT EXISTS events_distinct_id ON events (distinct_id);
"""


class EventStore:
    """Thread-safe event storage with a condition that waiters can block on."""

    def __init__(self, path: str | None = None) -> None:
        self._db = sqlite3.connect(path or ":memory:", check_same_thread=False)
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._changed = threading.Condition()

    def add(self, events: Iterable[Mapping[str, Any]]) -> None:
        rows = [
            (
                e["uuid"],
                e["event"],
                e["distinct_id"],
                e["timestamp"],
                json.dumps(e["properties"], separators=(",", ":")),
            )
            for e in events
        ]
        with self._changed:
            with self._db:
                self._db.executemany(
                    "INSERT INTO events (uuid, event, distinct_id, timestamp, properties) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            self._changed.notify_all()

    def query(
        self,
        *,
        event: str | None = None,
        distinct_id: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; ``after`` (a uuid) keeps only events stored after that one."""
        sql, args = self._where(event, distinct_id, after)
        # The WHERE clause is built from fixed strings; values go in as parameters.
        sql = "SELECT uuid, event, distinct_id, timestamp, properties FROM events" + sql  # noqa: S608
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._changed:
            rows = self._db.execute(sql, args).fetchall()
        return [
            {
                "uuid": uuid,
                "event": name,
                "distinct_id": did,
                "timestamp": timestamp,
                "properties": json.loads(properties),
            }
            for uuid, name, did, timestamp, properties in rows
        ]

    def count(self, *, event: str | None = None, distinct_id: str | None = None) -> int:
        sql, args = self._where(event, distinct_id, None)
        with self._changed:
            query = "SELECT COUNT(*) FROM events" + sql  # noqa: S608 - parameters only
            (n,) = self._db.execute(query, args).fetchone()
        return int(n)

    def wait_for_count(
        self,
        count: int,
        timeout: float,
        *,
        event: str | None = None,
        distinct_id: str | None = None,
    ) -> int:
        """Block until at least ``count`` matching events are stored, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.count(event=event, distinct_id=distinct_id)
                remaining = deadline - time.monotonic()
                if found >= count or remaining <= 0:
                    return found
                self._changed.wait(remaining)

    def clear(self) -> None:
        with self._changed, self._db:
            self._db.execute("DELETE FROM events")

    def close(self) -> None:
        with self._changed:
            self._db.close()

    @staticmethod
    def _where(
        event: str | None, distinct_id: str | None, after: str | None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if event is not None:
            clauses.append("event = ?")
            args.append(event)
        if distinct_id is not None:
            clauses.append("distinct_id = ?")
            args.append(distinct_id)
        if after is not None:
            clauses.append("id > COALESCE((SELECT MAX(id) FROM events WHERE uuid = ?), 0)")
            args.append(after)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args
