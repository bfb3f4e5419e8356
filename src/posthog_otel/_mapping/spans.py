"""The tagging convention for spans: a span and its span events to PostHog events.
Pure: no I/O. The reserved keys are in ``convention``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from posthog_otel import _otel
from posthog_otel._mapping.convention import (
    DISTINCT_ID,
    FLAG_EVALUATION,
    GROUPS_PREFIX,
    PROPERTIES,
    RESERVED_PREFIX,
    SESSION_ID,
    SET_ONCE_PREFIX,
    SET_PREFIX,
    TAG,
    USER_ID_KEYS,
    IsoClock,
    event_uuid,
    normalise_key,
    note_flag_evaluation,
)
from posthog_otel._mapping.exceptions import escaped_from, exception_properties
from posthog_otel._mapping.web import URL_ATTRIBUTES, redact_attribute, web_properties
from posthog_otel._version import LIB, __version__

_KIND_NAMES = {kind: kind.name.lower() for kind in SpanKind}
_UUID_NAMESPACE = bytes.fromhex("6f2a3b5c8d9e4f10a1b2c3d4e5f60718")


class InvalidTagError(ValueError):
    """A reserved ``posthog.*`` attribute holds a value the convention cannot use."""


@dataclass(frozen=True)
class MappingOptions:
    capture_exceptions: bool = False
    include_resource_attributes: bool = False
    denylist: re.Pattern[str] | None = None


# What an attribute key is, decided once per key: a property, a credential to drop, a URL
# to redact, or reserved (a bit flag, so one pass over a span's keys says which extras it needs).
_PLAIN, _DENIED, _URL = 0, -1, -2
_RESERVED, _GROUP, _PEOPLE, _JSON = 1, 2, 4, 8
_STATUS_NAMES = {code: code.name.lower() for code in StatusCode}


def has_tagged_events(events: Iterable[Any], capture_exceptions: bool) -> bool:
    """Whether any span event is tagged (or is an exception we were asked to send)."""
    for event in events:
        if TAG in _otel.attributes_of(event) or (capture_exceptions and event.name == "exception"):
            return True
    return False


def is_tagged(span: Any, capture_exceptions: bool) -> bool:
    """Whether the span will make at least one event (the exporter's check; the
    processor inlines the first half of it on its hot path)."""
    return TAG in _otel.attributes_of(span) or has_tagged_events(
        _otel.events_of(span), capture_exceptions
    )


class SpanMapper:
    """Turns one ended span into the PostHog events its tags ask for."""

    def __init__(self, options: MappingOptions) -> None:
        self._options = options
        self._clock = IsoClock()
        self._kinds: dict[str, int] = {}  # attribute key -> plain, reserved or denied
        self._resource: tuple[Any, dict[str, Any]] = (object(), {})

    def map_span(
        self,
        span: ReadableSpan,
        inherited_flags: Mapping[str, Any] | None = None,
        problems: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Events for the span's tags, its tagged span events and (if asked) its exceptions.

        A reserved attribute with an unusable value spoils only the events that use it:
        each such event is left out and its reason appended to ``problems``; without a
        ``problems`` list, ``InvalidTagError`` is raised instead.
        """
        attrs = _otel.attributes_of(span)
        ctx = span.context
        trace_hex = "%032x" % ctx.trace_id if ctx else "0" * 32  # noqa: UP031 - fastest
        span_hex = "%016x" % ctx.span_id if ctx else "0" * 16  # noqa: UP031
        own, reserved, extras = self._split(attrs)
        context = self._context(span, attrs, trace_hex, span_hex)
        identity = _identity_or_error((reserved,), (attrs,))
        groups = _groups(reserved) if extras & _GROUP else {}
        session = _session(reserved, attrs)
        flags = dict(inherited_flags) if inherited_flags else {}
        out: list[dict[str, Any]] = []
        events = _otel.events_of(span)
        for index, event in enumerate(events if events else ()):
            eattrs = _otel.attributes_of(event)
            name = event.name
            if name == FLAG_EVALUATION:
                note_flag_evaluation(eattrs, flags)
            if TAG in eattrs:
                props, ereserved, eextras = self._split(eattrs)
                event_identity = _identity_or_error((ereserved, reserved), (eattrs, attrs))
                self._add(
                    out,
                    problems,
                    partial(
                        self._build,
                        ereserved,
                        eextras,
                        props,
                        context,
                        flags,
                        identity=event_identity,
                        groups={**groups, **_groups(ereserved)} if eextras & _GROUP else groups,
                        session=_session(ereserved, eattrs) or session,
                        timestamp=event.timestamp,
                        uuid=event_uuid(trace_hex, span_hex, f":{index}"),
                        trace_hex=trace_hex,
                    ),
                )
            if name == "exception" and self._options.capture_exceptions:
                escaped = escaped_from(span, eattrs, last=index == len(events) - 1)
                self._add(
                    out,
                    problems,
                    partial(
                        self._build,
                        {TAG: "$exception"},
                        0,
                        exception_properties(eattrs, escaped),
                        context,
                        flags,
                        identity=identity,
                        groups=groups,
                        session=session,
                        timestamp=event.timestamp,
                        uuid=event_uuid(trace_hex, span_hex, f":{index}:exception"),
                        trace_hex=trace_hex,
                        own_people=False,
                    ),
                )
        if TAG in attrs:
            own["$otel_span_kind"] = _KIND_NAMES.get(span.kind, "internal")
            status = span.status
            own["$otel_status"] = _STATUS_NAMES[status.status_code]
            if status.description:
                own["$otel_status_message"] = status.description
            if span.start_time and span.end_time:
                own["$otel_duration_ms"] = (span.end_time - span.start_time) / 1e6
            if span.parent is not None:
                own["$otel_parent_span_id"] = "%016x" % span.parent.span_id  # noqa: UP031
            self._add(
                out,
                problems,
                partial(
                    self._build,
                    reserved,
                    extras,
                    own,
                    context,
                    flags,
                    identity=identity,
                    groups=groups,
                    session=session,
                    timestamp=span.end_time or time.time_ns(),
                    uuid=event_uuid(trace_hex, span_hex, ""),
                    trace_hex=trace_hex,
                ),
            )
        return out

    # -- pieces ------------------------------------------------------------------------

    @staticmethod
    def _add(
        out: list[dict[str, Any]],
        problems: list[str] | None,
        build: Callable[[], dict[str, Any]],
    ) -> None:
        """Build one event; an unusable tag loses that event only (when ``problems`` is given)."""
        try:
            out.append(build())
        except InvalidTagError as exc:
            if problems is None:
                raise
            problems.append(str(exc))

    def _classify(self, key: str) -> int:
        deny = self._options.denylist
        if key.startswith(RESERVED_PREFIX):
            kind = _RESERVED
            if key.startswith(GROUPS_PREFIX):
                kind |= _GROUP
            elif key.startswith((SET_PREFIX, SET_ONCE_PREFIX)):
                kind |= _PEOPLE
            elif key == PROPERTIES:
                kind |= _JSON
        elif deny is not None and key in URL_ATTRIBUTES:
            kind = _URL
        elif deny is not None and deny.search(normalise_key(key)):
            kind = _DENIED
        else:
            kind = _PLAIN
        if len(self._kinds) >= 10_000:  # keys are usually few; stay bounded if not
            self._kinds.clear()
        self._kinds[key] = kind
        return kind

    def _denied(self, key: str) -> bool:
        kind = self._kinds.get(key)
        return (self._classify(key) if kind is None else kind) == _DENIED

    def _split(self, attrs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
        """Plain properties (minus denied keys), the reserved ``posthog.*`` values, and
        which extras (groups, people, JSON properties) the reserved ones ask for."""
        props: dict[str, Any] = {}
        reserved: dict[str, Any] = {}
        extras = 0
        kinds = self._kinds
        for key, value in attrs.items():
            kind = kinds.get(key)
            if kind is None:
                kind = self._classify(key)
            if kind == _PLAIN:
                props[key] = value
            elif kind > 0:
                reserved[key] = value
                extras |= kind
            elif kind == _URL:
                props[key] = redact_attribute(key, value, self._options.denylist)
        return props, reserved, extras

    def _context(
        self, span: ReadableSpan, attrs: Mapping[str, Any], trace_hex: str, span_hex: str
    ) -> dict[str, Any]:
        """Properties every event from this span carries."""
        context = {"$trace_id": trace_hex, "$span_id": span_hex, "$otel_span_name": span.name}
        context.update(self._resource_context(span.resource))
        if span.kind is SpanKind.SERVER:
            context.update(web_properties(attrs, self._options.denylist))
        return context

    def _resource_context(self, resource: Any) -> dict[str, Any]:
        """Per resource (usually one per process), computed once."""
        cached_for, context = self._resource
        if cached_for is resource:
            return context
        attrs = resource.attributes if resource is not None else {}
        context = {"$lib": LIB, "$lib_version": __version__}
        if self._options.include_resource_attributes:
            context.update((k, v) for k, v in attrs.items() if not self._denied(k))
        elif "service.name" in attrs:
            context["service.name"] = attrs["service.name"]
        self._resource = (resource, context)
        return context

    def _build(
        self,
        reserved: Mapping[str, Any],
        extras: int,
        props: dict[str, Any],
        context: Mapping[str, Any],
        flags: Mapping[str, Any],
        *,
        identity: str | InvalidTagError | None,
        groups: Mapping[str, str],
        session: str | None,
        timestamp: int,
        uuid: str,
        trace_hex: str,
        own_people: bool = True,
    ) -> dict[str, Any]:
        name = reserved.get(TAG)
        if not isinstance(name, str) or not name.strip():
            raise InvalidTagError(f"{TAG} must be a non-empty string, got {name!r}")
        if isinstance(identity, InvalidTagError):
            raise identity
        properties = {**context, **props}
        if extras & _JSON:
            properties.update(self._extra_properties(reserved[PROPERTIES]))
        if extras & _PEOPLE and own_people:
            self._people(reserved, properties)
        for key, value in flags.items():
            properties[f"$feature/{key}"] = value
        if groups:
            properties["$groups"] = dict(groups)
        if session:
            properties["$session_id"] = session
        if identity is None:
            identity = trace_hex
            properties["$process_person_profile"] = False
        return {
            "event": name,
            "distinct_id": identity,
            "properties": properties,
            "timestamp": self._clock.iso(timestamp),
            "uuid": uuid,
        }

    def _people(self, reserved: Mapping[str, Any], properties: dict[str, Any]) -> None:
        """``posthog.set.<name>`` and ``posthog.set_once.<name>`` to ``$set``/``$set_once``."""
        for prefix, target in ((SET_PREFIX, "$set"), (SET_ONCE_PREFIX, "$set_once")):
            values = {
                k[len(prefix) :]: v
                for k, v in reserved.items()
                if k.startswith(prefix) and not self._denied(k[len(prefix) :])
            }
            if values:
                properties[target] = {**properties.get(target, {}), **values}

    def _extra_properties(self, raw: Any) -> dict[str, Any]:
        try:
            decoded = json.loads(raw) if isinstance(raw, (str, bytes)) else None
        except ValueError as exc:
            raise InvalidTagError(f"{PROPERTIES} is not valid JSON: {exc}") from None
        if not isinstance(decoded, dict):
            raise InvalidTagError(f"{PROPERTIES} must be a JSON object string")
        return self._scrub(decoded)

    def _scrub(self, value: dict[str, Any]) -> dict[str, Any]:
        return {
            k: self._scrub(v) if isinstance(v, dict) else v
            for k, v in value.items()
            if not self._denied(k)
        }


def _identity_or_error(
    reserved: Sequence[Mapping[str, Any]], attrs: Sequence[Mapping[str, Any]]
) -> str | InvalidTagError | None:
    """Our tag (nearest first, inherited copies included), then ``enduser.id``/``user.id``;
    an unusable tag is returned as the error, for the events that would use it."""
    for tags in reserved:
        value = tags.get(DISTINCT_ID)
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                return InvalidTagError(f"{DISTINCT_ID} must be a non-empty string, got {value!r}")
            return value
    for source in attrs:
        for key in USER_ID_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _groups(reserved: Mapping[str, Any]) -> dict[str, str]:
    return {
        k[len(GROUPS_PREFIX) :]: str(v)
        for k, v in reserved.items()
        if k.startswith(GROUPS_PREFIX) and v is not None and v != ""
    }


def _session(reserved: Mapping[str, Any], attrs: Mapping[str, Any]) -> str | None:
    value = reserved.get(SESSION_ID) or attrs.get("session.id")
    return str(value) if value else None
