"""Events made in code rather than from a span: ``capture()`` with no recording span,
and ``$feature_flag_called``; and the captures a full span holds aside. No I/O.

A span keeps at most ``SpanLimits.max_events`` events (128 by default) and drops its
oldest beyond that, so ``capture()`` stops adding to a full span and ``hold``s the
event here instead, keyed by the span's ids (the span processor sees a copy of the
span, not the span). When the span ends, the processor ``take``s them and queues
them with the span, so they are mapped exactly as its own tagged span events:
the same identity, groups, session and flags. A held list lives no longer than its
span object (a finalizer forgets it), and holds at most ``MAX_HELD_CAPTURES``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Event

from posthog_otel._client.events import now_iso, uuid7
from posthog_otel._limits import MAX_HELD_CAPTURES
from posthog_otel._version import LIB, __version__

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


def captured_event(
    name: str,
    props: dict[str, Any],
    distinct_id: str | None,
    span_context: trace.SpanContext,
    session_id: str | None = None,
) -> dict[str, Any]:
    """An event in PostHog's shape: ``$lib``, the trace it happened in, the session
    (``$session_id``), and a personless id when nobody is known."""
    properties = {**props, "$lib": LIB, "$lib_version": __version__}
    if session_id:
        properties["$session_id"] = session_id
    trace_hex = None
    if span_context.is_valid:
        trace_hex = trace.format_trace_id(span_context.trace_id)
        properties["$trace_id"] = trace_hex
        properties["$span_id"] = trace.format_span_id(span_context.span_id)
    if distinct_id is None:
        distinct_id = trace_hex or str(uuid7())
        properties["$process_person_profile"] = False
    return {
        "event": name,
        "distinct_id": distinct_id,
        "properties": properties,
        "timestamp": now_iso(),
        "uuid": str(uuid7()),
    }
