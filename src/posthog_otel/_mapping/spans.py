"""The tagging convention for spans: a span and its span events to PostHog events.
Pure: no I/O. The reserved keys are in ``convention``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from posthog_otel import _otel
from posthog_otel._limits import MAX_STRING_LENGTH
from posthog_otel._mapping import tags
from posthog_otel._mapping.bounds import Trims, cut_string
from posthog_otel._mapping.convention import (
    FLAG_EVALUATION,
    GENAI_EVENT,
    OWN_EVENT,
    TAG,
    event_uuid,
    note_flag_evaluation,
    span_event_position,
)
from posthog_otel._mapping.exceptions import escaped_from, exception_properties
from posthog_otel._mapping.genai import genai_event, is_genai
from posthog_otel._mapping.tags import InvalidTagError, MappingOptions
from posthog_otel._mapping.web import web_properties

__all__ = ["InvalidTagError", "MappingOptions", "SpanMapper", "has_tagged_events", "is_tagged"]

# By member identity: hashing an Enum member runs Python code, an id() does not.
_KIND_NAMES = {id(kind): kind.name.lower() for kind in SpanKind}
_STATUS_NAMES = {id(code): code.name.lower() for code in StatusCode}


def has_tagged_events(events: Iterable[Any], capture_exceptions: bool) -> bool:
    """Whether any span event is tagged (or is an exception we were asked to send)."""
    for event in events:
        if TAG in _otel.attributes_of(event) or (capture_exceptions and event.name == "exception"):
            return True
    return False


def is_tagged(span: Any, capture_exceptions: bool, llm_analytics: bool = False) -> bool:
    """Whether the span will make at least one event (the exporter's check; the
    processor inlines it on its hot path)."""
    attrs = _otel.attributes_of(span)
    return (
        TAG in attrs
        or (llm_analytics and is_genai(attrs))
        or has_tagged_events(_otel.events_of(span), capture_exceptions)
    )


class SpanMapper:
    """Turns one ended span into the PostHog events its tags ask for.

    ``trims`` counts what the bounds cut (the pipeline takes the counts after each span).
    """

    def __init__(self, options: MappingOptions) -> None:
        self._options = options
        self.trims = Trims()
        self._events = tags.EventBuilder(options, self.trims)

    def map_span(
        self,
        span: ReadableSpan,
        inherited_flags: Mapping[str, Any] | None = None,
        problems: list[str] | None = None,
        held: Sequence[Any] = (),
    ) -> list[dict[str, Any]]:
        """Events for the span's tags, its tagged span events, the captures it ``held``
        aside (``captured``) and (if asked) its exceptions.

        A reserved attribute with an unusable value spoils only the events that use it,
        and an error no bound foresaw only the event it happened in: each such event
        is left out and its reason appended to ``problems``; without a ``problems``
        list, the error (``InvalidTagError``) is raised instead.
        """
        attrs = _otel.attributes_of(span)
        ctx = span.context
        trace_id = ctx.trace_id if ctx else 0
        trace_hex = "%032x" % trace_id  # noqa: UP031 - fastest
        span_hex = "%016x" % ctx.span_id if ctx else "0" * 16  # noqa: UP031
        own, reserved, extras = self._events.split(attrs)
        context = self._context(span, attrs, trace_hex, span_hex)
        identity = tags.identity_or_error((reserved,), (attrs,))
        groups = tags.groups(reserved) if extras & tags.GROUP else {}
        session = tags.session(reserved, attrs)
        flags = dict(inherited_flags) if inherited_flags else {}
        out: list[dict[str, Any]] = []
        events = _otel.events_of(span) or ()
        for index, event in enumerate(chain(events, held) if held else events):
            eattrs = _otel.attributes_of(event)
            name = event.name
            if name == FLAG_EVALUATION:
                try:
                    note_flag_evaluation(eattrs, flags, self.trims)
                except Exception:  # noqa: BLE001 - this evaluation only
                    self.trims.note("invalid_property")
            if TAG in eattrs:
                try:
                    props, ereserved, eextras = self._events.split(eattrs, name)
                except Exception as exc:  # noqa: BLE001 - this event only
                    tags.lose(problems, exc)
                    continue
                event_identity = tags.identity_or_error((ereserved, reserved), (eattrs, attrs))
                egroups = {**groups, **tags.groups(ereserved)} if eextras & tags.GROUP else groups
                try:
                    out.append(
                        self._events.build(
                            ereserved,
                            eextras,
                            props,
                            context,
                            flags,
                            identity=event_identity,
                            groups=egroups,
                            session=tags.session(ereserved, eattrs) or session,
                            timestamp=event.timestamp,
                            uuid=event_uuid(
                                trace_hex, span_hex, trace_id, span_event_position(index)
                            ),
                            personless_id=trace_hex,
                        )
                    )
                except Exception as exc:  # noqa: BLE001 - this event only
                    tags.lose(problems, exc)
            if name == "exception" and self._options.capture_exceptions:
                try:
                    escaped = escaped_from(span, eattrs, last=index == len(events) - 1)
                    out.append(
                        self._events.build(
                            {TAG: "$exception"},
                            0,
                            exception_properties(eattrs, escaped, trims=self.trims),
                            context,
                            flags,
                            identity=identity,
                            groups=groups,
                            session=session,
                            timestamp=event.timestamp,
                            uuid=event_uuid(
                                trace_hex,
                                span_hex,
                                trace_id,
                                span_event_position(index, exception=True),
                            ),
                            personless_id=trace_hex,
                            own_people=False,
                        )
                    )
                except Exception as exc:  # noqa: BLE001 - this event only
                    tags.lose(problems, exc)
        if self._options.llm_analytics and is_genai(attrs):
            try:
                name, props, start = genai_event(
                    span, attrs, own, self._options.privacy_mode, self.trims
                )
                out.append(
                    self._events.build(
                        {**reserved, TAG: name},
                        extras,
                        props,
                        context,
                        flags,
                        identity=identity,
                        groups=groups,
                        session=session,
                        timestamp=start,
                        uuid=event_uuid(trace_hex, span_hex, trace_id, GENAI_EVENT),
                        personless_id=trace_hex,
                        own_people=False,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - this event only
                tags.lose(problems, exc)
        if TAG in attrs:
            own["$otel_span_kind"] = _KIND_NAMES.get(id(span.kind), "internal")
            status = span.status
            own["$otel_status"] = _STATUS_NAMES.get(id(status.status_code), "unset")
            if status.description:
                own["$otel_status_message"] = self._bounded(status.description)
            if span.start_time and span.end_time:
                own["$otel_duration_ms"] = (span.end_time - span.start_time) / 1e6
            if span.parent is not None:
                own["$otel_parent_span_id"] = "%016x" % span.parent.span_id  # noqa: UP031
            try:
                out.append(
                    self._events.build(
                        reserved,
                        extras,
                        own,
                        context,
                        flags,
                        identity=identity,
                        groups=groups,
                        session=session,
                        timestamp=span.end_time or time.time_ns(),
                        uuid=event_uuid(trace_hex, span_hex, trace_id, OWN_EVENT),
                        personless_id=trace_hex,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - this event only
                tags.lose(problems, exc)
        return out

    def _bounded(self, text: str) -> str:
        """A string of the span's own (its name, its status) within the length bound."""
        if len(text) <= MAX_STRING_LENGTH:
            return text
        self.trims.note("string_length")
        return cut_string(text, MAX_STRING_LENGTH)

    # -- pieces ------------------------------------------------------------------------

    def _context(
        self, span: ReadableSpan, attrs: Mapping[str, Any], trace_hex: str, span_hex: str
    ) -> dict[str, Any]:
        """Properties every event from this span carries."""
        name = span.name if isinstance(span.name, str) else str(span.name)
        context = {"$trace_id": trace_hex, "$span_id": span_hex, "$otel_span_name": name}
        if len(name) > MAX_STRING_LENGTH:
            context["$otel_span_name"] = self._bounded(name)
        context.update(self._events.resource_properties(span.resource))
        if span.kind is SpanKind.SERVER:
            context.update(web_properties(attrs, self._options.denylist))
        return context
