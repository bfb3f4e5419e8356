"""What a flag read leaves behind: a span event, ``$feature/<key>``, ``$feature_flag_called``.

Inside a recording span each read adds a ``feature_flag.evaluation`` span event (in
OpenTelemetry's semantic convention names), once per flag and value per span: spans
keep at most 128 events, and a flag checked in a loop must not push out the span's
own. Events captured later in that span or its children carry ``$feature/<key>``.
``$feature_flag_called`` goes once per user, flag, value and groups, through the
span processor's queue or, without one, a queue of our own started on first use.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from posthog_otel import _forksafe, _otel
from posthog_otel._client.connection import Connection
from posthog_otel._context import event_from_code, session_of
from posthog_otel._flagdata import (
    ExposedValues,
    ExposureLog,
    FeatureFlag,
    FlagsResponse,
    flag_called_properties,
    result_reason,
)
from posthog_otel._pipeline import pipeline
from posthog_otel._pipeline.pipeline import Pipeline, PipelineOptions, build_pipeline

__all__ = ["FlagObserver", "span_event"]


class FlagObserver:
    """Records flag reads on the trace and reports exposures; safe across threads."""

    def __init__(
        self,
        connection: Connection,
        shared: Pipeline | None,
        *,
        send_events: bool,
        options: PipelineOptions,
    ) -> None:
        self._connection = connection
        self._options = options  # for our own queue, when there is no shared one
        self._shared = shared
        self._send_events = send_events and connection.config.enabled_capture
        self._reported = ExposureLog()
        self._exposed = ExposedValues()
        # Per live span, the flags already recorded on it, with their values.
        self._on_spans: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._fallback: Pipeline | None = None
        self._closed = False
        _forksafe.register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def observe(
        self,
        key: str,
        flag: FeatureFlag | None,
        source: str,
        error: str | None,
        who: str,
        groups: Mapping[str, str] | None,
        answer: FlagsResponse | None,
    ) -> None:
        """Record one read of flag ``key`` (``source``: where its answer came from)."""
        value = None if flag is None else flag.enabled
        if flag is not None:
            self._exposed.note(who, key, value)
        access = _otel.ACCESS  # the current span in two C calls: this runs on every read
        span = access.fast_span_of(access.fast_current_context())
        if span is None:
            span = trace.INVALID_SPAN
        elif span.is_recording() and self._first_on_span(span, key, value):
            span.add_event("feature_flag.evaluation", span_event(key, flag, source, error, who))
            shared = self._shared or pipeline.active()
            if shared is not None and flag is not None:
                shared.flag_evaluated(span, key, value)
        if not self._send_events or not self._reported.first(who, key, value, groups):
            return
        local = source == "local"
        properties = flag_called_properties(key, flag, answer, error or "", local)
        if groups:
            properties["$groups"] = dict(groups)
        session = session_of(span)
        event = event_from_code(
            "$feature_flag_called", properties, who, span.get_span_context(), session
        )
        target = self._shared or self._fallback_pipeline()
        if target is not None:
            target.put(event)

    def capture(
        self,
        name: str,
        who: str | None,
        properties: dict[str, Any],
        groups: Mapping[str, str] | None,
    ) -> bool:
        """Send event ``name`` for ``who`` (personless if ``None``) with ``$feature/<key>``
        for every flag they were given here; ``False`` if it was not queued (events off,
        shut down, or a full queue, which the pipeline counts)."""
        if not self._connection.config.enabled_capture:
            return False
        if who is not None:
            properties = {**self._exposed.of(who), **properties}
        if groups:
            properties["$groups"] = dict(groups)
        span = trace.get_current_span()
        event = event_from_code(name, properties, who, span.get_span_context())
        target = self._shared or self._fallback_pipeline()
        return target is not None and target.put(event)

    def flush(self, timeout: float) -> bool:
        if self._shared is not None:
            return self._shared.flush(timeout)
        return self._fallback.flush(timeout) if self._fallback is not None else True

    def shutdown(self, timeout: float) -> None:
        """Deliver what is queued; our own queue stops and is not restarted."""
        with self._lock:
            self._closed = True
            fallback, self._fallback = self._fallback, None
        if fallback is not None:
            fallback.shutdown(timeout)
        elif self._shared is not None:
            self._shared.flush(timeout)

    def _first_on_span(self, span: Any, key: str, value: Any) -> bool:
        with self._lock:
            recorded = self._on_spans.setdefault(span, {})
            if key in recorded and recorded[key] == value:
                return False
            recorded[key] = value
            return True

    def _fallback_pipeline(self) -> Pipeline | None:
        with self._lock:
            if self._fallback is None and not self._closed:
                self._fallback = build_pipeline(
                    self._connection, self._options, name="posthog-otel-flags"
                )
            return self._fallback


def span_event(
    key: str, flag: FeatureFlag | None, source: str, error: str | None, who: str
) -> dict[str, Any]:
    """The ``feature_flag.evaluation`` event's attributes for one read."""
    attributes: dict[str, Any] = {
        "feature_flag.key": key,
        "feature_flag.provider.name": "posthog",
        "feature_flag.context.id": who,
        "feature_flag.result.reason": result_reason(flag, source),
    }
    if flag is None:
        attributes["error.type"] = error or "flag_missing"
    elif flag.variant is not None:
        attributes["feature_flag.result.variant"] = flag.variant
    else:
        attributes["feature_flag.result.value"] = bool(flag.enabled)
    if flag is not None and flag.version is not None:
        attributes["feature_flag.version"] = str(flag.version)
    return attributes
