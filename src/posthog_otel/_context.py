"""The user-facing context: ``capture()`` an event, ``identify()`` a user, the propagator.

What application code (and the browser's SDK, through headers) tells us about who and
which session the current work is for. It sits above ``_pipeline`` (it puts events
into the active pipeline, and names a request's root span) and nothing in
``_pipeline`` imports it; the flags use ``event_from_code`` and ``session_of``.

``event_from_code`` makes an event in code rather than from a span: ``capture()`` with
no recording span, and ``$feature_flag_called``.

``PostHogPropagator``: the tracing headers of PostHog's client SDKs, as baggage.
posthog-js (its ``tracing_headers`` option) sends ``X-POSTHOG-DISTINCT-ID``,
``X-POSTHOG-SESSION-ID`` and ``X-POSTHOG-WINDOW-ID`` on the requests a page makes to
its own backend. Extracted into baggage (``posthog.distinct_id``, ``posthog.session_id``,
``posthog.window_id``), they give every event of the request the browser's person,
session and window, so PostHog links the event to the session replay; injected on
outgoing requests, they carry the link to the services called next. It is the
``posthog`` entry point in ``opentelemetry_propagator``, so
``OTEL_PROPAGATORS=tracecontext,baggage,posthog`` turns it on with no code.

The headers never say whether the visitor is identified. posthog-js names an anonymous
visitor by an id it makes itself, a lowercase UUIDv7 (its ``$device_id`` too), and
replaces it with the app's id on ``identify``. So a distinct id header in that shape is
also kept as ``posthog.anonymous_id``, and an event of exactly that user is personless
(``$process_person_profile: false``), as posthog-js marks that visitor's own events under
``person_profiles: "identified_only"``; any other id is a person's, as before. The app
naming the user (``identify()``, ``capture(distinct_id=)``) ends it.

Values are read as PostHog's SDKs read them: control characters removed, whitespace
trimmed, cut to 1,000 characters; nothing left means the header is absent, and of
several values the first usable one counts. Only the first 8 KiB of a value and the
first 16 values of a header are read (``_limits``), so a hostile request costs little.
A header wins over a ``posthog.*`` entry already in the context (the ``baggage``
header, when ``baggage`` runs before us); ``identify()`` in the request's code wins
over both. Injection sends only a value the receiver would read unchanged (ASCII,
nothing to clean); any other still travels in the ``baggage`` header, percent-encoded.

These headers come from the client: they attribute events, they never authenticate.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from itertools import islice
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry.context import Context, attach, detach, get_current
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from posthog_otel import _otel
from posthog_otel._client.events import (
    check_distinct_id,
    check_event_name,
    check_properties,
    now_iso,
    uuid7,
)
from posthog_otel._json import dumps
from posthog_otel._limits import MAX_TRACING_HEADER_READ, MAX_TRACING_HEADER_VALUES
from posthog_otel._mapping.convention import (
    ANONYMOUS_ID,
    DISTINCT_ID,
    PROPERTIES,
    RESERVED_PREFIX,
    SESSION_ID,
    TAG,
    WINDOW_ID,
)
from posthog_otel._pipeline import pipeline
from posthog_otel._pipeline.spans import hold, request_root
from posthog_otel._version import LIB, __version__

__all__ = [
    "DISTINCT_ID_HEADER",
    "MAX_HEADER_LENGTH",
    "SESSION_ID_HEADER",
    "WINDOW_ID_HEADER",
    "PostHogPropagator",
    "capture",
    "clean_header_value",
    "event_from_code",
    "identify",
    "is_anonymous_id",
    "session_of",
]

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
        anonymous: str | None = ""  # the app named the user: a person's event
    else:
        distinct_id = _carried(DISTINCT_ID)
        anonymous = _carried(ANONYMOUS_ID)
    session_id = None if "$session_id" in props else _carried(SESSION_ID)
    window_id = None if "$window_id" in props else _carried(WINDOW_ID)
    span = trace.get_current_span()
    active = None
    if span.is_recording():
        attributes = _as_attributes(name, props, distinct_id, session_id)
        if window_id is not None:
            attributes[WINDOW_ID] = window_id
        if anonymous is not None:
            attributes[ANONYMOUS_ID] = anonymous
        if _has_room(span):
            span.add_event(name, attributes)
            return
        active = pipeline.active()
        if active is not None and hold(span, name, attributes):
            return
        if distinct_id is None:  # held too many: sent now, as the span knows the user now
            own = _otel.ACCESS.attributes(span).get(DISTINCT_ID)
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
    active.put(
        event_from_code(
            name,
            props,
            distinct_id,
            span.get_span_context(),
            session_id,
            window_id=window_id,
            anonymous_id=anonymous,
        )
    )


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
    carried = baggage.get_all(ctx)
    if carried.get(ANONYMOUS_ID):  # the app names the user now: nobody is anonymous here
        named[ANONYMOUS_ID] = ""
    _name_current_spans(named, carried)
    for key, value in named.items():
        ctx = baggage.set_baggage(key, value, ctx) if value else baggage.remove_baggage(key, ctx)
    token = attach(ctx)
    try:
        yield
    finally:
        detach(token)


def _has_room(span: trace.Span) -> bool:
    """Whether the span keeps one more event without dropping its oldest."""
    try:
        return _otel.ACCESS.event_room(span) > 0
    except Exception:  # noqa: BLE001 - not the SDK's span: add the event as before
        return True


def _name_current_spans(named: Mapping[str, str], carried: Mapping[str, object]) -> None:
    """Write ``named`` on the current span and its local root, over a value that came
    with the request (the one in baggage now) but never over one set in code."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    targets = [span]
    root = request_root(span)
    if root is not None and root is not span:
        targets.append(root)
    for target in targets:
        attrs = _otel.ACCESS.attributes(target)
        for key, value in named.items():
            present = attrs.get(key)
            if key == ANONYMOUS_ID:  # ended wherever the request's header set it
                if present:
                    target.set_attribute(key, value)
            elif present is None or (present != value and present == carried.get(key)):
                target.set_attribute(key, value)


