"""An app with no OpenTelemetry SDK setup and no posthog-otel setup: just tags.

Run it with auto-instrumentation (``python3 dev.py quickstart`` installs what it needs
into .venv: opentelemetry-distro, and for the log record opentelemetry-instrumentation-logging
with OTEL_LOGS_EXPORTER=posthog):

    OTEL_TRACES_EXPORTER=posthog OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \\
        POSTHOG_API_KEY=phc_... POSTHOG_HOST=... \\
        .venv/bin/opentelemetry-instrument .venv/bin/python examples/auto_instrumented_app.py

It exits 2 when POSTHOG_API_KEY or POSTHOG_HOST is missing, 1 when events were not sent.
"""

from __future__ import annotations

import logging

from check_sent import exit_unless_sent, require_posthog_settings
from opentelemetry import trace

from posthog_otel import capture, identify

tracer = trace.get_tracer("billing")
log = logging.getLogger("billing")
log.setLevel(logging.INFO)  # records below a logger's level reach no handler


def renew_subscription(user_id: str) -> None:
    with (
        identify(user_id),
        tracer.start_as_current_span(
            "renew_subscription",
            attributes={
                "posthog.event": "subscription_renewed",
                "posthog.distinct_id": user_id,
                "plan": "pro",
            },
        ),
    ):
        capture("invoice_sent", {"amount": 49, "currency": "EUR"})  # the user comes from identify()
        tags = {"posthog.event": "renewal_logged", "posthog.distinct_id": user_id}
        log.info("renewed %s", user_id, extra=tags)


if __name__ == "__main__":
    require_posthog_settings()
    for user in ("user-7", "user-8"):
        renew_subscription(user)
    exit_unless_sent()
    print("renewed 2 subscriptions")
