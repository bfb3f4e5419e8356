"""``PostHogLogProcessor`` and ``PostHogLogExporter``: tagged log records become events.

The processor is the recommended way in: it runs when a record is emitted, so it
reads the context the record was emitted in (the baggage ``identify()`` or the
PostHog headers set, the current span and the flags evaluated in it) and queues
only tagged records (and exceptions, if asked), handing them to the same worker as
spans. ``on_emit`` returns at once for a record with no tag. No hook ever raises.

The exporter is the SDK's ``LogRecordExporter`` for ``OTEL_LOGS_EXPORTER=posthog``
(the ``posthog`` entry point in ``opentelemetry_logs_exporter``, built with no
arguments). It sees records later, through the SDK's ``BatchLogRecordProcessor``,
which drops each record's context before queueing it (1.39 and later), and holds
them in a queue our SIGTERM drain never reaches. So, as ``PostHogSpanExporter`` does,
when it is built while an SDK ``LoggerProvider`` is the global one (as
``opentelemetry-instrument`` does), it attaches a ``PostHogLogProcessor`` with its
client and options to that provider, and ``export()`` skips the records that
processor took: identity, baggage and the request's span are read as each record is
logged. Records from any other provider are exported here, with only their own
``posthog.distinct_id`` or ``enduser.id``/``user.id`` for identity.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan

from posthog_otel import _otel
from posthog_otel._client.client import PostHogClient, client_from, connection_of
from posthog_otel._config import parse_level
from posthog_otel._mapping.convention import (
    ANONYMOUS_ID,
    DEFAULT_DENYLIST,
    DISTINCT_ID,
    FLAG_EVALUATION,
    SESSION_ID,
    TAG,
    WINDOW_ID,
    note_flag_evaluation,
)
from posthog_otel._mapping.logs import EXCEPTION_KEYS, LogItem, is_tagged_record
from posthog_otel._pipeline.delivery import BeforeSend
from posthog_otel._pipeline.otlp import log_sender, min_severity
from posthog_otel._pipeline.pipeline import (
    Pipeline,
    PipelineOptions,
    build_delivery,
    build_pipeline,
)
from posthog_otel._pipeline.spans import PostHogSpanProcessor, pipeline_of
from posthog_otel._pipeline.stats import PipelineStats, Stats
from posthog_otel._pipeline.worker import MAX_BUFFER_BYTES
from posthog_otel.errors import ConfigurationError

__all__ = ["PostHogLogExporter", "PostHogLogProcessor"]

logger = logging.getLogger(__name__)
_EXCEPTION_TYPE, _EXCEPTION_MESSAGE = EXCEPTION_KEYS


class PostHogLogProcessor(_otel.LogRecordProcessor):
    """Turns log records tagged ``posthog.event`` into PostHog events, through the same
    queue, batching, retries and counters as spans.

    Args:
        client: the ``PostHogClient`` to send through (not closed by us). Without
            one (and without ``processor``), a client is built from ``api_key``,
            ``host``, ``client_options`` and the ``POSTHOG_*`` environment
            variables, and closed at shutdown.
        processor: a ``PostHogSpanProcessor`` to share: its client, queue, worker
            threads and mapping options, so a service has one queue and one
            connection pool. Only ``capture_exceptions`` may be given with it.
        capture_exceptions: also send records carrying an exception (what
            ``logger.exception()`` writes) as handled ``$exception`` events;
            ``None`` reads ``POSTHOG_CAPTURE_EXCEPTIONS`` (default off).
        include_resource_attributes, attribute_denylist, before_send,
        max_queue_size, max_buffer_bytes, max_batch_size, flush_interval,
        export_timeout: as for ``PostHogSpanProcessor``.
        send_logs: also send every record from ``logs_min_level`` up to PostHog's
            ``/i/v1/logs`` as OTLP, with ``posthogDistinctId`` and ``sessionId`` from
            the context it was emitted in (see docs/signals.md), through a queue of
            its own counted in ``stats().logs``; ``None`` reads ``POSTHOG_SEND_LOGS``
            (default off). Needs the ``otlp`` extra. May be given with ``processor``.
        logs_min_level: the least ``logging`` level sent with ``send_logs`` (a number
            or a name such as ``"WARNING"``); ``None`` reads ``POSTHOG_LOGS_MIN_LEVEL``
            (default ``INFO``). Tagged records become events whatever their level.
    """

    def __init__(
        self,
        client: PostHogClient | None = None,
        *,
        processor: PostHogSpanProcessor | None = None,
        api_key: str | None = None,
        host: str | None = None,
        capture_exceptions: bool | None = None,
        include_resource_attributes: bool = False,
        attribute_denylist: Iterable[str] | re.Pattern[str] | None = DEFAULT_DENYLIST,
        before_send: BeforeSend | None = None,
        max_queue_size: int | None = None,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
        max_batch_size: int = 1000,
        flush_interval: float = 1.0,
        export_timeout: float = 30.0,
        send_logs: bool | None = None,
        logs_min_level: int | str | None = None,
        **client_options: Any,
    ) -> None:
        _otel.require_logs()
        self._shut_down = False
        self._taken: _Taken | None = None  # set by an exporter that attached us
        self._client: PostHogClient | None = None
        self._owns_client = False
        if processor is not None:
            if not isinstance(processor, PostHogSpanProcessor):
                raise TypeError(
                    f"processor must be a PostHogSpanProcessor, got {type(processor).__name__}"
                )
            client_given = [
                n
                for n, v in (("client", client), ("api_key", api_key), ("host", host))
                if v is not None
            ]
            given = (
                client_given
                + PipelineOptions.off_default(
                    include_resource_attributes=include_resource_attributes,
                    attribute_denylist=attribute_denylist,
                    before_send=before_send,
                    max_queue_size=max_queue_size,
                    max_buffer_bytes=max_buffer_bytes,
                    max_batch_size=max_batch_size,
                    flush_interval=flush_interval,
                    export_timeout=export_timeout,
                )
                + sorted(client_options)
            )
            if given:
                raise TypeError(
                    "PostHogLogProcessor(processor=...) uses that processor's client, queue "
                    f"and mapping options; do not also pass {', '.join(given)}"
                )
            self._pipeline = pipeline_of(processor)
            self._owns_pipeline = False
            # Its own options beside a shared pipeline: argument, variable, default.
            options = PipelineOptions.from_env(
                capture_exceptions=capture_exceptions,
                send_logs=send_logs,
                logs_min_level=_level(logs_min_level),
            )
        else:
            options = PipelineOptions.from_env(
                capture_exceptions=capture_exceptions,
                include_resource_attributes=include_resource_attributes,
                attribute_denylist=attribute_denylist,
                before_send=before_send,
                max_queue_size=max_queue_size,
                max_buffer_bytes=max_buffer_bytes,
                max_batch_size=max_batch_size,
                flush_interval=flush_interval,
                export_timeout=export_timeout,
                send_logs=send_logs,
                logs_min_level=_level(logs_min_level),
            )
            self._client, self._owns_client = client_from(client, api_key, host, client_options)
            self._pipeline = build_pipeline(
                connection_of(self._client), options, name="posthog-otel-logs"
            )
            self._owns_pipeline = True
        self._capture_exceptions = options.capture_exceptions
        self._count_log = self._pipeline.count_log
        self._seen = self._pipeline.log_cells  # this thread's count: .cell[0]
        self._put = self._pipeline.enqueue  # the hook is installed only while capture is on
        # send_logs: every record from logs_min_level to /i/v1/logs, through its own queue.
        self._send_log: Callable[[Any], None] | None = None
        if options.send_logs:
            put = self._pipeline.open_stream("logs")
            self._send_log = log_sender(put, min_severity(options.logs_min_level))
        if not self._pipeline.enabled:  # capture is off: a hook that does nothing at all
            self.on_emit = self.emit = _ignore  # type: ignore[method-assign]

    def __repr__(self) -> str:
        shared = "shared" if not self._owns_pipeline else f"client={self._client!r}"
        return f"PostHogLogProcessor({shared})"

    # -- LogRecordProcessor hooks (application threads) -------------------------------

    def on_emit(self, log_record: Any) -> None:
        try:
            try:
                self._seen.cell[0] += 1
            except AttributeError:  # this thread's first record
                self._count_log()
            if self._send_log is not None:
                self._send_log(log_record)
            record = log_record.log_record
            attrs = _otel.ACCESS.log_attributes(record)
            if TAG in attrs or (
                self._capture_exceptions
                and (_EXCEPTION_TYPE in attrs or _EXCEPTION_MESSAGE in attrs)
            ):
                ctx = getattr(record, "context", None) or _otel.ACCESS.current_context()
                try:
                    item = _item(log_record, ctx, self._capture_exceptions, self._pipeline)
                except Exception:  # an odd span or baggage: send the record without them
                    logger.debug("posthog-otel could not read a record's context", exc_info=True)
                    item = LogItem(log_record, self._capture_exceptions)
                self._put(item)
                if self._taken is not None:
                    self._taken.add(record)
        except Exception:  # a hook must never raise into the application
            logger.debug("posthog-otel on_emit failed", exc_info=True)

    emit = on_emit  # the hook's name in older SDK releases

    # -- lifecycle -----------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Deliver everything queued so far; ``False`` if ``timeout_millis`` ran out first."""
        return self._pipeline.flush(timeout_millis / 1000)

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Deliver what is queued (within the timeout), then stop; a shared queue is only
        flushed, as its span processor stops it. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        self.on_emit = self.emit = self._after_shutdown  # type: ignore[method-assign]
        if not self._owns_pipeline:
            self._pipeline.flush(timeout_millis / 1000)
            return
        self._pipeline.shutdown(timeout_millis / 1000)
        if self._owns_client and self._client is not None:
            self._client.close()

    def _after_shutdown(self, log_record: Any) -> None:
        """Tagged records after shutdown are refused, and counted (the queue may be shared
        and still running)."""
        try:
            attrs = _otel.ACCESS.log_attributes(log_record.log_record)
            if is_tagged_record(attrs, self._capture_exceptions):
                self._pipeline.drop("closed")
        except Exception:  # a hook must never raise into the application
            logger.debug("posthog-otel on_emit failed", exc_info=True)

    def stats(self) -> PipelineStats:
        """What this processor's queue has seen, sent and dropped (shared: the span
        processor's figures, logs included)."""
        return self._pipeline.snapshot()


