"""From queued items to accepted batches: map, ``before_send``, encode, send, count.

Shared by the exporter (called per export) and the processor's worker thread.
Nothing here raises: every event ends up sent or counted as dropped, by reason.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from posthog_otel._client.batch import (
    PIPELINE_BATCH_BYTES,
    OpenBatch,
    SealedBatch,
)
from posthog_otel._client.connection import Connection
from posthog_otel._client.events import MAX_EVENT_BYTES
from posthog_otel._client.retry import RETRY_STATUSES
from posthog_otel._client.watchdog import WATCHDOG
from posthog_otel._json import dumps, lenient
from posthog_otel._mapping.bounds import Trims, fit_event
from posthog_otel._mapping.logs import LogItem, LogMapper
from posthog_otel._mapping.spans import SpanMapper
from posthog_otel._pipeline import metrics
from posthog_otel._pipeline.stats import Stats
from posthog_otel.errors import TransportError

BeforeSend = Callable[[dict[str, Any]], "dict[str, Any] | None"]
# A queued item: an ended span (with flags inherited from its ancestors, and the captures
# it held aside when its event list was full), a log record (with what its context
# knew), or a built event.
Item = (
    ReadableSpan
    | tuple[ReadableSpan, "dict[str, Any] | None"]
    | tuple[ReadableSpan, "dict[str, Any] | None", tuple[Any, ...]]
    | LogItem
    | dict[str, Any]
)
# Too large: halve and resend, so the events that fit still go. Not 400: our events are
# validated before sending, and halving a batch PostHog refuses as a whole would send
# ~2n requests that all fail.
_SPLIT_STATUSES = (413,)


class Delivery:
    def __init__(
        self,
        connection: Connection,
        stats: Stats,
        mapper: SpanMapper | None = None,
        before_send: BeforeSend | None = None,
        max_batch_events: int = 1000,
        log_mapper: LogMapper | None = None,
    ) -> None:
        self._connection = connection
        self._mapper = mapper
        self._log_mapper = log_mapper
        self._stats = stats
        self._before_send = before_send
        self._trims = Trims()  # cuts made here, to fit an event in PostHog's limit
        self._all_trims = tuple(
            trims
            for trims in (
                self._trims,
                mapper.trims if mapper is not None else None,
                mapper.unmapped if mapper is not None else None,
                log_mapper.trims if log_mapper is not None else None,
            )
            if trims is not None
        )
        self.max_batch_events = max_batch_events
        # Our requests need the watchdog: start it now, as Python 3.12.0-3.12.2 refuse to
        # start a thread at interpreter exit, where the last flush may be the first send.
        WATCHDOG.start()
        metrics.instrument_global()  # our counters as OpenTelemetry metrics, once per process

    def encode_item(self, item: Item) -> list[bytes]:
        """The item's events, encoded; those that cannot be are counted as dropped.

        The item was counted as one queued event when it was accepted; here that count
        is corrected to the number of events it really holds. Nothing raises: an error
        of any kind (deep nesting, ``RecursionError`` and ``MemoryError`` included)
        loses the one event it concerns.
        """
        problems: list[str] = []
        try:
            events = self._events_of(item, problems)
        except Exception as exc:  # noqa: BLE001 - an item we cannot read must not stop the rest
            self._stats.drop("invalid", 1, f"{type(exc).__name__}: {exc}")
            self._count_trims()
            return []
        if len(events) != 1 or problems:
            self._count_problems(len(events), problems)
        if self._before_send is not None:
            events = self._edited(events)
        encoded = []
        for event in events:
            data = self._encode(event)
            if data is not None:
                encoded.append(data)
        for trims in self._all_trims:  # what the mappers (and _encode) cut, if anything
            if trims.counts:
                self._count_trims()
                break
        return encoded

    def _count_problems(self, made: int, problems: list[str]) -> None:
        """The item's real event count (it was queued as one), and those lost to problems."""
        event_count = made + len(problems)
        if event_count != 1:
            self._stats.events_queued.add(event_count - 1)
        if problems:
            self._stats.drop("invalid", len(problems), problems[0])

    def _count_trims(self) -> None:
        """Properties the mappers (and ``_encode``) cut or left out, into the counters."""
        for trims in (
            self._trims,
            self._mapper.trims if self._mapper is not None else None,
            self._log_mapper.trims if self._log_mapper is not None else None,
        ):
            if trims is not None and trims.counts:
                self._stats.trimmed(trims.take())
        if self._mapper is not None and self._mapper.unmapped.counts:
            self._stats.unmapped(self._mapper.unmapped.take())

    def open_batch(self) -> OpenBatch:
        return self._connection.open_batch()

    def deliver(self, items: Iterable[Item], *, deadline: float, stop: threading.Event) -> bool:
        """Map, encode and send every item's events; ``True`` if all were accepted."""
        items = list(items)
        self._stats.events_queued.add(len(items))
        encoded = (data for item in items for data in self.encode_item(item))
        delivered = True
        batches = self._connection.batches(encoded, self.max_batch_events, PIPELINE_BATCH_BYTES)
        for batch in batches:
            delivered = self.send(batch, deadline=deadline, stop=stop) and delivered
        return delivered

    def send(self, batch: SealedBatch, *, deadline: float, stop: threading.Event) -> bool:
        """One request (retried); refused as too large (413), the batch is halved and the
        halves resent, so the events that fit still go. A send that ``stop`` cut short
        (shutdown ran out of time) counts its events as ``shutdown``."""
        try:
            result = self._connection.send_batch(
                batch, deadline=deadline, stop=stop, on_retry=self._stats.retried
            )
        except TransportError as exc:
            reason = "shutdown" if stop.is_set() else "network"
            self._stats.drop(reason, len(batch), str(exc))
            return False
        if stop.is_set() and result.status in RETRY_STATUSES:
            self._stats.drop("shutdown", len(batch), f"HTTP {result.status}, not retried")
            return False
        if 200 <= result.status < 300:
            self._stats.sent(len(batch))
            return True
        if result.status in _SPLIT_STATUSES and len(batch) > 1:
            first, second = batch.halves()
            sent_first = self.send(first, deadline=deadline, stop=stop)
            return self.send(second, deadline=deadline, stop=stop) and sent_first
        if result.status == 413:
            detail = "PostHog refused the request as too large, HTTP 413"
            self._stats.drop("too_large", len(batch), detail)
        else:
            self._stats.drop(f"http_{result.status}", len(batch), f"HTTP {result.status}")
        return False

    def _events_of(self, item: Item, problems: list[str]) -> list[dict[str, Any]]:
        if isinstance(item, dict):
            return [item]
        if isinstance(item, LogItem) and self._log_mapper is not None:
            return self._log_mapper.map_record(item, problems)
        if self._mapper is None or isinstance(item, LogItem):
            raise TypeError(f"no mapper for a {type(item).__name__}")
        if isinstance(item, tuple):
            held = item[2] if len(item) > 2 else ()
            return self._mapper.map_span(item[0], item[1], problems, held)
        return self._mapper.map_span(item, None, problems)

    def _edited(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each event through ``before_send``: kept, edited, or dropped and counted."""
        assert self._before_send is not None
        kept = []
        for event in events:
            try:
                edited = self._before_send(event)
            except Exception as exc:  # noqa: BLE001 - user code
                self._stats.drop("invalid", 1, f"before_send raised {type(exc).__name__}: {exc}")
                continue
            if edited is None:
                self._stats.drop("before_send", 1)
            elif _is_event(edited):
                kept.append(edited)
            else:
                self._stats.drop("invalid", 1, "before_send returned something other than an event")
        return kept

    def _encode(self, event: dict[str, Any]) -> bytes | None:
        try:
            data = dumps(event)
        except Exception:  # noqa: BLE001 - NaN, bytes, deep nesting: try the lenient form
            try:
                data = dumps(lenient(event))
            except Exception as exc:  # noqa: BLE001 - this event only
                name = event.get("event") if isinstance(event, dict) else None
                self._stats.drop("invalid", 1, f"{name!r} cannot be encoded: {type(exc).__name__}")
                return None
        if len(data) > MAX_EVENT_BYTES:  # shorten its largest properties, if they are why
            with contextlib.suppress(Exception):  # if shortening fails, too_large below
                fitted = fit_event(event, len(data), MAX_EVENT_BYTES, self._trims)
                if fitted is not None:
                    data = dumps(lenient(fitted))
        if len(data) > MAX_EVENT_BYTES:
            self._stats.drop(
                "too_large",
                1,
                f"{event.get('event')!r} is {len(data):,} bytes of JSON, over the 900 KiB "
                "PostHog accepts for one event",
            )
            return None
        return data


def _is_event(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("event"), str)
        and isinstance(value.get("distinct_id"), str)
        and isinstance(value.get("properties", {}), dict)
    )
