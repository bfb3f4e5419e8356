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
    DISTINCT_ID,
    FLAG_EVALUATION,
    GENAI_EVENT,
    OWN_EVENT,
    TAG,
    event_uuid,
    note_flag_evaluation,
    span_event_position,
)
from posthog_otel._mapping.exceptions import escaped_from, exception_properties
from posthog_otel._mapping.genai import genai_event, is_genai, openinference_user, unmapped
from posthog_otel._mapping.tags import InvalidTagError, MappingOptions
from posthog_otel._mapping.web import web_properties

__all__ = ["InvalidTagError", "MappingOptions", "SpanMapper", "has_tagged_events", "is_tagged"]

# By member identity: hashing an Enum member runs Python code, an id() does not.
_KIND_NAMES = {id(kind): kind.name.lower() for kind in SpanKind}
_STATUS_NAMES = {id(code): code.name.lower() for code in StatusCode}


def has_tagged_events(events: Iterable[Any], capture_exceptions: bool) -> bool:
    """Whether any span event is tagged (or is an exception we were asked to send)."""
    attributes = _otel.ACCESS.attributes
    for event in events:
        if TAG in attributes(event) or (capture_exceptions and event.name == "exception"):
            return True
    return False


def is_tagged(span: Any, capture_exceptions: bool, llm_analytics: bool = False) -> bool:
    """Whether the span will make at least one event (the exporter's check; the
    processor inlines it on its hot path)."""
    attrs = _otel.ACCESS.attributes(span)
    return (
        TAG in attrs
        or (llm_analytics and is_genai(attrs))
        or has_tagged_events(_otel.ACCESS.events(span), capture_exceptions)
    )


class SpanMapper:
    """Turns one ended span into the PostHog events its tags ask for.

    ``trims`` counts what the bounds cut, ``unmapped`` the spans that looked like GenAI
    but gave no LLM analytics event, by reason (the pipeline takes both after each span).
    """

    def __init__(self, options: MappingOptions) -> None:
        self._options = options
        self.trims = Trims()
        self.unmapped = Trims()
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
        access = _otel.ACCESS
        attrs = access.attributes(span)
        ctx, name, kind, status_code, status_text, start, end, parent, resource = (
            access.span_fields(span)
        )
        trace_id = ctx.trace_id if ctx else 0
        trace_hex = "%032x" % trace_id  # noqa: UP031 - fastest
        span_hex = "%016x" % ctx.span_id if ctx else "0" * 16  # noqa: UP031
        builder = self._events
        span_props, reserved, needs = builder.split(attrs)
        context = self._context(name, kind, resource, attrs, trace_hex, span_hex)
        identity = reserved.get(DISTINCT_ID)
        if type(identity) is not str or not identity.strip():  # the usual case, inlined
            identity = tags.identity_or_error((reserved,), (attrs,))
        groups = tags.groups(reserved) if needs & tags.NEEDS_GROUPS else {}
        session = tags.session(reserved, attrs)
        flags = dict(inherited_flags) if inherited_flags else {}
        events = access.events(span) or ()
        genai = self._options.llm_analytics and is_genai(attrs)
        out: list[dict[str, Any]] = []
        if events or held or genai:  # more than the span's own event: the general way
            made = _SpanEvents(
                builder.build,
                problems,
                context,
                flags,
                trace_hex,
                span_hex,
                trace_id,
                identity,
                groups,
                session,
                reserved,
            )
            self._other_events(span, attrs, span_props, reserved, needs, made, events, held)
            out = made.out
        if TAG in attrs:
            span_props["$otel_span_kind"] = _KIND_NAMES.get(id(kind), "internal")
            span_props["$otel_status"] = _STATUS_NAMES.get(id(status_code), "unset")
            if status_text:
                span_props["$otel_status_message"] = self._bounded(status_text)
            if start and end:
                span_props["$otel_duration_ms"] = (end - start) / 1e6
            if parent is not None:
                span_props["$otel_parent_span_id"] = "%016x" % parent.span_id  # noqa: UP031
            try:
                out.append(
                    builder.build(
                        reserved,
                        needs,
                        span_props,
                        context,
                        flags,
                        identity,
                        groups,
                        session,
                        end or time.time_ns(),
                        event_uuid(trace_hex, span_hex, trace_id, OWN_EVENT),
                        trace_hex,
                        window=tags.window(reserved),
                        anonymous=tags.anonymous(reserved),
                    )
                )
            except Exception as exc:  # noqa: BLE001 - this event only
                tags.note_problem(problems, exc)
        return out

    def _other_events(
        self,
        span: ReadableSpan,
        attrs: Mapping[str, Any],
        span_props: dict[str, Any],
        reserved: dict[str, Any],
        needs: int,
        made: _SpanEvents,
        events: Sequence[Any],
        held: Sequence[Any],
    ) -> None:
        """The events of the span's tagged span events, of the captures it held aside,
        of its exceptions (if asked) and its GenAI event (if it is one)."""
        problems = made.problems
        groups = made.groups
        for index, event in enumerate(chain(events, held) if held else events):
            eattrs = _otel.ACCESS.attributes(event)
            name = event.name
            if name == FLAG_EVALUATION:
                try:
                    note_flag_evaluation(eattrs, made.flags, self.trims)
                except Exception:  # noqa: BLE001 - this evaluation only
                    self.trims.note("invalid_property")
            if TAG in eattrs:
                try:
                    props, ereserved, eneeds = self._events.split(eattrs, name)
                except Exception as exc:  # noqa: BLE001 - this event only
                    tags.note_problem(problems, exc)
                    continue
                made.add(
                    ereserved,
                    eneeds,
                    props,
                    timestamp=event.timestamp,
                    position=span_event_position(index),
                    identity=tags.identity_or_error((ereserved, reserved), (eattrs, attrs)),
                    groups={**groups, **tags.groups(ereserved)}
                    if eneeds & tags.NEEDS_GROUPS
                    else None,
                    session=tags.session(ereserved, eattrs),
                )
            if name == "exception" and self._options.capture_exceptions:
                try:
                    escaped = escaped_from(span, eattrs, last=index == len(events) - 1)
                    props = exception_properties(eattrs, escaped, trims=self.trims)
                except Exception as exc:  # noqa: BLE001 - this event only
                    tags.note_problem(problems, exc)
                else:
                    made.add(
                        {TAG: "$exception"},
                        0,
                        props,
                        timestamp=event.timestamp,
                        position=span_event_position(index, exception=True),
                        apply_people=False,
                    )
        if self._options.llm_analytics and is_genai(attrs):
            why = unmapped(attrs)
            if why is not None:
                self.unmapped.note(why)
            else:
                try:
                    name, props, start = genai_event(
                        span, attrs, span_props, self._options.privacy_mode, self.trims
                    )
                except Exception as exc:  # noqa: BLE001 - this event only
                    tags.note_problem(problems, exc)
                else:
                    user = openinference_user(attrs)
                    made.add(
                        {**reserved, TAG: name},
                        needs,
                        props,
                        timestamp=start,
                        position=GENAI_EVENT,
                        identity=user if user is not None else _SPAN,
                        apply_people=False,
                    )

    def _bounded(self, text: str) -> str:
        """A string of the span's own (its name, its status) within the length bound."""
        if len(text) <= MAX_STRING_LENGTH:
            return text
        self.trims.note("string_length")
        return cut_string(text, MAX_STRING_LENGTH)

    # -- pieces ------------------------------------------------------------------------

    def _context(
        self,
        name: Any,
        kind: Any,
        resource: Any,
        attrs: Mapping[str, Any],
        trace_hex: str,
        span_hex: str,
    ) -> dict[str, Any]:
        """Properties every event from this span carries."""
        if not isinstance(name, str):
            name = str(name)
        context = {"$trace_id": trace_hex, "$span_id": span_hex, "$otel_span_name": name}
        if len(name) > MAX_STRING_LENGTH:
            context["$otel_span_name"] = self._bounded(name)
        context.update(self._events.resource_properties(resource))
        if kind is SpanKind.SERVER:
            context.update(web_properties(attrs, self._options.denylist))
        return context


