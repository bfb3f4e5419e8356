"""Where the devserver keeps events, spans, log records and metrics: SQLite, in memory
unless given a file.

Each event is stored once, as PostHog ends up keeping it: PostHog's events table
collapses rows with the same uuid, event, distinct_id (and day), so a batch sent again
because its answer was lost, with the same uuids, counts once there. A repeat is not
stored again but counted on the stored row (``repeats()``): delivery is at least once,
and the repeats show how often "at least" was more than once. A span is kept once
too (by trace and span id); log records and metrics, which carry no id, as they come.
OpenTelemetry data is kept as the records ``_otlp`` shapes, as JSON, with the columns
the queries filter on beside it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from posthog_otel.devserver._capture import parse_time

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
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    distinct_id TEXT,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS spans_once ON spans (trace_id, span_id);
CREATE INDEX IF NOT EXISTS spans_distinct_id ON spans (distinct_id);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id TEXT NOT NULL,
    distinct_id TEXT,
    session_id TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_trace_id ON logs (trace_id);
CREATE INDEX IF NOT EXISTS logs_distinct_id ON logs (distinct_id);
CREATE INDEX IF NOT EXISTS logs_session_id ON logs (session_id);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    points INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_name ON metrics (name);
"""
# Who a span or log record is about, and its session: the attributes PostHog links on.
DISTINCT_ID_ATTRIBUTE = "posthogDistinctId"
SESSION_ID_ATTRIBUTE = "sessionId"
# The columns each OpenTelemetry table is filtered on (fixed names, never input).
_OTEL_FILTERS = {
    "spans": ("trace_id", "distinct_id"),
    "logs": ("trace_id", "distinct_id", "session_id"),
    "metrics": ("name",),
}
# Columns added since the first release; a file from then is brought up to date.
# ``seen``: how many times the event arrived (1, or more for repeats).
_ADDED = {
    "ts": "INTEGER NOT NULL DEFAULT 0",
    "trace_id": "TEXT",
    "seen": "INTEGER NOT NULL DEFAULT 1",
}
_INDEXES = """
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE INDEX IF NOT EXISTS events_trace_id ON events (trace_id);
CREATE UNIQUE INDEX IF NOT EXISTS events_once ON events (uuid, event, distinct_id);
"""
# A file from before ``seen`` may hold repeats as rows: keep the first, count the rest.
_FOLD_REPEATS = """
UPDATE events SET seen = (
    SELECT COUNT(*) FROM events AS same WHERE same.uuid = events.uuid
    AND same.event = events.event AND same.distinct_id = events.distinct_id
);
DELETE FROM events WHERE id NOT IN (SELECT MIN(id) FROM events GROUP BY uuid, event, distinct_id);
"""
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Filters:
    """Which events a query keeps: exact matches, case-insensitive substrings (``*_contains``,
    and ``text``, found in the name, the distinct_id or the properties), a trace, and
    ``after`` (a uuid: only events stored after that one)."""

    event: str | None = None
    distinct_id: str | None = None
    event_contains: str | None = None
    distinct_id_contains: str | None = None
    text: str | None = None
    trace_id: str | None = None
    after: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("event", self.event),
            ("distinct_id", self.distinct_id),
            ("trace_id", self.trace_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        for column, value in (
            ("event", self.event_contains),
            ("distinct_id", self.distinct_id_contains),
        ):
            if value:
                clauses.append(f"{column} LIKE ? ESCAPE '\\'")
                args.append(_like(value))
        if self.text:
            clauses.append(
                "(event LIKE ? ESCAPE '\\' OR distinct_id LIKE ? ESCAPE '\\'"
                " OR properties LIKE ? ESCAPE '\\')"
            )
            args.extend([_like(self.text)] * 3)
        if self.after is not None:
            clauses.append("id > COALESCE((SELECT MAX(id) FROM events WHERE uuid = ?), 0)")
            args.append(self.after)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


class EventStore:
    """Thread-safe event storage with a condition that waiters can block on."""

    def __init__(self, path: str | None = None) -> None:
        self._db = sqlite3.connect(path or ":memory:", check_same_thread=False)
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._upgrade()
        self._changed = threading.Condition()

    def add(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Store ``events`` in one transaction: all of them or, on any error, none. An
        event already stored (same uuid, event and distinct_id) is counted as a repeat
        instead; the first stored copy stays."""
        rows = [
            (
                e["uuid"],
                e["event"],
                e["distinct_id"],
                e["timestamp"],
                json.dumps(e["properties"], separators=(",", ":"), ensure_ascii=False),
                sort_key(e["timestamp"]),
                _trace_id(e["properties"]),
            )
            for e in events
        ]
        with self._changed:
            with self._db:
                self._db.executemany(
                    "INSERT INTO events"
                    " (uuid, event, distinct_id, timestamp, properties, ts, trace_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (uuid, event, distinct_id) DO UPDATE SET seen = seen + 1",
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
        filters: Filters | None = None,
        order: Literal["arrival", "time"] = "arrival",
    ) -> list[dict[str, Any]]:
        """Newest first: the latest stored (``arrival``) or the latest event time (``time``)."""
        filters = filters or Filters(event=event, distinct_id=distinct_id, after=after)
        sql, args = filters.where()
        # The WHERE clause is built from fixed strings; values go in as parameters.
        sql = "SELECT uuid, event, distinct_id, timestamp, properties FROM events" + sql  # noqa: S608
        sql += " ORDER BY ts DESC, id DESC" if order == "time" else " ORDER BY id DESC"
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

    def count(
        self,
        *,
        event: str | None = None,
        distinct_id: str | None = None,
        filters: Filters | None = None,
    ) -> int:
        sql, args = (filters or Filters(event=event, distinct_id=distinct_id)).where()
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

    # -- OpenTelemetry data ---------------------------------------------------------

    def add_spans(self, spans: Iterable[Mapping[str, Any]]) -> None:
        """Store spans in one transaction; a span already stored (same trace and span
        id: an export sent again) is kept once."""
        rows = [
            (s["trace_id"], s["span_id"], _attribute(s, DISTINCT_ID_ATTRIBUTE), _dumps(s))
            for s in spans
        ]
        self._insert(
            "INSERT INTO spans (trace_id, span_id, distinct_id, data) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (trace_id, span_id) DO NOTHING",
            rows,
        )

    def add_logs(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Store log records in one transaction."""
        rows = [
            (
                r["trace_id"],
                _attribute(r, DISTINCT_ID_ATTRIBUTE),
                _attribute(r, SESSION_ID_ATTRIBUTE),
                _dumps(r),
            )
            for r in records
        ]
        self._insert(
            "INSERT INTO logs (trace_id, distinct_id, session_id, data) VALUES (?, ?, ?, ?)", rows
        )

    def add_metrics(self, metrics: Iterable[Mapping[str, Any]]) -> None:
        """Store metrics (each with its data points) in one transaction."""
        rows = [(m["name"], len(m["data_points"]), _dumps(m)) for m in metrics]
        self._insert("INSERT INTO metrics (name, points, data) VALUES (?, ?, ?)", rows)

    def otel(
        self, table: str, filters: Mapping[str, str | None], limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Stored ``spans``, ``logs`` or ``metrics``, newest first, matching every
        filter that is not None (filters: ``_OTEL_FILTERS``)."""
        sql, args = _otel_where(table, filters)
        sql = f"SELECT data FROM {table}{sql} ORDER BY id DESC"  # noqa: S608 - fixed names
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._changed:
            rows = self._db.execute(sql, args).fetchall()
        return [json.loads(data) for (data,) in rows]

    def otel_count(self, table: str, filters: Mapping[str, str | None]) -> int:
        """How many match: spans, log records, or metric data points."""
        sql, args = _otel_where(table, filters)
        what = "SUM(points)" if table == "metrics" else "COUNT(*)"
        with self._changed:
            query = f"SELECT COALESCE({what}, 0) FROM {table}{sql}"  # noqa: S608 - fixed names
            (n,) = self._db.execute(query, args).fetchone()
        return int(n)

    def wait_for_otel(
        self, table: str, count: int, timeout: float, filters: Mapping[str, str | None]
    ) -> int:
        """Block until ``otel_count`` reaches ``count``, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.otel_count(table, filters)
                remaining = deadline - time.monotonic()
                if found >= count or remaining <= 0:
                    return found
                self._changed.wait(remaining)

    def _insert(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._changed:
            with self._db:
                self._db.executemany(sql, rows)
            self._changed.notify_all()

    def repeats(self) -> dict[str, int]:
        """Events received more than once, by uuid: how many times more (since ``clear``)."""
        with self._changed:
            rows = self._db.execute("SELECT uuid, seen - 1 FROM events WHERE seen > 1")
            return {uuid: int(more) for uuid, more in rows.fetchall()}

    def repeated(self) -> int:
        """How many events arrived again after they were stored (since ``clear``)."""
        with self._changed:
            (n,) = self._db.execute("SELECT COALESCE(SUM(seen - 1), 0) FROM events").fetchone()
        return int(n)

    def clear(self) -> None:
        with self._changed, self._db:
            for table in ("events", "spans", "logs", "metrics"):  # fixed names
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608

    def close(self) -> None:
        with self._changed:
            self._db.close()

    def _upgrade(self) -> None:
        """Add the columns a file from an earlier release lacks, filled from its rows."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
        missing = {name: kind for name, kind in _ADDED.items() if name not in have}
        with self._db:
            for name, kind in missing.items():  # fixed names and types, no input
                self._db.execute(f"ALTER TABLE events ADD COLUMN {name} {kind}")
            if missing.keys() & {"ts", "trace_id"}:
                rows = self._db.execute("SELECT id, timestamp, properties FROM events").fetchall()
                self._db.executemany(
                    "UPDATE events SET ts = ?, trace_id = ? WHERE id = ?",
                    [(sort_key(t), _trace_id(json.loads(p)), i) for i, t, p in rows],
                )
            if "seen" in missing:
                self._db.executescript(_FOLD_REPEATS)
            self._db.executescript(_INDEXES)


def sort_key(timestamp: str) -> int:
    """Microseconds since the epoch, for ordering by event time."""
    when = parse_time(timestamp) or datetime.now(timezone.utc)
    return (when - _EPOCH) // _MICROSECOND


def _trace_id(properties: Mapping[str, Any]) -> str | None:
    """The trace an event belongs to: OpenTelemetry's (``$trace_id``) or LLM analytics'."""
    for key in ("$trace_id", "$ai_trace_id"):
        value = properties.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _otel_where(table: str, filters: Mapping[str, str | None]) -> tuple[str, list[Any]]:
    columns = _OTEL_FILTERS[table]
    unknown = set(filters) - set(columns)
    if unknown:
        raise ValueError(f"{table} are not filtered on {sorted(unknown)}")
    clauses = [f"{c} = ?" for c in columns if filters.get(c) is not None]
    args: list[Any] = [filters[c] for c in columns if filters.get(c) is not None]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _attribute(record: Mapping[str, Any], name: str) -> str | None:
    value = record["attributes"].get(name)
    return value if isinstance(value, str) else None


def _dumps(record: Mapping[str, Any]) -> str:
    # NaN and infinities (a metric's) are kept: json.loads reads them back.
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)
