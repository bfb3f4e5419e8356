"""Helpers for application code: ``capture()`` an event, ``identify()`` a user."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry.context import attach, detach

from posthog_otel import _otel
from posthog_otel._client.events import check_distinct_id, check_event_name, check_properties
from posthog_otel._json import dumps
from posthog_otel._mapping.captured import captured_event
from posthog_otel._mapping.convention import DISTINCT_ID, PROPERTIES, RESERVED_PREFIX, TAG
from posthog_otel._pipeline import pipeline

__all__ = ["capture", "identify"]

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

    Nested values survive (through the ``posthog.properties`` attribute). With no
    recording span (no tracer provider, or the trace was sampled out) the event
    goes straight to the most recently started ``PostHogSpanProcessor``: product
    analytics are not sampled away with traces. The user is ``distinct_id``, or
    the one ``identify()`` put in baggage, or the span's.

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
        carried = baggage.get_baggage(DISTINCT_ID)
        distinct_id = carried if isinstance(carried, str) and carried else None
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, _as_attributes(name, props, distinct_id))
        return
    active = pipeline.active()
    if active is None:
        if not _warned.is_set():
            _warned.set()
            logger.warning(
                "posthog-otel: capture(%r) was dropped: there is no recording span and no "
                "PostHogSpanProcessor has been started (further drops are not logged)",
                name,
            )
        return
    active.put(captured_event(name, props, distinct_id, span.get_span_context()))


@contextmanager
def identify(distinct_id: str) -> Iterator[None]:
    """Attribute everything inside to ``distinct_id``: the span you are in, the request
    it belongs to, the spans started here, and the services you call.

    On entry the id is written on the current span and on its local root (the span
    that began this trace in this process: a request's server span) unless they carry
    one already, so an event tagged on them afterwards is the user's. It also travels
    in W3C baggage (``posthog.distinct_id``): spans started inside inherit it, and
    instrumented HTTP clients carry it to other services. Baggage is visible to every
    service and in outgoing headers: use an identifier, never anything secret.
    """
    check_distinct_id(distinct_id)
    _name_current_spans(distinct_id)
    token = attach(baggage.set_baggage(DISTINCT_ID, distinct_id))
    try:
        yield
    finally:
        detach(token)


def _name_current_spans(distinct_id: str) -> None:
    span = trace.get_current_span()
    if not span.is_recording():
        return
    targets = [span]
    active = pipeline.active()
    if active is not None:
        root = active.roots.root_of(span.get_span_context().trace_id)
        if root is not None and root is not span and root.is_recording():
            targets.append(root)
    for target in targets:
        if DISTINCT_ID not in _otel.attributes_of(target):
            target.set_attribute(DISTINCT_ID, distinct_id)


def _as_attributes(name: str, props: Mapping[str, Any], distinct_id: str | None) -> dict[str, Any]:
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
    return attributes


def _is_attribute_value(value: Any) -> bool:
    """What every OpenTelemetry SDK keeps as an attribute: a primitive or a uniform list."""
    if isinstance(value, _PRIMITIVES):
        return True
    if isinstance(value, list) and value:
        kind = type(value[0])
        return kind in _PRIMITIVES and all(type(v) is kind for v in value)
    return False