def session_of(span: trace.Span) -> str | None:
    """The session an event made now belongs to: the span's ``posthog.session_id`` if it
    is recording, else the current baggage's (``identify()``, or PostHog's headers)."""
    session = _otel.ACCESS.attributes(span).get(SESSION_ID) if span.is_recording() else None
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


DISTINCT_ID_HEADER = "X-POSTHOG-DISTINCT-ID"
SESSION_ID_HEADER = "X-POSTHOG-SESSION-ID"
WINDOW_ID_HEADER = "X-POSTHOG-WINDOW-ID"
MAX_HEADER_LENGTH = 1000
_HEADERS = (
    (DISTINCT_ID_HEADER, DISTINCT_ID),
    (SESSION_ID_HEADER, SESSION_ID),
    (WINDOW_ID_HEADER, WINDOW_ID),
)
# posthog-js's own id for an anonymous visitor: uuidv7() as its toString() writes it
# (8-4-4-4-12 lowercase hex, version 7, RFC 9562 variant), unless the app's
# get_device_id or bootstrap chose another.
_ANONYMOUS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# C0, DEL and C1, as PostHog's SDKs strip; and lone surrogates, which no header can carry
# and which would make the W3C baggage propagator raise on the way out.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def is_anonymous_id(distinct_id: str) -> bool:
    """Whether ``distinct_id`` is in the shape posthog-js gives an anonymous visitor."""
    return len(distinct_id) == 36 and _ANONYMOUS.fullmatch(distinct_id) is not None


def clean_header_value(value: object) -> str | None:
    """A tracing header's value as PostHog's SDKs keep it, or ``None`` when nothing is
    left (control characters and lone surrogates removed, whitespace trimmed, at most
    1,000 characters)."""
    if not isinstance(value, str):
        return None
    return _CONTROL.sub("", value[:MAX_TRACING_HEADER_READ]).strip()[:MAX_HEADER_LENGTH] or None