class PostHogLogExporter(_otel.LogRecordExporter):
    """Exports tagged log records as PostHog events; untagged records are skipped.

    Takes the same options as ``PostHogSpanExporter``, and:

    Args:
        attach_processor: when an SDK ``LoggerProvider`` is the global one, attach a
            ``PostHogLogProcessor`` to it (see the module docstring); ``False`` keeps
            this a plain exporter, which behind ``BatchLogRecordProcessor`` sees a
            record without the context it was emitted in: ``identify()`` and the
            span's identity and flags are not seen.
        send_logs, logs_min_level: as for ``PostHogLogProcessor``; the attached processor
            sends the records, so ``OTEL_LOGS_EXPORTER=posthog`` with
            ``POSTHOG_SEND_LOGS=true`` sends every record from the level up. A plain
            exporter does not send them (it sees records without their context).
    """

    def __init__(
        self,
        client: PostHogClient | None = None,
        *,
        api_key: str | None = None,
        host: str | None = None,
        capture_exceptions: bool | None = None,
        include_resource_attributes: bool = False,
        attribute_denylist: Iterable[str] | re.Pattern[str] | None = DEFAULT_DENYLIST,
        before_send: BeforeSend | None = None,
        max_batch_size: int = 1000,
        export_timeout: float = 30.0,
        attach_processor: bool = True,
        send_logs: bool | None = None,
        logs_min_level: int | str | None = None,
        **client_options: Any,
    ) -> None:
        _otel.require_logs()
        settings = PipelineOptions.from_env(
            send_logs=send_logs,
            logs_min_level=_level(logs_min_level),
            capture_exceptions=capture_exceptions,
            include_resource_attributes=include_resource_attributes,
            attribute_denylist=attribute_denylist,
            before_send=before_send,
            max_batch_size=max_batch_size,
            export_timeout=export_timeout,
        )
        self._client, self._owns_client = client_from(client, api_key, host, client_options)
        options: dict[str, Any] = {
            "capture_exceptions": settings.capture_exceptions,
            "include_resource_attributes": include_resource_attributes,
            "attribute_denylist": attribute_denylist,
            "before_send": before_send,
            "max_batch_size": max_batch_size,
            "send_logs": settings.send_logs,
            "logs_min_level": settings.logs_min_level,
        }
        self._attached: PostHogLogProcessor | None = None
        self._taken = _Taken()
        provider = _otel.global_logger_provider() if attach_processor else None
        if provider is not None:
            self._attached = PostHogLogProcessor(
                self._client, export_timeout=export_timeout, **options
            )
            self._attached._taken = self._taken
            provider.add_log_record_processor(self._attached)
        self._stats = self._attached._pipeline.stats if self._attached else Stats()
        self._delivery = build_delivery(connection_of(self._client), self._stats, settings)
        self._capture_exceptions = settings.capture_exceptions
        self._export_timeout = export_timeout
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f"PostHogLogExporter(client={self._client!r})"

    def export(self, batch: Sequence[Any]) -> _otel.LogRecordExportResult:
        """Map and send; never raises. ``FAILURE`` if any event was not delivered."""
        result = _otel.LogRecordExportResult
        try:
            if self._attached is not None:
                batch = [r for r in batch if r.log_record not in self._taken]
            items = self._tagged(batch)
        except Exception:  # noqa: BLE001 - export() must return a result, not raise
            self._stats.drop("invalid", len(batch), "unexpected error while reading log records")
            return result.FAILURE
        if self._stop.is_set():
            self._stats.drop("closed", len(items))
            return result.FAILURE
        if not items or not self._client.enabled_capture:
            return result.SUCCESS
        try:
            with _otel.suppressed():
                deadline = time.monotonic() + self._export_timeout
                delivered = self._delivery.deliver(items, deadline=deadline, stop=self._stop)
        except Exception:  # noqa: BLE001 - export() must return a result, not raise
            self._stats.drop("invalid", len(items), "unexpected error while exporting")
            return result.FAILURE
        return result.SUCCESS if delivered else result.FAILURE

    def _tagged(self, batch: Sequence[Any]) -> list[LogItem]:
        items = []
        for log_record in batch:
            if self._attached is None:  # else the processor counted it
                self._stats.logs_seen.add()
            record = log_record.log_record
            if is_tagged_record(_otel.ACCESS.log_attributes(record), self._capture_exceptions):
                ctx = getattr(record, "context", None)
                items.append(_item(log_record, ctx, self._capture_exceptions, None))
        return items

    def shutdown(self) -> None:
        """Stop: an export in progress gives up its retries; the attached processor
        drains (within its ``export_timeout``). Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._attached is not None:
            self._attached.shutdown(int(self._export_timeout * 1000))
        if self._owns_client:
            self._client.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Deliver what the attached processor holds; each ``export()`` sends before it
        returns, so there is nothing else to flush."""
        return self._attached.force_flush(timeout_millis) if self._attached else True

    def stats(self) -> PipelineStats:
        if self._attached is not None:
            return self._attached.stats()
        return self._stats.snapshot()


