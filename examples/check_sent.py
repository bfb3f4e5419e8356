"""For the apps run under ``opentelemetry-instrument``: fail loudly when nothing can be sent.

Under auto-instrumentation a missing ``POSTHOG_API_KEY`` is only a log line from the SDK
(it cannot build our exporter) and the app runs on, sending nothing; a dropped event is a
warning from the ``posthog_otel`` logger. These two checks turn both into an exit status:
2 when the settings are missing, 1 when events were not delivered.
"""

from __future__ import annotations

import logging
import os
import sys

from opentelemetry import trace
from opentelemetry._logs import get_logger_provider

SETTINGS = ("POSTHOG_API_KEY", "POSTHOG_HOST")


class _Losses(logging.Handler):
    """Counts posthog-otel's warnings: each says events were dropped, and why."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_losses = _Losses()


def require_posthog_settings() -> None:
    """Exit 2, naming what to set, unless POSTHOG_API_KEY and POSTHOG_HOST are set."""
    missing = [name for name in SETTINGS if not os.environ.get(name)]
    if missing:
        print(
            f"{' and '.join(missing)} not set: nothing would be sent. Set POSTHOG_API_KEY and "
            "POSTHOG_HOST to your project's, or to a local server started with "
            "`.venv/bin/posthog-otel devserver --port 8010`: "
            "POSTHOG_API_KEY=phc_test POSTHOG_HOST=http://127.0.0.1:8010",
            file=sys.stderr,
        )
        sys.exit(2)
    logging.getLogger("posthog_otel").addHandler(_losses)


def exit_unless_sent() -> None:
    """Flush what the SDK's providers hold; exit 1 if nothing could send, or events dropped."""
    flushed = []
    for provider in (trace.get_tracer_provider(), get_logger_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            flushed.append(force_flush() is not False)
    if not flushed:
        print(
            "no OpenTelemetry SDK is set up, so nothing was sent: run this under "
            "opentelemetry-instrument with OTEL_TRACES_EXPORTER=posthog",
            file=sys.stderr,
        )
        sys.exit(1)
    if not all(flushed) or _losses.messages:
        print("not everything was delivered:", *_losses.messages, sep="\n  ", file=sys.stderr)
        sys.exit(1)
