"""The span that began the current request in this process: where ``identify()`` names
the user.

A request's instrumented server span starts before any handler runs, so the user a
handler identifies must be written onto that span afterwards. When a request or
message begins here (a span with no parent in this process that is a server or
consumer span, or continues a trace from elsewhere), the processor notes it in a
context variable. Each request runs in a context of its own (its thread's, or its
asyncio task's), so this costs one ``ContextVar.set`` per request, nothing at span
end, and two concurrent requests of one trace never see each other's root. A note
left over from an earlier request in the same thread is recognised as stale and
ignored.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_local_root: ContextVar[Any] = ContextVar("posthog_otel_local_root", default=None)


note_root = _local_root.set
"""``note_root(span)``: ``span`` began a trace in this process (called as it starts)."""


def root_of(span: Any) -> Any:
    """The live local root of ``span``'s request, or ``None``."""
    root = _local_root.get()
    if root is None or root is span:
        return root
    same_trace = root.get_span_context().trace_id == span.get_span_context().trace_id
    return root if same_trace and root.is_recording() else None
