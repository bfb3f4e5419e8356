"""Every OpenTelemetry private name posthog-otel uses, each with a public fallback.

The private names are fast paths for hooks that run on every span: the SDK's
public accessors copy (``span.attributes`` wraps a new proxy, ``span.events``
builds a tuple) and ``context.get_current()`` is two calls where one will do.
If a future SDK renames any of them, we fall back to the public API: slower,
never wrong, never an import error. ``use_public_api()`` forces every fallback
(the test suite runs the whole pipeline that way).

The logs SDK exists only under an underscore module (``opentelemetry.sdk._logs``,
still in 1.45); it is imported here and nowhere else, trying a stable
``opentelemetry.sdk.logs`` first, and its absence is a clear error when a log
processor or exporter is built, never an import error for the span pipeline.

Nothing else in the package may touch an OpenTelemetry name that starts with an
underscore; an architecture test enforces it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import baggage as _baggage
from opentelemetry import context as _context
from opentelemetry import trace as _trace
from opentelemetry.context import Context
from opentelemetry.trace import propagation as _propagation

__all__ = [
    "ACCESS",
    "FAST",
    "PUBLIC",
    "Accessors",
    "LogRecordExportResult",
    "LogRecordExporter",
    "LogRecordProcessor",
    "global_logger_provider",
    "otlp_encoders",
    "require_logs",
    "suppressed",
    "use_public_api",
]


def _private(module: object, name: str) -> Any:
    return getattr(module, name, None)


def _public_attributes(item: Any) -> Mapping[str, Any]:
    """Works for any span, span event or log record (a remote parent has no attributes)."""
    return getattr(item, "attributes", None) or {}


def _fast_attributes(item: Any) -> Mapping[str, Any]:
    """The SDK's attribute dict, without the proxy its public accessor wraps."""
    try:
        return item._attributes._dict  # type: ignore[no-any-return]
    except AttributeError:
        return _public_attributes(item)


def _public_log_attributes(record: Any) -> Mapping[str, Any]:
    return getattr(record, "attributes", None) or {}


def _fast_log_attributes(record: Any) -> Mapping[str, Any]:
    """A log record's attribute dict, without ``BoundedAttributes``' ``KeyError`` per miss."""
    try:
        return record.attributes._dict  # type: ignore[no-any-return]
    except AttributeError:
        return _public_log_attributes(record)


def _public_events(span: Any) -> Sequence[Any]:
    return span.events or ()


def _fast_events(span: Any) -> Sequence[Any]:
    """The span's own event list, without the tuple its public accessor builds."""
    try:
        return span._events  # type: ignore[no-any-return]
    except AttributeError:
        return span.events or ()


def _public_span_fields(span: Any) -> tuple[Any, ...]:
    """An ended span's context, name, kind, status code and description, start and end
    times, parent and resource, as ``span_fields`` gives them."""
    status = span.status
    return (
        span.context,
        span.name,
        span.kind,
        status.status_code,
        status.description,
        span.start_time,
        span.end_time,
        span.parent,
        span.resource,
    )


# C-implemented: one call instead of nine properties, each a Python frame.
_SPAN_FIELDS = operator.attrgetter(
    "_context",
    "_name",
    "_kind",
    "_status._status_code",
    "_status._description",
    "_start_time",
    "_end_time",
    "_parent",
    "_resource",
)


def _fast_span_fields(span: Any) -> tuple[Any, ...]:
    """The same from the SDK span's own fields."""
    try:
        return _SPAN_FIELDS(span)
    except AttributeError:
        return _public_span_fields(span)


def _public_event_room(span: Any) -> int:
    """Events a recording span can still take before the SDK drops its oldest ones: the
    environment's limit (``OTEL_SPAN_EVENT_COUNT_LIMIT``, 128 by default)."""
    from opentelemetry.sdk.trace import SpanLimits

    limit = SpanLimits().max_events
    return (1 << 30) if limit is None else limit - len(span.events or ())


def _fast_event_room(span: Any) -> int:
    """The same from the span's own limits (its provider's), without copying its events."""
    try:
        limit = span._limits.max_events
        return (1 << 30) if limit is None else limit - len(span._events)
    except AttributeError:
        return _public_event_room(span)


def _public_fields(span: Any) -> tuple[Mapping[str, Any], Sequence[Any]]:
    return _public_attributes(span), _public_events(span)


def _fast_fields(span: Any) -> tuple[Mapping[str, Any], Sequence[Any]]:
    """The attribute dict and the events' deque inside the SDK's ``BoundedList`` (whose
    length is then no Python call). A Python function, not an ``attrgetter``: CPython
    specialises its four attribute reads (measured: half the instructions)."""
    return span._attributes._dict, span._events._dq


def _public_scope_name(span: Any) -> Any:
    name = getattr(getattr(span, "instrumentation_scope", None), "name", None)
    return name if isinstance(name, str) else None


