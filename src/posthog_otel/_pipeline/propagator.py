"""``PostHogPropagator``: the tracing headers of PostHog's client SDKs, as baggage.

posthog-js (its ``tracing_headers`` option) sends ``X-POSTHOG-DISTINCT-ID`` and
``X-POSTHOG-SESSION-ID`` on the requests a page makes to its own backend. Extracted
into baggage (``posthog.distinct_id``, ``posthog.session_id``), they give every event
of the request the browser's person and session, so PostHog links the event to the
session replay; injected on outgoing requests, they carry the link to the services
called next. It is the ``posthog`` entry point in ``opentelemetry_propagator``, so
``OTEL_PROPAGATORS=tracecontext,baggage,posthog`` turns it on with no code.

Values are read as PostHog's SDKs read them: control characters removed, whitespace
trimmed, cut to 1,000 characters; nothing left means the header is absent, and of
several values the first usable one counts. Only the first 8 KiB of a value and the
first 16 values of a header are read (``_limits``), so a hostile request costs little.
A header wins over a ``posthog.*`` entry already in the context (the ``baggage``
header, when ``baggage`` runs before us); ``identify()`` in the request's code wins
over both (see ``context``). Injection sends only a value the receiver would read
unchanged (ASCII, nothing to clean); any other still travels in the ``baggage``
header, percent-encoded.

These headers come from the client: they attribute events, they never authenticate.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from itertools import islice

from opentelemetry import baggage
from opentelemetry.context import Context, get_current
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from posthog_otel._limits import MAX_TRACING_HEADER_READ, MAX_TRACING_HEADER_VALUES
from posthog_otel._mapping.convention import DISTINCT_ID, SESSION_ID

__all__ = [
    "DISTINCT_ID_HEADER",
    "MAX_HEADER_LENGTH",
    "SESSION_ID_HEADER",
    "PostHogPropagator",
    "clean_header_value",
]

logger = logging.getLogger(__name__)

DISTINCT_ID_HEADER = "X-POSTHOG-DISTINCT-ID"
SESSION_ID_HEADER = "X-POSTHOG-SESSION-ID"
MAX_HEADER_LENGTH = 1000
_HEADERS = ((DISTINCT_ID_HEADER, DISTINCT_ID), (SESSION_ID_HEADER, SESSION_ID))
# C0, DEL and C1, as PostHog's SDKs strip; and lone surrogates, which no header can carry
# and which would make the W3C baggage propagator raise on the way out.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_header_value(value: object) -> str | None:
    """A tracing header's value as PostHog's SDKs keep it, or ``None`` when nothing is
    left (control characters and lone surrogates removed, whitespace trimmed, at most
    1,000 characters)."""
    if not isinstance(value, str):
        return None
    return _CONTROL.sub("", value[:MAX_TRACING_HEADER_READ]).strip()[:MAX_HEADER_LENGTH] or None


class PostHogPropagator(TextMapPropagator):
    """Reads and writes ``X-POSTHOG-DISTINCT-ID`` and ``X-POSTHOG-SESSION-ID`` as the
    baggage entries ``posthog.distinct_id`` and ``posthog.session_id``.

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
        return {DISTINCT_ID_HEADER, SESSION_ID_HEADER}

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
