"""The tagging convention for OpenTelemetry log records: a record to PostHog events.

A record whose attributes carry ``posthog.event`` becomes that event, as a span
event does inside its span: the record's attributes are the properties, the
record's span (copied when it was emitted) lends identity, groups and session.
With exceptions asked for, a record carrying ``exception.*`` attributes (what
``logger.exception()`` writes through OpenTelemetry's logging handler) also
becomes a handled ``$exception``. Attributes and the body are clipped to the bounds
of ``_limits`` (cuts counted in ``trims``); with ``privacy_mode``, a GenAI record
(``gen_ai.*``, as the GenAI conventions' events are) sends no body and no content.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from posthog_otel import _otel
from posthog_otel._client.events import uuid7
from posthog_otel._mapping import tags
from posthog_otel._mapping.bounds import Trims, clip
from posthog_otel._mapping.convention import DISTINCT_ID, TAG
from posthog_otel._mapping.exceptions import exception_properties
from posthog_otel._mapping.genai import CONTENT_EVENTS
from posthog_otel._mapping.tags import MappingOptions

__all__ = ["EXCEPTION_KEYS", "LogItem", "LogMapper", "is_tagged_record"]

# OpenTelemetry's exception attributes; a record carrying either describes an exception.
EXCEPTION_KEYS = ("exception.type", "exception.message")
# Severity numbers (1-24, four per level) to PostHog's $exception_level.
_LEVELS = ("debug", "debug", "info", "warning", "error", "fatal")


@dataclass(slots=True)  # not frozen: a frozen one's __init__ was 40% of a tagged record's hook
class LogItem:
    """A log record to map, with what its context knew when it was emitted.

    Attributes:
        record: the SDK's record as processors and exporters receive it
            (``ReadWriteLogRecord``, ``ReadableLogRecord``, or older SDKs' ``LogData``).
        exceptions: also send the exception the record carries as ``$exception``.
        distinct_id: ``posthog.distinct_id`` from the baggage it was emitted in.
        span_attributes: the attributes of the span it was emitted in, copied then.
        flags: flag values known on that span (``$feature/<key>``).
        session_id: ``posthog.session_id`` from the baggage it was emitted in.
    """

    record: Any
    exceptions: bool = False
    distinct_id: str | None = None
    span_attributes: Mapping[str, Any] | None = None
    flags: Mapping[str, Any] | None = None
    session_id: str | None = None


def is_tagged_record(attrs: Mapping[str, Any], capture_exceptions: bool) -> bool:
    """Whether a record with these attributes makes at least one event."""
    return TAG in attrs or (capture_exceptions and any(k in attrs for k in EXCEPTION_KEYS))


class LogMapper:
    """Turns one log record into the PostHog events its tags ask for."""

    def __init__(self, options: MappingOptions) -> None:
        self._privacy = options.privacy_mode
        self.trims = Trims()
        self._events = tags.EventBuilder(options, self.trims)

    def map_record(self, item: LogItem, problems: list[str] | None = None) -> list[dict[str, Any]]:
        """The record's tagged event and (if asked) its ``$exception``.

        A reserved attribute with an unusable value spoils only the events that use it:
        each such event is left out and its reason appended to ``problems``; without a
        ``problems`` list, ``InvalidTagError`` is raised instead.
        """
        holder = item.record
        record = holder.log_record
        attrs = _otel.ACCESS.log_attributes(record)
        wants_exception = item.exceptions and any(k in attrs for k in EXCEPTION_KEYS)
        if TAG not in attrs and not wants_exception:
            return []
        event_name = getattr(record, "event_name", None)
        props, reserved, needs = self._events.split(
            attrs, event_name if isinstance(event_name, str) else None
        )
        for key, value in props.items():
            if isinstance(value, Mapping):  # logging's extra may nest maps: scrub them too
                props[key] = self._events.scrub(value)
        span_attrs = item.span_attributes or {}
        _, span_reserved, span_needs = self._events.split(span_attrs)
        carried = {DISTINCT_ID: item.distinct_id} if item.distinct_id else {}
        # Nearest first: the record's own tag, the baggage it was emitted in, its span's.
        who = tags.identity_or_error((reserved, carried, span_reserved), (attrs, span_attrs))
        groups = tags.groups(span_reserved) if span_needs & tags.NEEDS_GROUPS else {}
        if needs & tags.NEEDS_GROUPS:
            groups = {**groups, **tags.groups(reserved)}
        session = (  # as for identity: the record's own, its baggage's, its span's
            tags.session(reserved, attrs)
            or item.session_id
            or tags.session(span_reserved, span_attrs)
        )
        context = self._context(holder, record)
        trace_hex = context.get("$trace_id")
        timestamp = record.timestamp or record.observed_timestamp
        flags = item.flags or {}
        out: list[dict[str, Any]] = []

        def build(
            reserved: Mapping[str, Any], needs: int, props: dict[str, Any], apply_people: bool
        ) -> None:
            """One event of this record, with everything the record's events share."""
            uuid = str(uuid7())
            try:
                out.append(
                    self._events.build(
                        reserved,
                        needs,
                        props,
                        context,
                        flags,
                        identity=who,
                        groups=groups,
                        session=session,
                        timestamp=timestamp,
                        uuid=uuid,
                        personless_id=trace_hex or uuid,
                        apply_people=apply_people,
                        window=tags.window(reserved, span_reserved),
                        anonymous=tags.anonymous(reserved, span_reserved),
                    )
                )
            except tags.InvalidTagError as exc:
                tags.note_problem(problems, exc)

        if TAG in attrs:
            build(reserved, needs, props, apply_people=True)
        if wants_exception:
            try:
                details = {k: v for k, v in props.items() if not k.startswith("exception.")}
                level = _level(record.severity_number)
                details.update(exception_properties(attrs, False, level, trims=self.trims))
            except Exception as exc:  # noqa: BLE001 - this event only
                tags.note_problem(problems, exc)
            else:
                build({TAG: "$exception"}, 0, details, apply_people=False)
        return out

    def _context(self, holder: Any, record: Any) -> dict[str, Any]:
        """Properties every event from this record carries: where it was logged, and how."""
        resource = getattr(holder, "resource", None) or getattr(record, "resource", None)
        context = dict(self._events.resource_properties(resource))
        if record.trace_id:
            context["$trace_id"] = "%032x" % record.trace_id  # noqa: UP031 - as for spans
            context["$span_id"] = "%016x" % (record.span_id or 0)
        event_name = getattr(record, "event_name", None)
        content = self._privacy and (
            isinstance(event_name, str) and event_name.startswith(CONTENT_EVENTS)
        )
        if record.body is not None and not content:
            context["$log_message"] = clip(record.body, self.trims)
        if record.severity_text:
            context["$log_level"] = record.severity_text
        if record.severity_number is not None:
            context["$log_severity_number"] = record.severity_number.value
        scope = getattr(holder, "instrumentation_scope", None)
        if scope is not None and scope.name:
            context["$logger_name"] = scope.name
        if event_name:
            context["$otel_event_name"] = event_name
        return context


def _level(severity: Any) -> str:
    """``$exception_level`` from OpenTelemetry's severity number; ``error`` when unknown."""
    number = getattr(severity, "value", 0)
    return _LEVELS[(number - 1) // 4] if 1 <= number <= 24 else "error"