def _fast_scope_name(span: Any) -> Any:
    try:
        name = span._instrumentation_scope._name
    except AttributeError:
        name = _public_scope_name(span)
    return name if type(name) is str else None  # a hashable key, whatever a tracer got


def _public_span_of(ctx: Context) -> Any:
    span = _trace.get_current_span(ctx)
    return span if span.get_span_context().is_valid else None


def _public_baggage_of(ctx: Context) -> Mapping[str, object]:
    return _baggage.get_all(ctx)


@dataclass(frozen=True, slots=True)
class Accessors:
    """How spans, span events, log records and contexts are read: ``FAST`` through
    OpenTelemetry's private names (each with a public fallback), ``PUBLIC`` through its
    public API only. ``ACCESS`` is the set in use; read it at call time, never bind it."""

    attributes: Callable[[Any], Mapping[str, Any]]
    """A span's, span event's or log record's attributes, read without copying."""
    events: Callable[[Any], Sequence[Any]]
    """A span's events, read without copying."""
    span_fields: Callable[[Any], tuple[Any, ...]]
    """An ended span's context, name, kind, status code, status description, start
    time, end time, parent and resource, in one call."""
    event_room: Callable[[Any], int]
    """How many more events a recording SDK span keeps before it drops its oldest ones."""
    log_attributes: Callable[[Any], Mapping[str, Any]]
    """An OpenTelemetry log record's attributes (empty when it has none)."""
    current_context: Callable[[], Context]
    """The current context (one call instead of two on the fast path)."""
    span_of: Callable[[Context], Any]
    """The span stored in a context, or ``None``."""
    baggage_of: Callable[[Context], Mapping[str, object]]
    """The baggage entries stored in a context (empty when none)."""
    suppress_key: Any
    """The SDK's key that suppresses instrumentation, or ``None``."""
    # The same, for the span hooks every span passes through: no Python frame on the
    # fast path. ``fast_attributes``, ``fast_events``, ``fast_fields``, ``fast_kind`` and
    # ``fast_scope_name`` may raise ``AttributeError`` (then use the public ones: above, or
    # ``span.kind``, ``PUBLIC.fast_scope_name``), and ``fast_baggage_of`` may return
    # ``None`` for none. Where a Python function beats a C ``attrgetter``/``methodcaller``
    # (CPython specialises the attribute reads and calls inside it), it is one.
    fast_attributes: Callable[[Any], Mapping[str, Any]]
    fast_events: Callable[[Any], Sequence[Any]]
    fast_current_context: Callable[[], Context]
    fast_span_of: Callable[[Context], Any]
    fast_baggage_of: Callable[[Context], Mapping[str, object] | None]
    fast_parent: Callable[[Context], tuple[Any, Mapping[str, object] | None]]
    """A context's span and baggage (``None`` for either that is not there), in one call."""
    fast_fields: Callable[[Any], tuple[Mapping[str, Any], Sequence[Any]]]
    """An ended span's attributes and events, in one call."""
    fast_kind: Callable[[Any], Any]
    """A span's ``SpanKind``."""
    fast_scope_name: Callable[[Any], Any]
    """The name of a span's instrumentation scope (``None`` when it has none, or not a string)."""


PUBLIC = Accessors(
    attributes=_public_attributes,
    events=_public_events,
    span_fields=_public_span_fields,
    event_room=_public_event_room,
    log_attributes=_public_log_attributes,
    current_context=_context.get_current,
    span_of=_public_span_of,
    baggage_of=_public_baggage_of,
    suppress_key=None,
    fast_attributes=_public_attributes,
    fast_events=_public_events,
    fast_current_context=_context.get_current,
    fast_span_of=_public_span_of,
    fast_baggage_of=_public_baggage_of,
    fast_parent=lambda ctx: (_public_span_of(ctx), _public_baggage_of(ctx)),
    fast_fields=_public_fields,
    fast_kind=operator.attrgetter("kind"),
    fast_scope_name=_public_scope_name,
)


