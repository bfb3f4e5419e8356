"""Helpers for application code: ``capture()`` an event, ``identify()`` a user."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry.context import attach, detach, get_current

from posthog_otel import _otel
from posthog_otel._client.events import check_distinct_id, check_event_name, check_properties
from posthog_otel._json import dumps
from posthog_otel._mapping.captured import captured_event, hold
from posthog_otel._mapping.convention import (
    DISTINCT_ID,
    PROPERTIES,
    RESERVED_PREFIX,
    SESSION_ID,
    TAG,
)
from posthog_otel._pipeline import pipeline
from posthog_otel._pipeline.roots import root_of

__all__ = ["capture", "identify", "session_of"]

logger = logging.getLogger(__name__)
_warned = threading.Event()
_PRIMITIVES = (str, bool, int, float)


def capture(
    event: str | Enum,
    properties: Mapping[str, Any] | None = None,
    *,
    distinct_id: str | None = None,
) -> None:
    """Record a PostHog event on the current span; it is sent when the span ends.

    Nested values survive (through the ``posthog.properties`` attribute). A span
    whose event limit (``SpanLimits.max_events``, 128 by default) is reached takes
    no more events: the capture is held aside and sent with the span all the same
    (see ``captured``). With no recording span (no tracer provider, or the trace
    was sampled out) the event goes straight to the most recently started
    ``PostHogSpanProcessor``: product analytics are not sampled away with traces.
    The user is ``distinct_id``, or
    the one in baggage (``identify()``'s, or the request's PostHog header), or the
    span's; the session is baggage's, unless ``properties`` name a ``$session_id``.

    Raises ``TypeError``/``ValueError`` for a bad name, id or property value, and
    ``ValueError`` for a property named ``posthog.*`` (those keys are reserved).
    """
    name = check_event_name(event)
    props = check_properties(properties)
    for key in props:
        if key.startswith(RESERVED_PREFIX):
            raise ValueError(
                f"property {key!r} is reserved: keys starting {RESERVED_PREFIX!r} steer the "
                "mapping and are never sent (pass distinct_id= for the user, or rename it)"
            )
    if distinct_id is not None:
        check_distinct_id(distinct_id)
    else:
        distinct_id = _carried(DISTINCT_ID)
    session_id = None if "$session_id" in props else _carried(SESSION_ID)
    span = trace.get_current_span()
    active = None
    if span.is_recording():
        attributes = _as_attributes(name, props, distinct_id, session_id)
        if _has_room(span):
            span.add_event(name, attributes)
            return
        active = pipeline.active()
        if active is not None and hold(span, name, attributes):
            return
        if distinct_id is None:  # held too many: sent now, as the span knows the user now
            own = _otel.attributes_of(span).get(DISTINCT_ID)
            distinct_id = own if isinstance(own, str) and own else None
    active = active or pipeline.active()
    if active is None:
        if not _warned.is_set():
            _warned.set()
            logger.warning(
                "posthog-otel: capture(%r) was dropped: there is no recording span and no "
                "PostHogSpanProcessor has been started (further drops are not logged)",
                name,
            )
        return
    active.put(captured_event(name, props, distinct_id, span.get_span_context(), session_id))


@contextmanager
def identify(distinct_id: str, session_id: str | None = None) -> Iterator[None]:
    """Attribute everything inside to ``distinct_id`` (and ``session_id``, if given):
    the span you are in, the request it belongs to, the spans started here, and the
    services you call.

    On entry the ids are written on the current span and on the span that began the
    request in this process (a server or consumer span, or one continuing a remote
    trace: see ``roots``), so an event
    tagged on them afterwards is the user's. They replace what the request brought
    in (the PostHog headers, or baggage from upstream) but not a value your code set
    on the span itself. They also travel in W3C baggage (``posthog.distinct_id``,
    ``posthog.session_id``): spans started inside inherit them, and instrumented HTTP
    clients carry them to other services. Baggage is visible to every service and in
    outgoing headers: use identifiers, never anything secret.

    Raises ``TypeError``/``ValueError`` for an id that is not a non-empty string.
    """
    named = {DISTINCT_ID: check_distinct_id(distinct_id)}
    if session_id is not None:
        named[SESSION_ID] = check_distinct_id(session_id, "session_id")
    ctx = get_current()
    _name_current_spans(named, baggage.get_all(ctx))
    for key, value in named.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = attach(ctx)
    try:
        yield
    finally:
        detach(token)


def _has_room(span: trace.Span) -> bool:
    """Whether the span keeps one more event without dropping its oldest."""
    try:
        return _otel.event_room(span) > 0
    except Exception:  # noqa: BLE001 - not the SDK's span: add the event as before
        return True


def _name_current_spans(named: Mapping[str, str], carried: Mapping[str, object]) -> None:
    """Write ``named`` on the current span and its local root, over a value that came
    with the request (the one in baggage now) but never over one set in code."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    targets = [span]
    root = root_of(span)
    if root is not None and root is not span:
        targets.append(root)
    for target in targets:
        attrs = _otel.attributes_of(target)
        for key, value in named.items():
            present = attrs.get(key)
            if present is None or (present != value and present == carried.get(key)):
                target.set_attribute(key, value)


def session_of(span: trace.Span) -> str | None:
    """The session an event made now belongs to: the span's ``posthog.session_id`` if it
    is recording, else the current baggage's (``identify()``, or PostHog's headers)."""
    session = _otel.attributes_of(span).get(SESSION_ID) if span.is_recording() else None
    if isinstance(session, str) and session:
        return session
    return _carried(SESSION_ID)


def _carried(key: str) -> str | None:
    """A ``posthog.*`` baggage entry of the current context, if it is a usable string."""
    value = baggage.get_baggage(key)
    return value if isinstance(value, str) and value else None


def _as_attributes(
    name: str, props: Mapping[str, Any], distinct_id: str | None, session_id: str | None
) -> dict[str, Any]:
    attributes: dict[str, Any] = {TAG: name}
    nested: dict[str, Any] = {}
    for key, value in props.items():
        if _is_attribute_value(value):
            attributes[key] = value
        else:
            nested[key] = value
    if nested:
        attributes[PROPERTIES] = dumps(nested).decode()
    if distinct_id is not None:
        attributes[DISTINCT_ID] = distinct_id
    if session_id is not None:
        attributes[SESSION_ID] = session_id
    return attributes


def _is_attribute_value(value: Any) -> bool:
    """What every OpenTelemetry SDK keeps as an attribute: a primitive or a uniform list."""
    if isinstance(value, _PRIMITIVES):
        return True
    if isinstance(value, list) and value:
        kind = type(value[0])
        return kind in _PRIMITIVES and all(type(v) is kind for v in value)
    return False
