"""The span side: ``PostHogSpanProcessor`` (the recommended way in) and
``PostHogSpanExporter`` (the same mapping behind the SDK's ``SpanExporter``), side by
side as ``logs`` holds the log pair, and each request's first span.

Processor: tagged spans become PostHog events, and GenAI spans LLM analytics events.
``on_start`` copies the user's identity and session onto a new span from its parent
or from baggage (only when there is one), and under a GenAI span the nearest one's id,
so LLM analytics can nest. ``on_end`` returns at once for a span that has no tags and
is not a GenAI span; the others are handed to a background worker, which does the
mapping, encoding and sending away from the application's thread. No hook ever raises.

Exporter: for ``OTEL_TRACES_EXPORTER=posthog`` under ``opentelemetry-instrument`` (the
``posthog`` entry point in ``opentelemetry_traces_exporter``; the SDK builds it with no
arguments, so it configures itself from ``POSTHOG_*``), and for any
``BatchSpanProcessor``. An exporter only sees spans after they end, in the SDK's
batches: no identity from parents or baggage, and a 2,048-span queue in front that
drops bursts. So when it is built while an SDK ``TracerProvider`` is the global one (as
``opentelemetry-instrument`` does), it attaches a ``PostHogSpanProcessor`` with its
client and options to that provider, and ``export()`` skips the spans that processor
already took: the user gets the processor's behaviour. Spans from any other provider
are exported here, as before.

Request roots: the span that began the current request in this process is where
``identify()`` names the user. A request's instrumented server span starts before any
handler runs, so the user a handler identifies must be written onto that span
afterwards. When a request or message begins here (a span with no parent in this
process that is a server or consumer span, or continues a trace from elsewhere), the
processor notes it in a context variable. Each request runs in a context of its own
(its thread's, or its asyncio task's), so this costs one ``ContextVar.set`` per
request, nothing at span end, and two concurrent requests of one trace never see each
other's root. A note left over from an earlier request in the same thread is
recognised as stale and ignored.

Held captures: a span keeps at most ``SpanLimits.max_events`` events (128 by default)
and drops its
oldest beyond that, so ``capture()`` stops adding to a full span and ``hold``s the
event here instead, keyed by the span's ids (the span processor sees a copy of the
span, not the span). When the span ends, the processor ``take``s them and queues
them with the span, so they are mapped exactly as its own tagged span events:
the same identity, groups, session and flags. A held list lives no longer than its
span object (a finalizer forgets it), and holds at most ``MAX_HELD_CAPTURES``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from posthog_otel import _otel
from posthog_otel._client.client import PostHogClient, client_from, connection_of
from posthog_otel._limits import (
    AUTOCAPTURE_BUCKET_SIZE,
    AUTOCAPTURE_REFILL,
    AUTOCAPTURE_REFILL_SECONDS,
    MAX_HELD_CAPTURES,
)
from posthog_otel._mapping.convention import (
    ANONYMOUS_ID,
    DEFAULT_DENYLIST,
    DISTINCT_ID,
    SESSION_ID,
    TAG,
    WINDOW_ID,
)
from posthog_otel._mapping.genai import (
    AI_PARENT,
    GENAI_KEYS,
    LLM_REQUEST_TYPE,
    OPENINFERENCE_KIND,
    OPERATION,
    is_genai,
    is_genai_scope,
    parent_for_children,
)
from posthog_otel._mapping.spans import has_tagged_events, is_tagged
from posthog_otel._pipeline.autocapture import Autocapture, TokenBuckets
from posthog_otel._pipeline.delivery import BeforeSend
from posthog_otel._pipeline.otlp import OtlpDelivery, span_sender
from posthog_otel._pipeline.pipeline import (
    Pipeline,
    PipelineOptions,
    activate,
    build_delivery,
    build_pipeline,
)
from posthog_otel._pipeline.stats import PipelineStats, Stats
from posthog_otel._pipeline.worker import MAX_BUFFER_BYTES

__all__ = ["PostHogSpanExporter", "PostHogSpanProcessor", "pipeline_of"]

logger = logging.getLogger(__name__)

# Whether objects of a type found as the context's span are spans of this process (SDK
# spans, started here) rather than remote or non-recording ones.
_LOCAL_SPAN_TYPES: dict[type, bool] = {}
_MAX_SCOPES = 1024  # scope names remembered as GenAI or not (then forgotten, and relearnt)
_SERVER, _CONSUMER = SpanKind.SERVER, SpanKind.CONSUMER  # an Enum class lookup costs a call


# Whether an instrumentation scope's name is a GenAI one (``is_genai_scope``): a child
# span's hook asks it of its parent's scope, one dictionary lookup. Scopes are few; a
# process that names thousands starts over.
_GENAI_SCOPES: dict[Any, bool] = {}


def _learn_scope(name: Any) -> bool:
    if len(_GENAI_SCOPES) >= _MAX_SCOPES:
        _GENAI_SCOPES.clear()
    genai = _GENAI_SCOPES[name] = is_genai_scope(name)
    return genai


def _genai_scope(span: Any) -> bool:
    """Whether a live span's instrumentation scope makes only GenAI spans (``is_genai_scope``)."""
    scope = getattr(span, "instrumentation_scope", None)
    return scope is not None and is_genai_scope(getattr(scope, "name", None))