def _resolve() -> Accessors:
    """``PUBLIC`` with every reader this SDK's private names allow replaced."""
    runtime = _private(_context, "_RUNTIME_CONTEXT")
    span_key = _private(_propagation, "_SPAN_KEY")
    baggage_key = _private(_baggage, "_BAGGAGE_KEY")
    fast: dict[str, Any] = {
        "attributes": _fast_attributes,
        "events": _fast_events,
        "span_fields": _fast_span_fields,
        "event_room": _fast_event_room,
        "log_attributes": _fast_log_attributes,
        "suppress_key": _private(_context, "_SUPPRESS_INSTRUMENTATION_KEY"),
    }
    if runtime is not None and hasattr(runtime, "get_current"):
        fast["current_context"] = fast["fast_current_context"] = runtime.get_current
        variable = _private(runtime, "_current_context")
        if callable(getattr(variable, "get", None)):
            fast["fast_current_context"] = variable.get  # a ContextVar: no Python frame
    if span_key is not None:
        fast["span_of"] = lambda ctx: ctx.get(span_key)
        fast["fast_span_of"] = operator.methodcaller("get", span_key)
    if baggage_key is not None:
        fast["baggage_of"] = lambda ctx: ctx.get(baggage_key) or {}
        fast["fast_baggage_of"] = operator.methodcaller("get", baggage_key)
    if span_key is not None and baggage_key is not None:
        # A Python function: CPython specialises its two ``get`` calls, which a
        # ``methodcaller`` each cannot (measured: a third of the instructions).
        def fast_parent(ctx: Context) -> tuple[Any, Mapping[str, object] | None]:
            return ctx.get(span_key), ctx.get(baggage_key)  # type: ignore[return-value]

        fast["fast_parent"] = fast_parent
    # C-implemented, so no Python frame; they raise AttributeError for objects without
    # these names (hooks then fall back).
    fast["fast_attributes"] = _fast_attributes  # specialised reads beat an attrgetter here
    fast["fast_events"] = operator.attrgetter("_events")
    fast["fast_fields"] = _fast_fields
    fast["fast_kind"] = operator.attrgetter("_kind")
    fast["fast_scope_name"] = _fast_scope_name
    return dataclasses.replace(PUBLIC, **fast)


FAST = _resolve()
ACCESS = FAST


def use_public_api(public: bool = True) -> None:
    """Use only OpenTelemetry's public API from now on (``False``: the fast paths again,
    resolved anew)."""
    global ACCESS
    ACCESS = PUBLIC if public else _resolve()


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    """Run the block with instrumentation suppressed, so our own HTTP makes no spans.

    Without the SDK's private key, the instrumentation package's public helper is
    used when installed; failing both, our requests may be traced (they carry no
    tags, so they never become events).
    """
    key = ACCESS.suppress_key
    if key is not None:
        token = _context.attach(_context.set_value(key, True))
        try:
            yield
        finally:
            _context.detach(token)
        return
    try:
        from opentelemetry.instrumentation.utils import suppress_instrumentation
    except ImportError:
        yield
        return
    with suppress_instrumentation():
        yield


# -- the logs SDK ----------------------------------------------------------------------

_LOGS_MISSING = (
    "posthog-otel's log processor and exporter need the OpenTelemetry SDK's logs API "
    "(opentelemetry.sdk._logs, opentelemetry-sdk 1.27 or newer), which this SDK does not have"
)


def _logs_api() -> tuple[Any, Any, Any] | None:
    """The SDK's processor and exporter bases and export result, from the first path that
    has them (exporters were ``LogExporter``/``LogExportResult`` before 1.39)."""
    for base in ("opentelemetry.sdk.logs", "opentelemetry.sdk._logs"):
        try:
            logs = importlib.import_module(base)
            export = importlib.import_module(base + ".export")
        except ImportError:
            continue
        found = (
            _first(logs, "LogRecordProcessor"),
            _first(export, "LogRecordExporter", "LogExporter"),
            _first(export, "LogRecordExportResult", "LogExportResult"),
        )
        if None not in found:
            return found
    return None


def _first(module: object, *names: str) -> Any:
    return next((getattr(module, n) for n in names if hasattr(module, n)), None)


class _Unavailable:
    """Stands in for a logs SDK base class that this SDK lacks."""


if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LogRecordProcessor
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
else:
    _found = _logs_api()
    LogRecordProcessor, LogRecordExporter, LogRecordExportResult = _found or (
        _Unavailable,
        _Unavailable,
        None,
    )


def require_logs() -> None:
    """Raise ``ImportError`` naming what is missing if the SDK has no logs API."""
    if LogRecordExportResult is None:
        raise ImportError(_LOGS_MISSING)


def global_logger_provider() -> Any | None:
    """The global ``LoggerProvider`` if it takes processors (the SDK's, as
    ``opentelemetry-instrument`` sets it before building exporters), else ``None``. The
    logs API is also only an underscore module (``opentelemetry._logs``)."""
    for name in ("opentelemetry.logs", "opentelemetry._logs"):
        try:
            api = importlib.import_module(name)
        except ImportError:
            continue
        provider = api.get_logger_provider()
        return provider if callable(getattr(provider, "add_log_record_processor", None)) else None
    return None


def otlp_encoders() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """OpenTelemetry's OTLP protobuf encoders (the ``otlp`` extra): ``encode_spans``, and
    ``encode_logs``, whose only home is the underscore module ``_log_encoder`` (where
    OpenTelemetry's own OTLP log exporters import it from; ``_internal`` is the other);
    ``ImportError`` when the extra is not installed. Imported when first asked for."""
    try:
        logs = importlib.import_module("opentelemetry.exporter.otlp.proto.common.log_encoder")
    except ImportError:  # no public module yet (1.45): the one its exporters use
        logs = importlib.import_module("opentelemetry.exporter.otlp.proto.common._log_encoder")
    spans = importlib.import_module("opentelemetry.exporter.otlp.proto.common.trace_encoder")
    return spans.encode_spans, logs.encode_logs