_SPAN = object()  # "the span's own": the identity, groups or session the span gives


class _SpanEvents:
    """The events one span makes, as ``map_span`` makes them: what they all share (the
    span's context properties, flags, ids, identity, groups, session), and the one way
    each is built. An event that cannot be built is left out and its reason noted
    (``tags.note_problem``); the others still go."""

    __slots__ = (
        "_build",
        "_context",
        "_identity",
        "_reserved",
        "_session",
        "_span_hex",
        "_trace_hex",
        "_trace_id",
        "flags",
        "groups",
        "out",
        "problems",
    )

    def __init__(
        self,
        build: Any,
        problems: list[str] | None,
        context: dict[str, Any],
        flags: dict[str, Any],
        trace_hex: str,
        span_hex: str,
        trace_id: int,
        identity: str | InvalidTagError | None,
        groups: Mapping[str, str],
        session: str | None,
        reserved: Mapping[str, Any],
    ) -> None:
        self._build = build
        self.problems = problems
        self._context = context
        self.flags = flags
        self._trace_hex = trace_hex
        self._span_hex = span_hex
        self._trace_id = trace_id
        self._identity = identity
        self.groups = groups
        self._session = session
        self._reserved = reserved  # the span's: its window and anonymous visitor, if any
        self.out: list[dict[str, Any]] = []

    def add(
        self,
        reserved: Mapping[str, Any],
        needs: int,
        props: dict[str, Any],
        *,
        timestamp: int,
        position: int,
        identity: Any = _SPAN,
        groups: Mapping[str, str] | None = None,
        session: str | None = None,
        apply_people: bool = True,
    ) -> None:
        """Build one event at ``position`` in the span (its uuid); ``identity``,
        ``groups``, ``session`` (and the browser's window and anonymous id) default to
        the span's."""
        trace_hex = self._trace_hex
        span_reserved = self._reserved
        try:
            self.out.append(
                self._build(
                    reserved,
                    needs,
                    props,
                    self._context,
                    self.flags,
                    identity=self._identity if identity is _SPAN else identity,
                    groups=self.groups if groups is None else groups,
                    session=session or self._session,
                    timestamp=timestamp,
                    uuid=event_uuid(trace_hex, self._span_hex, self._trace_id, position),
                    personless_id=trace_hex,
                    apply_people=apply_people,
                    window=tags.window(reserved, span_reserved),
                    anonymous=tags.anonymous(reserved, span_reserved),
                )
            )
        except Exception as exc:  # noqa: BLE001 - this event only
            tags.note_problem(self.problems, exc)