class PostHogSpanProcessor(SpanProcessor):
    """Turns spans and span events tagged ``posthog.event`` into PostHog events.

    Args:
        client: the ``PostHogClient`` to send through (not closed by us). Without
            one, a client is built from ``api_key``, ``host``, ``client_options``
            and the ``POSTHOG_*`` environment variables, and closed at shutdown.
        capture_exceptions: also send every span's ``exception`` events (what
            ``record_exception`` writes) as PostHog ``$exception`` events;
            ``None`` reads ``POSTHOG_CAPTURE_EXCEPTIONS`` (default off).
        include_resource_attributes: add every resource attribute to every
            event (by default only ``service.name``).
        attribute_denylist: words that mark a key as a credential when they end
            it (any case or separator); those attributes are never sent, and
            query parameters so named are redacted in URLs. A compiled regex
            replaces the matching; ``None`` or ``()`` disables both.
        before_send: called in the worker with each event (a dict in PostHog's
            shape); return it, edited or not, or ``None`` to drop it.
        max_queue_size: spans and captured events waiting to be encoded; beyond
            this they are dropped (and counted), never blocking the caller. ``None``
            (the default): as many as fit in 96 MiB, estimated from their counts of
            attributes (a burst of 50,000 captures), at most 100,000.
        max_buffer_bytes: encoded events waiting to be sent (16 MiB, tens of
            thousands of events); when full, encoding pauses and the queue fills.
        max_batch_size: events per request (requests also stay under 5 MiB).
        flush_interval: seconds between sends when batches do not fill.
        export_timeout: seconds to deliver one batch, retries included.
        flush_on_sigterm: on SIGTERM, deliver what is queued before the process
            ends (see docs/process-models.md); ``None`` reads ``POSTHOG_FLUSH_ON_SIGTERM``
            (default on).
        sigterm_timeout: seconds that delivery may take; ``None`` reads
            ``POSTHOG_SIGTERM_TIMEOUT`` (default 5).
        llm_analytics: turn GenAI spans (``gen_ai.operation.name``, or Traceloop's
            ``llm.request.type``) into ``$ai_generation``, ``$ai_embedding``,
            ``$ai_span`` and ``$ai_trace`` events, no tag needed; ``None`` reads
            ``POSTHOG_LLM_ANALYTICS`` (default on).
        privacy_mode: send those events without prompts, outputs, tool arguments
            and results (``$ai_input``, ``$ai_output_choices``, ``$ai_*_state``).
        exception_autocapture: send uncaught exceptions (``sys.excepthook``,
            ``threading.excepthook``, chained) as ``$exception`` events; ``None``
            reads ``POSTHOG_EXCEPTION_AUTOCAPTURE`` (default off). Undone at shutdown.
        in_app_modules: modules whose frames are in-app wherever they live.
        project_root: files under it are in-app (libraries and the standard
            library excepted); ``None``: the working directory.
        capture_code_variables: send the locals of an autocaptured exception's
            in-app frames (masked by ``attribute_denylist``, URL credentials too).
        exception_rate_limit: ``(burst, refill, seconds)``: autocaptured exceptions
            of one type beyond a burst, then ``refill`` more per ``seconds``, are
            dropped as ``rate_limited`` (default PostHog's SDK's ``(50, 10, 10.0)``);
            ``None``: no limit.
        send_traces: also send every sampled span to PostHog's ``/i/v1/traces`` as
            OTLP, with ``posthogDistinctId`` and ``sessionId`` (see docs/signals.md),
            through a queue of its own counted in ``stats().traces``; ``None`` reads
            ``POSTHOG_SEND_TRACES`` (default off). Needs the ``otlp`` extra.
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
        max_queue_size: int | None = None,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
        max_batch_size: int = 1000,
        flush_interval: float = 1.0,
        export_timeout: float = 30.0,
        flush_on_sigterm: bool | None = None,
        sigterm_timeout: float | None = None,
        llm_analytics: bool | None = None,
        privacy_mode: bool = False,
        exception_autocapture: bool | None = None,
        in_app_modules: Iterable[str] = (),
        project_root: str | None = None,
        capture_code_variables: bool = False,
        exception_rate_limit: tuple[int, int, float] | None = (
            AUTOCAPTURE_BUCKET_SIZE,
            AUTOCAPTURE_REFILL,
            AUTOCAPTURE_REFILL_SECONDS,
        ),
        send_traces: bool | None = None,
        **client_options: Any,
    ) -> None:
        options = PipelineOptions.from_env(
            send_traces=send_traces,
            exception_autocapture=exception_autocapture,
            in_app_modules=in_app_modules,
            project_root=project_root,
            capture_code_variables=capture_code_variables,
            exception_rate_limit=exception_rate_limit,
            capture_exceptions=capture_exceptions,
            include_resource_attributes=include_resource_attributes,
            attribute_denylist=attribute_denylist,
            before_send=before_send,
            max_queue_size=max_queue_size,
            max_buffer_bytes=max_buffer_bytes,
            max_batch_size=max_batch_size,
            flush_interval=flush_interval,
            export_timeout=export_timeout,
            flush_on_sigterm=flush_on_sigterm,
            sigterm_timeout=sigterm_timeout,
            llm_analytics=llm_analytics,
            privacy_mode=privacy_mode,
        )
        self._client, self._owns_client = client_from(client, api_key, host, client_options)
        self._capture_exceptions = options.capture_exceptions
        self._llm_analytics = options.llm_analytics
        # Attributes that make an ended span ours: with no events and none of these, its
        # hook returns after one isdisjoint() (a C loop over its attributes).
        self._markers = frozenset({TAG} | (GENAI_KEYS if options.llm_analytics else set()))
        self._shut_down = False
        self._pipeline = build_pipeline(
            connection_of(self._client), options, name="posthog-otel-processor"
        )
        self._flags_live = self._pipeline.flags_live  # read on every span start and end
        self._span_started = self._pipeline.span_started
        self._span_ended = self._pipeline.span_ended
        self._count_span = self._pipeline.count_span
        self._seen = self._pipeline.span_cells  # this thread's count: .cell[0]
        self._put = self._pipeline.enqueue
        # send_traces: every sampled span to /i/v1/traces, through a queue of its own.
        self._send_span: Callable[[ReadableSpan], None] | None = None
        if options.send_traces:
            self._send_span = span_sender(self._pipeline.open_stream("traces"))
        # Tagged spans taken here, for an exporter attached to the same provider (it must
        # not send them again); None until one asks (``_track_taken``).
        self._taken: weakref.WeakSet[Any] | None = None
        if not self._pipeline.enabled:  # capture is off: hooks that do nothing at all
            self.on_start = _ignore_start  # type: ignore[method-assign]
            self.on_end = _ignore_end  # type: ignore[method-assign]
        self._autocapture: Autocapture | None = None
        if options.exception_autocapture and self._pipeline.enabled:
            limit = options.exception_rate_limit
            autocapture = Autocapture(
                self._pipeline,
                options.frames(),
                flush_timeout=options.sigterm_timeout,
                buckets=TokenBuckets(*limit) if limit is not None else None,
            )
            self._autocapture = autocapture if autocapture.install() else None
        activate(self._pipeline)

    def __repr__(self) -> str:
        return f"PostHogSpanProcessor(client={self._client!r})"

    # -- SpanProcessor hooks (application threads) ------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # Every span passes through here: the accessors are C-level, and most spans stop
        # after a few dictionary lookups (measured in instructions, benchmarks/README).
        try:
            access = _otel.ACCESS  # the accessors in use, bound for this call
            ctx = parent_context if parent_context is not None else access.fast_current_context()
            if not ctx:  # no parent, no baggage: nothing to inherit, but a request may begin
                try:
                    kind = access.fast_kind(span)
                except AttributeError:
                    kind = span.kind
                if kind is _SERVER or kind is _CONSUMER:
                    note_root(span)
                return
            parent, carried = access.fast_parent(ctx)
            identity = session = parent_attrs = None
            local = _LOCAL_SPAN_TYPES.get(type(parent))
            if local is None:  # isinstance() on the SDK's ABCs is slow: decide once per type
                local = _LOCAL_SPAN_TYPES[type(parent)] = isinstance(parent, Span)
            if self._flags_live and parent is not None:  # flags were evaluated on live spans
                self._span_started(
                    span.get_span_context().span_id, parent.get_span_context().span_id
                )
            if local:  # a span of this process
                try:
                    parent_attrs = access.fast_attributes(parent)
                except AttributeError:
                    parent_attrs = access.attributes(parent)
                if parent_attrs:
                    identity = parent_attrs.get(DISTINCT_ID)
                    session = parent_attrs.get(SESSION_ID)
                if self._llm_analytics and (
                    (
                        parent_attrs
                        and (
                            OPERATION in parent_attrs
                            or AI_PARENT in parent_attrs
                            or LLM_REQUEST_TYPE in parent_attrs
                            or OPENINFERENCE_KIND in parent_attrs
                        )
                    )
                    or (known := _GENAI_SCOPES.get(name := access.fast_scope_name(parent)))
                    or (known is None and _learn_scope(name))
                ):  # under a GenAI span: note the nearest one, for the trace tree
                    self._note_genai_parent(span, parent, parent_attrs or {})
            elif parent is not None or ((kind := span.kind) is _SERVER or kind is _CONSUMER):
                # A request or message begins here (a remote parent, or a server or
                # consumer span): where identify() can name the user later.
                note_root(span)
            if carried and (identity is None or session is None):
                if identity is None:
                    identity = carried.get(DISTINCT_ID)
                if session is None:
                    session = carried.get(SESSION_ID)
            if identity is None and session is None:
                return
            span_attrs = access.attributes(span)
            if isinstance(identity, str) and identity and DISTINCT_ID not in span_attrs:
                span.set_attribute(DISTINCT_ID, identity)
            if isinstance(session, str) and session and SESSION_ID not in span_attrs:
                span.set_attribute(SESSION_ID, session)
            # The browser's window and anonymous visitor travel with its user and session.
            for key in (WINDOW_ID, ANONYMOUS_ID):
                value = parent_attrs.get(key) if parent_attrs else None
                if value is None and carried:
                    value = carried.get(key)
                if isinstance(value, str) and value and key not in span_attrs:
                    span.set_attribute(key, value)
        except Exception:  # a hook must never raise into the application
            logger.debug("posthog-otel on_start failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            try:
                self._seen.cell[0] += 1
            except AttributeError:  # this thread's first span
                self._count_span()
            if self._send_span is not None:
                self._send_span(span)
            try:
                attrs, events = _otel.ACCESS.fast_fields(span)  # one C call, no copies
            except AttributeError:
                attrs, events = _otel.PUBLIC.fast_fields(span)
            if not events and not HELD and self._markers.isdisjoint(attrs):
                # Most spans: no events, no captures held, no tag and nothing GenAI.
                if self._flags_live:
                    self._span_ended(span.context.span_id)
                return
            held = take(span.context) if HELD else ()  # captures a full span held aside
            if (
                TAG in attrs
                or held
                or (events and has_tagged_events(events, self._capture_exceptions))
                or (self._llm_analytics and is_genai(attrs))
            ):
                inherited = self._span_ended(span.context.span_id) if self._flags_live else None
                if held:
                    self._put((span, dict(inherited) if inherited else None, held))
                else:
                    self._put((span, dict(inherited)) if inherited else span)
                taken = self._taken
                if taken is not None:
                    taken.add(span)
            elif self._flags_live:
                self._span_ended(span.context.span_id)
        except Exception:  # a hook must never raise into the application
            logger.debug("posthog-otel on_end failed", exc_info=True)

    def _track_taken(self) -> weakref.WeakSet[Any]:
        """From now on, remember the tagged spans taken here (for an attached exporter)."""
        if self._taken is None:
            self._taken = weakref.WeakSet()
        return self._taken

    def _note_genai_parent(self, span: Span, parent: Any, parent_attrs: Any) -> None:
        ctx = parent.get_span_context()
        value = parent_for_children(
            parent_attrs, ctx.span_id, ctx.trace_id, genai_scope=_genai_scope(parent)
        )
        if value is not None and AI_PARENT not in _otel.ACCESS.attributes(span):
            span.set_attribute(AI_PARENT, value)

    # -- lifecycle -----------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Deliver everything queued so far; ``False`` if ``timeout_millis`` ran out first."""
        return self._pipeline.flush(timeout_millis / 1000)

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Deliver what is queued (within the timeout), then stop. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        if self._autocapture is not None:
            self._autocapture.uninstall()
        self._pipeline.shutdown(timeout_millis / 1000)
        if self._owns_client:
            self._client.close()

    def stats(self) -> PipelineStats:
        """What this processor has seen, sent and dropped so far."""
        return self._pipeline.snapshot()