class _Taken:
    """The log records an attached processor took, so the exporter does not send them
    again. Known by their attributes object: the one part of a record the SDK's
    ``BatchLogRecordProcessor`` keeps (it queues a shallow copy). Weakly held: an entry
    leaves with its record. A record whose attributes cannot be weakly referenced is not
    noted, so it would be sent twice rather than lost."""

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref[Any]] = {}

    def add(self, record: Any) -> None:
        attributes, key = record.attributes, id(record.attributes)
        refs = self._refs

        def forget(dead: weakref.ref[Any]) -> None:
            if refs.get(key) is dead:
                refs.pop(key, None)

        with contextlib.suppress(TypeError):
            refs[key] = weakref.ref(attributes, forget)

    def __contains__(self, record: Any) -> bool:
        attributes = getattr(record, "attributes", None)
        ref = self._refs.get(id(attributes))
        return ref is not None and ref() is attributes


def _ignore(log_record: Any) -> None:
    pass


def _level(level: int | str | None) -> int | None:
    """``logs_min_level`` as given: a name (``"WARNING"``) read as ``logging`` reads it."""
    if isinstance(level, str):
        try:
            return parse_level(level)
        except ValueError as exc:
            raise ConfigurationError("logs_min_level", str(exc)) from None
    return level


