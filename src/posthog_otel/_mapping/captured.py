"""The captures a full span holds aside, until the span processor takes them. No I/O.

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

from opentelemetry.sdk.trace import Event

from posthog_otel._limits import MAX_HELD_CAPTURES

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