def pipeline_of(processor: PostHogSpanProcessor) -> Pipeline:
    """The processor's queue and live-span flags, for the flag provider to share."""
    return processor._pipeline


def _ignore_start(span: Span, parent_context: Context | None = None) -> None:
    pass


def _ignore_end(span: ReadableSpan) -> None:
    pass


_local_root: ContextVar[Any] = ContextVar("posthog_otel_local_root", default=None)


note_root = _local_root.set
"""``note_root(span)``: ``span`` began a trace in this process (called as it starts)."""


def request_root(span: Any) -> Any:
    """The live local root of ``span``'s request, or ``None``."""
    root = _local_root.get()
    if root is None or root is span:
        return root
    same_trace = root.get_span_context().trace_id == span.get_span_context().trace_id
    return root if same_trace and root.is_recording() else None


class PostHogSpanExporter(SpanExporter):
    """Exports tagged spans as PostHog events; untagged spans are skipped.

    Takes the same options as ``PostHogSpanProcessor`` (less the queue ones), and:

    Args:
        export_timeout: seconds allowed per ``export()`` call, retries included.
        attach_processor: when an SDK ``TracerProvider`` is the global one, attach
            a ``PostHogSpanProcessor`` to it (see the module docstring); ``False``
            keeps this a plain exporter. A plain exporter never sees spans start,
            so its LLM analytics events are not nested (each GenAI span is top level).
        send_traces: as for ``PostHogSpanProcessor`` (``POSTHOG_SEND_TRACES``); the
            attached processor sends the spans, so ``OTEL_TRACES_EXPORTER=posthog``
            with ``POSTHOG_SEND_TRACES=true`` sends every trace. A plain exporter
            sends the spans of each ``export()`` too, before it returns.
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
        llm_analytics: bool | None = None,
        privacy_mode: bool = False,
        send_traces: bool | None = None,
        **client_options: Any,
    ) -> None:
        options = PipelineOptions.from_env(
            capture_exceptions=capture_exceptions,
            include_resource_attributes=include_resource_attributes,
            attribute_denylist=attribute_denylist,
            before_send=before_send,
            max_batch_size=max_batch_size,
            export_timeout=export_timeout,
            llm_analytics=llm_analytics,
            privacy_mode=privacy_mode,
            send_traces=send_traces,
        )
        self._client, self._owns_client = client_from(client, api_key, host, client_options)
        self._attached: PostHogSpanProcessor | None = None
        self._taken: weakref.WeakSet[Any] = weakref.WeakSet()  # never filled: nothing attached
        provider = trace.get_tracer_provider()
        if attach_processor and isinstance(provider, TracerProvider):
            self._attached = PostHogSpanProcessor(self._client, **options.arguments())
            self._taken = self._attached._track_taken()
            provider.add_span_processor(self._attached)
        self._stats = pipeline_of(self._attached).stats if self._attached else Stats()
        self._delivery = build_delivery(connection_of(self._client), self._stats, options)
        # A plain exporter with send_traces: each export()'s sampled spans to /i/v1/traces.
        self._traces: OtlpDelivery | None = None
        self._traces_stats = Stats(item="span", totals=False)
        if options.send_traces and self._attached is None and self._client.enabled_capture:
            connection = connection_of(self._client)
            self._traces = OtlpDelivery(
                connection, self._traces_stats, "traces", denylist=options.denylist
            )
        self._export_timeout = options.export_timeout
        self._capture_exceptions = options.capture_exceptions
        self._llm_analytics = options.llm_analytics
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f"PostHogSpanExporter(client={self._client!r})"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Map and send; never raises. ``FAILURE`` if any event was not delivered."""
        if self._attached is not None:
            spans = [span for span in spans if span not in self._taken]
        if self._stop.is_set():
            lost = sum(
                is_tagged(span, self._capture_exceptions, self._llm_analytics) for span in spans
            )
            self._stats.drop("closed", lost)
            return SpanExportResult.FAILURE
        try:
            with _otel.suppressed():
                return self._export(spans)
        except Exception:  # noqa: BLE001 - export() must return a result, not raise
            self._stats.drop("invalid", len(spans), "unexpected error while exporting")
            return SpanExportResult.FAILURE

    def _export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._attached is None:
            self._stats.spans_seen.add(len(spans))
        if not spans or not self._client.enabled_capture:
            return SpanExportResult.SUCCESS
        deadline = time.monotonic() + self._export_timeout
        delivered = self._delivery.deliver(spans, deadline=deadline, stop=self._stop)
        if self._traces is not None:
            sampled = [span for span in spans if span.context and span.context.trace_flags.sampled]
            sent = self._traces.deliver(sampled, deadline=deadline, stop=self._stop)
            delivered = sent and delivered
        return SpanExportResult.SUCCESS if delivered else SpanExportResult.FAILURE

    def shutdown(self, timeout_millis: float = 30000) -> None:
        """Stop: an export in progress gives up its retries; the attached processor
        drains within the timeout. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._attached is not None:
            self._attached.shutdown(int(timeout_millis))
        if self._owns_client:
            self._client.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Deliver what the attached processor holds; each ``export()`` sends before it
        returns, so there is nothing else to flush."""
        return self._attached.force_flush(timeout_millis) if self._attached else True

    def stats(self) -> PipelineStats:
        if self._attached is not None:
            return self._attached.stats()
        snapshot = self._stats.snapshot()
        if self._traces is None:
            return snapshot
        return dataclasses.replace(snapshot, traces=self._traces_stats.stream_snapshot())


