"""Every OpenTelemetry private name posthog-otel uses, each with a public fallback.

The private names are fast paths for hooks that run on every span: the SDK's
public accessors copy (``span.attributes`` wraps a new proxy, ``span.events``
builds a tuple) and ``context.get_current()`` is two calls where one will do.
If a future SDK renames any of them, we fall back to the public API: slower,
never wrong, never an import error. ``use_public_api()`` forces every fallback
(the test suite runs the whole pipeline that way).

Nothing else in the package may touch an OpenTelemetry name that starts with an
underscore; an architecture test enforces it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import baggage as _baggage
from opentelemetry import context as _context
from opentelemetry import trace as _trace
from opentelemetry.context import Context
from opentelemetry.trace import propagation as _propagation

__all__ = [
    "attributes_of",
    "baggage_of",
    "current_context",
    "events_of",
    "span_of",
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


def _public_events(span: Any) -> Sequence[Any]:
    return span.events or ()


def _fast_events(span: Any) -> Sequence[Any]:
    """The span's own event list, without the tuple its public accessor builds."""
    try:
        return span._events  # type: ignore[no-any-return]
    except AttributeError:
        return span.events or ()


def _public_span_of(ctx: Context) -> Any:
    span = _trace.get_current_span(ctx)
    return span if span.get_span_context().is_valid else None


def _public_baggage_of(ctx: Context) -> Mapping[str, object]:
    return _baggage.get_all(ctx)


def _resolve() -> dict[str, Any]:
    runtime = _private(_context, "_RUNTIME_CONTEXT")
    span_key = _private(_propagation, "_SPAN_KEY")
    baggage_key = _private(_baggage, "_BAGGAGE_KEY")
    fast: dict[str, Any] = {
        "attributes_of": _fast_attributes,
        "events_of": _fast_events,
        "suppress_key": _private(_context, "_SUPPRESS_INSTRUMENTATION_KEY"),
    }
    if runtime is not None and hasattr(runtime, "get_current"):
        fast["current_context"] = runtime.get_current
    if span_key is not None:
        fast["span_of"] = lambda ctx: ctx.get(span_key)
    if baggage_key is not None:
        fast["baggage_of"] = lambda ctx: ctx.get(baggage_key) or {}
    return fast


_PUBLIC: dict[str, Any] = {
    "attributes_of": _public_attributes,
    "events_of": _public_events,
    "current_context": _context.get_current,
    "span_of": _public_span_of,
    "baggage_of": _public_baggage_of,
    "suppress_key": None,
}

attributes_of: Callable[[Any], Mapping[str, Any]]
"""A span's, span event's or log record's attributes, read without copying."""
events_of: Callable[[Any], Sequence[Any]]
"""A span's events, read without copying."""
current_context: Callable[[], Context]
"""The current context (one call instead of two on the fast path)."""
span_of: Callable[[Context], Any]
"""The span stored in a context, or ``None``."""
baggage_of: Callable[[Context], Mapping[str, object]]
"""The baggage entries stored in a context (empty when none)."""
_suppress_key: Any = None


def _install(chosen: dict[str, Any]) -> None:
    global attributes_of, events_of, current_context, span_of, baggage_of, _suppress_key
    attributes_of = chosen["attributes_of"]
    events_of = chosen["events_of"]
    current_context = chosen["current_context"]
    span_of = chosen["span_of"]
    baggage_of = chosen["baggage_of"]
    _suppress_key = chosen["suppress_key"]


def use_public_api(public: bool = True) -> None:
    """Use only OpenTelemetry's public API from now on (``False``: the fast paths again).

    Callers must look these functions up on this module at call time, never bind them.
    """
    _install(dict(_PUBLIC) if public else {**_PUBLIC, **_resolve()})


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    """Run the block with instrumentation suppressed, so our own HTTP makes no spans.

    Without the SDK's private key, the instrumentation package's public helper is
    used when installed; failing both, our requests may be traced (they carry no
    tags, so they never become events).
    """
    if _suppress_key is not None:
        token = _context.attach(_context.set_value(_suppress_key, True))
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


use_public_api(False)