_BROWSER = (WINDOW_ID, ANONYMOUS_ID)


def _item(
    log_record: Any, ctx: Context | None, exceptions: bool, pipeline: Pipeline | None
) -> LogItem:
    """The record with what its context knows: baggage's ``posthog.distinct_id`` and
    ``posthog.session_id``, the current span's attributes (copied now, as the span
    lives on) and its flags."""
    if not ctx:
        return LogItem(log_record, exceptions)
    access = _otel.ACCESS
    span, carried = access.fast_parent(ctx)
    distinct_id: str | None = None
    session_id: str | None = None
    if carried:
        given, session = carried.get(DISTINCT_ID), carried.get(SESSION_ID)
        distinct_id = given if isinstance(given, str) and given else None
        session_id = session if isinstance(session, str) and session else None
    if not isinstance(span, ReadableSpan):  # none, or not ours to read (a remote parent)
        # The browser's window and anonymous mark, from baggage as a span would have them.
        browser = (
            {k: v for k in _BROWSER if isinstance(v := carried.get(k), str)} if carried else {}
        )
        return LogItem(log_record, exceptions, distinct_id, browser or None, None, session_id)
    try:
        attrs, events = access.fast_fields(span)
    except AttributeError:
        attrs, events = _otel.PUBLIC.fast_fields(span)
    flags: dict[str, Any] = {}
    if pipeline is not None and pipeline.flags_live:
        span_context = span.get_span_context()
        known = pipeline.flags_of_live_span(span_context.span_id) if span_context else None
        if known is not None:
            flags.update(known)
    if events:  # a live span's: copied in one C call before it is read
        for event in tuple(events):
            if event.name == FLAG_EVALUATION:
                try:
                    note_flag_evaluation(access.attributes(event), flags)
                except Exception:  # one odd evaluation costs only itself
                    logger.debug("posthog-otel could not read a flag evaluation", exc_info=True)
    span_attrs = dict(attrs) if attrs else None
    return LogItem(log_record, exceptions, distinct_id, span_attrs, flags, session_id)
