"""How the test apps meet OpenTelemetry, chosen by the harness through ``APP_TELEMETRY``.

``exporter``: nothing in code; ``opentelemetry-instrument`` builds the provider and
exports through ``OTEL_TRACES_EXPORTER=posthog``. ``processor``: the app adds our
``PostHogSpanProcessor`` to the provider, the one ``opentelemetry-instrument`` made if
it runs under it, else its own.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

from opentelemetry import trace
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import PostHogSpanProcessor, identify


def set_up() -> None:
    """Add our processor if asked, and instrument outgoing ``requests`` calls (a no-op
    under ``opentelemetry-instrument``, which already did)."""
    if os.environ.get("APP_TELEMETRY", "exporter") == "processor":
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider(resource=Resource.create())  # reads OTEL_SERVICE_NAME
            trace.set_tracer_provider(provider)
        provider.add_span_processor(PostHogSpanProcessor())
    RequestsInstrumentor().instrument()


def as_user(user: str | None) -> AbstractContextManager[None]:
    """``identify(user)`` when the request names one (``?user=``), after the server span
    started, as a handler would once it knows who is calling."""
    return identify(user) if user else nullcontext()


def downstream(path: str, query: str) -> None:
    """Call the same path on ``DOWNSTREAM_URL``, if set: two services in one trace."""
    url = os.environ.get("DOWNSTREAM_URL")
    if url:
        import requests

        requests.get(f"{url}{path}?{query}" if query else url + path, timeout=10).raise_for_status()
