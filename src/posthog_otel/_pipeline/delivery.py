"""From queued items to accepted batches: map, ``before_send``, encode, send, count.

Shared by the exporter (called per export) and the processor's worker thread.
Nothing here raises: every event ends up sent or counted as dropped, by reason.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from posthog_otel._client.batch import MAX_GROWN_BYTES, MAX_GROWN_EVENTS, OpenBatch, SealedBatch
from posthog_otel._client.connection import Connection
from posthog_otel._client.events import MAX_EVENT_BYTES
from posthog_otel._json import dumps, lenient
from posthog_otel._mapping.convention import denylist_pattern
from posthog_otel._mapping.spans import InvalidTagError, MappingOptions, SpanMapper
from posthog_otel._pipeline.stats import Stats
from posthog_otel.errors import TransportError

BeforeSend = Callable[[dict[str, Any]], "dict[str, Any] | None"]
# A queued item: an ended span (with flags inherited from its ancestors), or a built event.
Item = ReadableSpan | tuple[ReadableSpan, "dict[str, Any] | None"] | dict[str, Any]
# Too large: halve and resend, so the events that fit still go. Not 400: our events are
# validated before sending, and halving a batch PostHog refuses as a whole would send
# ~2n requests that all fail.
_SPLIT_STATUSES = (413,)


class Delivery:
    @classmethod
    def for_spans(
        cls,
        connection: Connection,
        stats: Stats,
        *,
        capture_exceptions: bool,
        include_resource_attributes: bool,
        attribute_denylist: Iterable[str] | re.Pattern[str] | None,
        before_send: BeforeSend | None,
        max_batch_size: int,
    ) -> Delivery:
        """The delivery behind a span processor or exporter, from their options."""
        options = MappingOptions(
            capture_exceptions=capture_exceptions,
            include_resource_attributes=include_resource_attributes,
            denylist=denylist_pattern(attribute_denylist),
        )
        return cls(connection, stats, SpanMapper(options), before_send, max_batch_size)

    def __init__(
        self,
        connection: Connection,
        stats: Stats,
        mapper: SpanMapper | None = None,
        before_send: BeforeSend | None = None,
        max_batch_events: int = 1000,
    ) -> None:
        self._connection = connection
        self._mapper = mapper
        self._stats = stats
        self._before_send = before_send
        if max_batch_events < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.max_batch_events = max_batch_events

    def encode_item(self, item: Item) -> list[bytes]:
        """The item's events, encoded; those that cannot be are counted as dropped."""
        encoded = []
        for event in self._events_from(item):
            data = self._encode(event)
            if data is not None:
                encoded.append(data)
        return encoded

    def fits(self, batch: OpenBatch, data: bytes) -> bool:
        """Whether ``data`` may join ``batch`` within one request's limits."""
        return not batch or (len(batch) < MAX_GROWN_EVENTS and batch.fits(data, MAX_GROWN_BYTES))

    def open_batch(self) -> OpenBatch:
        return self._connection.open_batch()

    def deliver(self, items: Iterable[Item], *, deadline: float, stop: threading.Event) -> bool:
        """Map, encode and send every item's events; ``True`` if all were accepted."""
        encoded = (data for item in items for data in self.encode_item(item))
        max_events = min(self.max_batch_events, MAX_GROWN_EVENTS)
        delivered = True
        for batch in self._connection.batches(encoded, max_events, MAX_GROWN_BYTES):
            delivered = self.send(batch, deadline=deadline, stop=stop) and delivered
        return delivered

    def send(self, batch: SealedBatch, *, deadline: float, stop: threading.Event) -> bool:
        """One request (retried); refused as too large (413), the batch is halved and the
        halves resent, so the events that fit still go."""
        try:
            result = self._connection.send_batch(
                batch, deadline=deadline, stop=stop, on_retry=self._stats.retried
            )
        except TransportError as exc:
            self._stats.drop("network", len(batch), str(exc))
            return False
        if 200 <= result.status < 300:
            self._stats.sent(len(batch))
            return True
        if result.status in _SPLIT_STATUSES and len(batch) > 1:
            first, second = batch.halves()
            sent_first = self.send(first, deadline=deadline, stop=stop)
            return self.send(second, deadline=deadline, stop=stop) and sent_first
        reason = "too_large" if result.status == 413 else f"http_{result.status}"
        self._stats.drop(reason, len(batch), f"HTTP {result.status}")
        return False

    def _events_from(self, item: Item) -> list[dict[str, Any]]:
        try:
            if isinstance(item, dict):
                events = [item]
            elif self._mapper is None:
                raise TypeError(f"no mapper for a {type(item).__name__}")
            elif isinstance(item, tuple):
                events = self._mapper.map_span(item[0], item[1])
            else:
                events = self._mapper.map_span(item)
        except InvalidTagError as exc:
            self._stats.drop("invalid", 1, str(exc))
            return []
        except Exception as exc:  # noqa: BLE001 - a span we cannot read must not stop the rest
            self._stats.drop("invalid", 1, f"{type(exc).__name__}: {exc}")
            return []
        if self._before_send is None:
            return events
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
        except (TypeError, ValueError):
            data = dumps(lenient(event))  # NaN, bytes and the like: keep the event
        if len(data) > MAX_EVENT_BYTES:
            self._stats.drop(
                "too_large", 1, f"{event.get('event')!r} is {len(data):,} bytes of JSON"
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
