"""``PostHogSpanProcessor``: the recommended way in. Tagged spans become PostHog events.

``on_start`` copies the user's identity onto a new span from its parent or from
baggage (only when there is one). ``on_end`` returns at once for a span that has
no tags; a tagged span is handed to a background worker, which does the mapping,
encoding and sending away from the application's thread. No hook ever raises.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import context as _context
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace.propagation import _SPAN_KEY

from posthog_otel._delivery import BeforeSend, Delivery, own_or_given_client
from posthog_otel._mapping import (
    DEFAULT_DENYLIST,
    DISTINCT_ID,
    TAG,
    attributes_of,
    has_tagged_events,
)
from posthog_otel._spanflags import SpanFlags
from posthog_otel._stats import PipelineStats, Stats
from posthog_otel._worker import MAX_BUFFER_BYTES, BatchWorker
from posthog_otel.client import PostHogClient

__all__ = ["PostHogSpanProcessor"]

logger = logging.getLogger(__name__)

# The current context in one call instead of two: on_start runs for every span.
_runtime = getattr(_context, "_RUNTIME_CONTEXT", None)
_current_context: Callable[[], Context] = (
    _runtime.get_current if _runtime is not None else _context.get_current
)

_active: weakref.ref[PostHogSpanProcessor] | None = None
_active_lock = threading.Lock()


def active_processor() -> PostHogSpanProcessor | None:
    """The most recently started processor that is not shut down, if any."""
    processor = _active() if _active is not None else None
    return processor if processor is not None and not processor._shut_down else None


class PostHogSpanProcessor(SpanProcessor):
    """Turns spans and span events tagged ``posthog.event`` into PostHog events.

    Args:
        client: the ``PostHogClient`` to send through (not closed by us). Without
            one, a client is built from ``api_key``, ``host``, ``client_options``
            and the ``POSTHOG_*`` environment variables, and closed at shutdown.
        capture_exceptions: also send every span's ``exception`` events (what
            ``record_exception`` writes) as PostHog ``$exception`` events.
        include_resource_attributes: add every resource attribute to every
            event (by default only ``service.name``).
        attribute_denylist: words that mark a key as a credential when they end
            it (any case or separator); those attributes are never sent. A
            compiled regex replaces the matching; ``None`` or ``()`` disables it.
        before_send: called in the worker with each event (a dict in PostHog's
            shape); return it, edited or not, or ``None`` to drop it.
        max_queue_size: spans and captured events waiting to be encoded; beyond
            this they are dropped (and counted), never blocking the caller.
        max_buffer_bytes: encoded events waiting to be sent (16 MiB, tens of
            thousands of events); when full, encoding pauses and the queue fills.
        max_batch_size: events per request (requests also stay under 5 MiB).
        flush_interval: seconds between sends when batches do not fill.
        export_timeout: seconds to deliver one batch, retries included.
    """

    def __init__(
        self,
        client: PostHogClient | None = None,
        *,
        api_key: str | None = None,
        host: str | None = None,
        capture_exceptions: bool = False,
        include_resource_attributes: bool = False,
        attribute_denylist: Iterable[str] | re.Pattern[str] | None = DEFAULT_DENYLIST,
        before_send: BeforeSend | None = None,
        max_queue_size: int = 10_000,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
        max_batch_size: int = 1000,
        flush_interval: float = 1.0,
        export_timeout: float = 30.0,
        **client_options: Any,
    ) -> None:
        self._client, self._owns_client = own_or_given_client(client, api_key, host, client_options)
        self._enabled = self._client.enabled_capture
        self._capture_exceptions = capture_exceptions
        self._stats = Stats()
        self._shut_down = False
        delivery = Delivery.for_spans(
            self._client,
            self._stats,
            capture_exceptions=capture_exceptions,
            include_resource_attributes=include_resource_attributes,
            attribute_denylist=attribute_denylist,
            before_send=before_send,
            max_batch_size=max_batch_size,
        )
        self._worker = BatchWorker(
            delivery,
            self._stats,
            max_queue_size=max_queue_size,
            max_buffer_bytes=max_buffer_bytes,
            flush_interval=flush_interval,
            export_timeout=export_timeout,
            name="posthog-otel-processor",
        )
        self._span_flags = SpanFlags()
        self._flags_live = self._span_flags.live  # read on every span start and end
        self._seen = self._stats.spans_seen.add_one
        self._put = self._worker.put
        if not self._enabled:  # capture is off: hooks that do nothing at all
            self.on_start = _ignore_start  # type: ignore[method-assign]
            self.on_end = _ignore_end  # type: ignore[method-assign]
        global _active
        with _active_lock:
            _active = weakref.ref(self)

    def __repr__(self) -> str:
        return f"PostHogSpanProcessor(client={self._client!r})"

    # -- SpanProcessor hooks (application threads) ------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            ctx = parent_context if parent_context is not None else _current_context()
            parent = ctx.get(_SPAN_KEY)
            identity = None
            if parent is not None:
                if self._flags_live:  # a flag was evaluated on some live span
                    self._span_flags.started(
                        span.get_span_context().span_id,
                        parent.get_span_context().span_id,  # type: ignore[attr-defined]
                    )
                try:
                    identity = parent._attributes._dict.get(DISTINCT_ID)  # type: ignore[attr-defined]
                except AttributeError:
                    identity = _public_identity(parent)
            if identity is None:
                carried = ctx.get(_BAGGAGE_KEY)
                if not carried:
                    return
                identity = carried.get(DISTINCT_ID)  # type: ignore[attr-defined]
            if isinstance(identity, str) and identity and DISTINCT_ID not in attributes_of(span):
                span.set_attribute(DISTINCT_ID, identity)
        except Exception:  # a hook must never raise into the application
            logger.debug("posthog-otel on_start failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._seen()
            try:
                attrs = span._attributes._dict  # type: ignore[union-attr]
                events = span._events
            except AttributeError:
                attrs = span.attributes or {}
                events = span.events
            inherited = self._span_flags.ended(span.context.span_id) if self._flags_live else None
            if TAG in attrs or (events and has_tagged_events(events, self._capture_exceptions)):
                self._put((span, dict(inherited)) if inherited else span)
        except Exception:  # a hook must never raise into the application
            logger.debug("posthog-otel on_end failed", exc_info=True)

    # -- lifecycle -----------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Deliver everything queued so far; ``False`` if ``timeout_millis`` ran out first."""
        return self._worker.flush(timeout_millis / 1000)

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Deliver what is queued (within the timeout), then stop. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        self._worker.shutdown(timeout_millis / 1000)
        if self._owns_client:
            self._client.close()

    def stats(self) -> PipelineStats:
        """What this processor has seen, sent and dropped so far."""
        return self._stats.snapshot(self._worker.queue_size)

    def _flag_evaluated(self, span: Any, key: str, value: Any) -> None:
        """For the flag provider: children of ``span`` started from now on inherit the flag."""
        self._span_flags.evaluated(span.get_span_context().span_id, key, value)

    def _enqueue_event(self, event: dict[str, Any]) -> None:
        """For ``capture()`` with no recording span: an event built on the caller's thread."""
        if self._enabled:
            self._put(event)


def _ignore_start(span: Span, parent_context: Context | None = None) -> None:
    pass


def _ignore_end(span: ReadableSpan) -> None:
    pass


def _public_identity(parent: Any) -> Any:
    """The distinct id on a parent span, through the public API (any SDK span)."""
    attributes = getattr(parent, "attributes", None)
    return attributes.get(DISTINCT_ID) if attributes else None
