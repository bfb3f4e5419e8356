"""The spans that began each trace in this process: where ``identify()`` names the user.

A request's instrumented server span starts before any handler runs, so the user a
handler identifies must be written onto that span afterwards. The processor records
each live *local root* (a span with no parent in this process) by trace id; when one
trace has several live local roots at once (two concurrent requests of one trace),
none is chosen: attributing to the wrong one would be worse than not at all.
"""

from __future__ import annotations

import threading
from typing import Any

from posthog_otel import _forksafe

_MAX_TRACES = 50_000  # roots that never end must not grow this forever


class LocalRoots:
    """Live local root spans by trace id."""

    def __init__(self) -> None:
        self._roots: dict[int, list[Any]] = {}
        self._lock = threading.Lock()
        _forksafe.register(self)

    def started(self, span: Any) -> None:
        trace_id = span.get_span_context().trace_id
        with self._lock:
            if len(self._roots) >= _MAX_TRACES:
                self._roots.clear()
            self._roots.setdefault(trace_id, []).append(span)

    def ended(self, span: Any) -> None:
        trace_id = span.get_span_context().trace_id
        with self._lock:
            spans = self._roots.get(trace_id)
            if spans is not None and span in spans:
                spans.remove(span)
                if not spans:
                    del self._roots[trace_id]

    def root_of(self, trace_id: int) -> Any:
        """The one live local root of this trace, or ``None`` (none, or several)."""
        with self._lock:
            spans = self._roots.get(trace_id)
            return spans[0] if spans is not None and len(spans) == 1 else None

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._roots = {}
