"""An app with no OpenTelemetry SDK setup and no posthog-otel setup: just tags.

Run it with auto-instrumentation (pip install opentelemetry-distro):

    OTEL_TRACES_EXPORTER=posthog POSTHOG_API_KEY=phc_... POSTHOG_HOST=... \\
        opentelemetry-instrument python examples/auto_instrumented_app.py
"""

from __future__ import annotations

from opentelemetry import trace

from posthog_otel import capture, identify

tracer = trace.get_tracer("billing")


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


if __name__ == "__main__":
    for user in ("user-7", "user-8"):
        renew_subscription(user)
    print("renewed 2 subscriptions")