class PostHogPropagator(TextMapPropagator):
    """Reads and writes ``X-POSTHOG-DISTINCT-ID``, ``X-POSTHOG-SESSION-ID`` and
    ``X-POSTHOG-WINDOW-ID`` as the baggage entries ``posthog.distinct_id``,
    ``posthog.session_id`` and ``posthog.window_id`` (and a distinct id posthog-js made
    for an anonymous visitor also as ``posthog.anonymous_id``).

    Use it beside the W3C propagators: ``OTEL_PROPAGATORS=tracecontext,baggage,posthog``,
    or ``set_global_textmap(CompositePropagator([..., PostHogPropagator()]))``. Neither
    hook ever raises into a request.
    """

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        """The context with the headers' values in baggage (unchanged when absent)."""
        if context is None:
            context = get_current()
        try:
            for header, key in _HEADERS:
                value = _first_usable(getter, carrier, header)
                if value is not None:
                    context = baggage.set_baggage(key, value, context)
                    if key == DISTINCT_ID:  # this header says who: anonymous, or not
                        context = (
                            baggage.set_baggage(ANONYMOUS_ID, value, context)
                            if is_anonymous_id(value)
                            else baggage.remove_baggage(ANONYMOUS_ID, context)
                        )
        except Exception:  # a getter that fails must not fail the request
            logger.debug("posthog-otel could not read the PostHog headers", exc_info=True)
        return context

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        """Write the headers from the context's baggage, each only if it can go as is."""
        try:
            entries = baggage.get_all(context)
            if not entries:
                return
            for header, key in _HEADERS:
                value = entries.get(key)
                if isinstance(value, str) and _sendable(value):
                    setter.set(carrier, header, value)
        except Exception:  # a setter that fails must not fail the outgoing request
            logger.debug("posthog-otel could not write the PostHog headers", exc_info=True)

    @property
    def fields(self) -> set[str]:
        """The headers ``inject`` may set."""
        return {DISTINCT_ID_HEADER, SESSION_ID_HEADER, WINDOW_ID_HEADER}

    def __repr__(self) -> str:
        return "PostHogPropagator()"


def _first_usable(getter: Getter[CarrierT], carrier: CarrierT, header: str) -> str | None:
    """The first value of ``header`` that is not empty once cleaned. Framework getters
    match names in any case; a plain dict is tried as PostHog spells it, then lower."""
    values: Iterable[str] | str | None = getter.get(carrier, header)
    if values is None:
        values = getter.get(carrier, header.lower())
        if values is None:
            return None
    if isinstance(values, str):  # a getter that returns one string, not a list
        values = (values,)
    for value in islice(values, MAX_TRACING_HEADER_VALUES):
        cleaned = clean_header_value(value)
        if cleaned is not None:
            return cleaned
    return None


def _sendable(value: str) -> bool:
    """Whether a receiver (ours or PostHog's SDKs) would read ``value`` unchanged, and
    every HTTP client can send it (ASCII)."""
    return value.isascii() and clean_header_value(value) == value


def event_from_code(
    name: str,
    props: dict[str, Any],
    distinct_id: str | None,
    span_context: trace.SpanContext,
    session_id: str | None = None,
    *,
    window_id: str | None = None,
    anonymous_id: str | None = None,
) -> dict[str, Any]:
    """An event in PostHog's shape: ``$lib``, the trace it happened in, the session
    (``$session_id``, ``$window_id``), and a personless id when nobody is known; the
    event of an ``anonymous_id`` visitor (posthog-js's own id) is personless too."""
    properties = {**props, "$lib": LIB, "$lib_version": __version__}
    if session_id:
        properties["$session_id"] = session_id
    if window_id:
        properties["$window_id"] = window_id
    trace_hex = None
    if span_context.is_valid:
        trace_hex = trace.format_trace_id(span_context.trace_id)
        properties["$trace_id"] = trace_hex
        properties["$span_id"] = trace.format_span_id(span_context.span_id)
    if distinct_id is None:
        distinct_id = trace_hex or str(uuid7())
        properties["$process_person_profile"] = False
    elif anonymous_id and distinct_id == anonymous_id:
        properties.setdefault("$process_person_profile", False)
    return {
        "event": name,
        "distinct_id": distinct_id,
        "properties": properties,
        "timestamp": now_iso(),
        "uuid": str(uuid7()),
    }
