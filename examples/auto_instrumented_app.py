"""An app with no OpenTelemetry SDK setup and no posthog-otel setup: just tags.

Run it with auto-instrumentation (pip install opentelemetry-distro; for the log
record, also opentelemetry-instrumentation-logging and OTEL_LOGS_EXPORTER=posthog):

    OTEL_TRACES_EXPORTER=posthog POSTHOG_API_KEY=phc_... POSTHOG_HOST=... \\
        opentelemetry-instrument python examples/auto_instrumented_app.py
"""

from __future__ import annotations

import logging

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
    for user in ("user-7", "user-8"):
        renew_subscription(user)
    print("renewed 2 subscriptions")
