"""Events made in code rather than from a span: ``capture()`` with no recording span,
and ``$feature_flag_called``. Pure: no I/O."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from posthog_otel._client.events import now_iso, uuid7
from posthog_otel._version import LIB, __version__


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