HELD: dict[tuple[int, int], list[Event]] = {}
"""Captures held aside per (trace id, span id); read ``if HELD`` before ``take``."""
_held_lock = threading.RLock()  # a finalizer may run inside, on the same thread


def hold(span: Any, name: str, attributes: Mapping[str, Any]) -> bool:
    """Keep a capture for a recording span that has no room left for events; ``False``
    when the span already holds ``MAX_HELD_CAPTURES`` (the caller sends it another way)."""
    ctx = span.get_span_context()
    key = (ctx.trace_id, ctx.span_id)
    event = Event(name, dict(attributes), time.time_ns())
    with _held_lock:
        held = HELD.get(key)
        if held is None:
            try:
                weakref.finalize(span, _forget, key)
            except TypeError:  # a span we cannot watch: nothing may outlive it here
                return False
            held = HELD[key] = []
        if len(held) >= MAX_HELD_CAPTURES:
            return False
        held.append(event)
    return True


def take(span_context: Any) -> tuple[Event, ...]:
    """The captures held for the span with this context (once: they are forgotten)."""
    if span_context is None:
        return ()
    key = (span_context.trace_id, span_context.span_id)
    if key not in HELD:  # most spans, while another span holds some: no lock taken
        return ()
    with _held_lock:
        held = HELD.pop(key, None)
    return tuple(held) if held else ()


def _forget(key: tuple[int, int]) -> None:
    with _held_lock:
        HELD.pop(key, None)
