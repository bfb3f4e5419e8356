"""Spans to ``/i/v1/traces`` and log records to ``/i/v1/logs``: an OTLP stream beside the
events, through a worker of its own.

``send_traces`` and ``send_logs`` give a pipeline one ``Stream`` per signal: a
``BatchWorker`` (the same queue, threads, outbox, deadlines, SIGTERM and fork handling
as the events') whose delivery is ``OtlpDelivery``. The span hook queues every sampled
span as it ends, the log hook every record at or above ``logs_min_level`` with the
identity and session its context knew; the encoder thread encodes each as OpenTelemetry
does (``_mapping.otlp``), adding ``posthogDistinctId`` and ``sessionId``; the sender
posts a batch of them as one OTLP/HTTP request (``Connection.send_otlp``).

A stream counts in a ``Stats`` of its own (``stats().traces``, ``stats().logs``), so its
spans and records are never mixed with the events' figures: every item it accepted is
counted once, as sent or dropped by reason, as events are.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from posthog_otel import _otel
from posthog_otel._client.batch import gzip_bytes
from posthog_otel._client.connection import Connection
from posthog_otel._client.retry import RETRY_STATUSES
from posthog_otel._limits import MAX_OTLP_ITEM_BYTES, OTLP_BATCH_BYTES
from posthog_otel._mapping.convention import DISTINCT_ID, SESSION_ID
from posthog_otel._mapping.otlp import LogRecordItem, encode_logs_request, encode_spans_request
from posthog_otel._pipeline.stats import Stats, StreamStats
from posthog_otel._pipeline.worker import BatchWorker
from posthog_otel.errors import TransportError

__all__ = ["OtlpBatch", "OtlpDelivery", "SealedOtlp", "Stream", "log_sender", "span_sender"]

BATCH_ITEMS = 512  # spans or records per request, as OpenTelemetry's batch processors
# Bytes an item is reckoned to hold until its batch is encoded (for ``max_buffer_bytes``):
# about a span of a dozen attributes, or a log line, as OTLP protobuf.
ITEM_BYTES = 400
SIGNALS: dict[str, tuple[str, Callable[..., bytes]]] = {
    "traces": ("span", encode_spans_request),
    "logs": ("log record", encode_logs_request),
}

Drop = Callable[[str, int, str], None]


class OtlpBatch:
    """Spans (or ``LogRecordItem``s) gathered for one request, encoded when sealed.

    Encoded a batch at a time, by OpenTelemetry's encoder (see ``_mapping.otlp`` for
    why not one at a time); until then ``nbytes`` is ``ITEM_BYTES`` per item. Sealing
    gives one request, or several when the encoded batch passes ``OTLP_BATCH_BYTES``
    (halved until each fits); an item over ``MAX_OTLP_ITEM_BYTES`` alone, or one the
    encoder refuses, is dropped then and counted through ``drop``.
    """

    __slots__ = ("_drop", "_encode", "_gzip", "items")

    def __init__(self, encode: Callable[[Any], bytes], drop: Drop, *, gzip: bool) -> None:
        self._encode = encode
        self._drop = drop
        self._gzip = gzip
        self.items: list[Any] = []

    def __len__(self) -> int:
        return len(self.items)

    @property
    def nbytes(self) -> int:
        return len(self.items) * ITEM_BYTES

    def add(self, item: Any) -> None:
        self.items.append(item)

    def append(self, item: Any, max_events: int, limit: int) -> bool:
        """Add ``item`` unless the batch holds ``max_events``; bytes are seen to when it
        is sealed (``limit`` is the events' batch size, not ours)."""
        if len(self.items) >= max_events:
            return False
        self.items.append(item)
        return True

    def seal(self) -> SealedOtlp:
        """The requests as they will be sent, each gzipped once when gzip is on."""
        parts = self._encoded(self.items)
        if self._gzip:
            parts = [(gzip_bytes(body), count) for body, count in parts]
        return SealedOtlp(parts, gzipped=self._gzip)

    def _encoded(self, items: list[Any]) -> list[tuple[bytes, int]]:
        try:
            data = self._encode(items)
        except Exception as exc:  # noqa: BLE001 - an item we cannot read costs only itself
            if len(items) == 1:
                self._drop("invalid", 1, f"{type(exc).__name__}: {exc}")
                return []
            data = None
        if data is not None:
            if len(data) <= OTLP_BATCH_BYTES:
                return [(data, len(items))]
            if len(items) == 1:
                if len(data) <= MAX_OTLP_ITEM_BYTES:
                    return [(data, 1)]
                self._drop("too_large", 1, f"{len(data):,} bytes as OTLP protobuf")
                return []
        middle = len(items) // 2
        return self._encoded(items[:middle]) + self._encoded(items[middle:])


class SealedOtlp:
    """A sealed batch: its requests' bodies (compressed or not), each with its item count."""

    __slots__ = ("gzipped", "parts")

    def __init__(self, parts: list[tuple[bytes, int]], *, gzipped: bool) -> None:
        self.parts = parts
        self.gzipped = gzipped

    def __len__(self) -> int:
        return sum(count for _, count in self.parts)

    @property
    def nbytes(self) -> int:
        return sum(len(body) for body, _ in self.parts)


class OtlpDelivery:
    """One signal's items to OTLP requests: batch, encode, send, count (the worker's
    ``Deliverer``). Nothing here raises: every item ends up sent or counted as dropped."""

    def __init__(
        self,
        connection: Connection,
        stats: Stats,
        signal: str,
        max_batch_events: int = BATCH_ITEMS,
        denylist: re.Pattern[str] | None = None,
    ) -> None:
        self._connection = connection
        self._stats = stats
        self._signal = signal
        self._encode = functools.partial(SIGNALS[signal][1], denylist=denylist)
        self.max_batch_events = max_batch_events

    def open_batch(self) -> OtlpBatch:
        return OtlpBatch(self._encode, self._stats.drop, gzip=self._connection.config.gzip)

    def encode_item(self, item: Any) -> list[Any]:
        """The item as it is: it is encoded with its batch (``OtlpBatch.seal``)."""
        return [item]

    def send(self, batch: SealedOtlp, *, deadline: float, stop: threading.Event) -> bool:
        """Each of its requests (retried); ``True`` if PostHog accepted all of them."""
        delivered = True
        for body, count in batch.parts:
            delivered = self._send(body, count, batch.gzipped, deadline, stop) and delivered
        return delivered

    def _send(
        self, body: bytes, count: int, gzipped: bool, deadline: float, stop: threading.Event
    ) -> bool:
        """One request; a send that ``stop`` cut short counts its items as ``shutdown``.
        Our requests stay under ``OTLP_BATCH_BYTES``: one PostHog still refuses as too
        large (413) is dropped as ``too_large``."""
        try:
            result = self._connection.send_otlp(
                self._signal,
                body,
                deadline=deadline,
                stop=stop,
                on_retry=self._stats.retried,
                gzipped=gzipped,
            )
        except TransportError as exc:
            self._stats.drop("shutdown" if stop.is_set() else "network", count, str(exc))
            return False
        status = result.status
        if stop.is_set() and status in RETRY_STATUSES:
            self._stats.drop("shutdown", count, f"HTTP {status}, not retried")
            return False
        if 200 <= status < 300:
            self._stats.sent(count)
            return True
        reason = "too_large" if status == 413 else f"http_{status}"
        self._stats.drop(reason, count, f"HTTP {status}")
        return False

    def deliver(self, items: Iterable[Any], *, deadline: float, stop: threading.Event) -> bool:
        """Encode and send every item now (an exporter's ``export()``); ``True`` if all
        were accepted."""
        items = list(items)
        self._stats.events_queued.add(len(items))
        delivered = True
        for start in range(0, len(items), self.max_batch_events):
            batch = self.open_batch()
            for item in items[start : start + self.max_batch_events]:
                batch.add(item)
            sealed = batch.seal()
            delivered = self.send(sealed, deadline=deadline, stop=stop) and delivered
        return delivered


class Stream:
    """One signal's queue to PostHog: a worker, its delivery and its own counters."""

    def __init__(
        self,
        connection: Connection,
        signal: str,
        *,
        max_queue_size: int | None,
        max_buffer_bytes: int,
        flush_interval: float,
        export_timeout: float,
        denylist: re.Pattern[str] | None = None,
    ) -> None:
        self.signal = signal
        self.stats = Stats(item=SIGNALS[signal][0], totals=False)
        self.worker = BatchWorker(
            OtlpDelivery(connection, self.stats, signal, denylist=denylist),
            self.stats,
            max_queue_size=max_queue_size,
            max_buffer_bytes=max_buffer_bytes,
            flush_interval=flush_interval,
            export_timeout=export_timeout,
            name=f"posthog-otel-{signal}",
            # Its encoder only gathers items (they are encoded as a batch is sealed): waking
            # it for every 64 costs the application GIL hand-offs for nothing.
            wake_at=BATCH_ITEMS,
        )
        self.put = self.worker.put
        """``put(item)``: queue a span (or ``LogRecordItem``); never blocks."""

    def snapshot(self) -> StreamStats:
        worker = self.worker
        return self.stats.stream_snapshot(worker.queue_size, worker.buffered_bytes, worker.accepted)


def span_sender(put: Callable[[Any], bool]) -> Callable[[Any], None]:
    """The span hook's branch: queue an ended span if it was sampled."""

    def send_span(span: Any) -> None:
        if span.context.trace_flags.sampled:
            put(span)

    return send_span


def log_sender(put: Callable[[Any], bool], min_severity: int) -> Callable[[Any], None]:
    """The log hook's branch: queue a record at or above ``min_severity`` (OpenTelemetry's
    severity number) with the identity and session of the context it was emitted in:
    baggage's ``posthog.*`` first, then the current span's attributes."""

    def send_log(log_record: Any) -> None:
        record = log_record.log_record
        severity = record.severity_number
        if (severity.value if severity is not None else 0) < min_severity:
            return
        access = _otel.ACCESS
        ctx = getattr(record, "context", None) or access.current_context()
        identity = session = None
        if ctx:
            carried = access.baggage_of(ctx)
            identity, session = carried.get(DISTINCT_ID), carried.get(SESSION_ID)
            if identity is None or session is None:
                span = access.span_of(ctx)
                attrs = getattr(span, "attributes", None)
                if attrs:
                    identity = identity if identity is not None else attrs.get(DISTINCT_ID)
                    session = session if session is not None else attrs.get(SESSION_ID)
        put(LogRecordItem(log_record, _text(identity), _text(session)))

    return send_log


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def min_severity(level: int) -> int:
    """A ``logging`` level as the least OpenTelemetry severity number it admits: DEBUG (10)
    is 5, INFO (20) 9, WARNING (30) 13, ERROR (40) 17, CRITICAL (50) 21 (four numbers per
    level, levels between rounded up); 0 admits every record."""
    if level <= 0:
        return 0
    return 5 + -(-(level - 10) * 4 // 10) if level >= 10 else 1
