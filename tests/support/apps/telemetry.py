"""How the test apps meet OpenTelemetry, chosen by the harness through ``APP_TELEMETRY``.

``exporter``: nothing in code; ``opentelemetry-instrument`` builds the provider and
exports through ``OTEL_TRACES_EXPORTER=posthog``. ``processor``: the app adds our
``PostHogSpanProcessor`` to the provider, the one ``opentelemetry-instrument`` made if
it runs under it, else its own.

``APP_PROPAGATORS`` (``tracecontext,baggage,posthog``, or any of them): the app sets
that composite propagator in code with ``set_global_textmap``, as the README shows,
rather than through ``OTEL_PROPAGATORS``, which the SDK reads by itself.
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager, nullcontext

from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from posthog_otel import PostHogPropagator, PostHogSpanProcessor, capture, identify

PROPAGATORS = {
    "tracecontext": TraceContextTextMapPropagator,
    "baggage": W3CBaggagePropagator,
    "posthog": PostHogPropagator,
}


def set_up() -> None:
    """Add our processor and set the propagators if asked, and instrument outgoing
    ``requests`` calls (a no-op under ``opentelemetry-instrument``, which already did)."""
    if os.environ.get("APP_TELEMETRY", "exporter") == "processor":
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider(resource=Resource.create())  # reads OTEL_SERVICE_NAME
            trace.set_tracer_provider(provider)
        provider.add_span_processor(PostHogSpanProcessor())
    names = os.environ.get("APP_PROPAGATORS")
    if names:
        set_global_textmap(CompositePropagator([PROPAGATORS[n]() for n in names.split(",")]))
    RequestsInstrumentor().instrument()


def as_user(user: str | None) -> AbstractContextManager[None]:
    """``identify(user)`` when the request names one (``?user=``), after the server span
    started, as a handler would once it knows who is calling."""
    return identify(user) if user else nullcontext()


def also_capture(event: str | None, item: int) -> None:
    """``capture(event)`` when the request names one (``?capture=``): a span event on
    the server span, as a handler records what happened inside a request."""
    if event:
        capture(event, {"item": item})


def also_log(event: str | None, item: int) -> None:
    """Log a record tagged ``posthog.event = event`` (``?log=event``) through Python's
    ``logging``, as a handler writes a line about what it did; under
    ``OTEL_LOGS_EXPORTER=posthog`` it becomes an event with the request's identity."""
    if event:
        log = logging.getLogger("shop")
        log.setLevel(logging.INFO)
        log.info("item %d viewed", item, extra={"posthog.event": event, "item": item})


def downstream(path: str, query: str) -> None:
    """Call the same path on ``DOWNSTREAM_URL``, if set: two services in one trace."""
    url = os.environ.get("DOWNSTREAM_URL")
    if url:
        import requests

        requests.get(f"{url}{path}?{query}" if query else url + path, timeout=10).raise_for_status()
