"""Tagged spans, span events, identity and exceptions, sent to the local devserver.

python examples/span_pipeline.py
"""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import PostHogClient, PostHogSpanProcessor, capture, identify
from posthog_otel.devserver import DevServer


def checkout(tracer, user_id: str) -> None:
    """A request handler: one tagged span, a captured event, a handled error."""
    with (
        identify(user_id),
        tracer.start_as_current_span(
            "POST /checkout",
            attributes={
                "posthog.event": "checkout_completed",
                "cart.items": 3,
                "posthog.set.plan": "pro",
            },
        ) as span,
    ):
        capture("coupon_applied", {"code": "SPRING", "discount": {"percent": 10}})
        try:
            raise TimeoutError("payment provider slow, retried")
        except TimeoutError as exc:
            span.record_exception(exc)


def main() -> None:
    with DevServer() as server:
        provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
        processor = PostHogSpanProcessor(
            PostHogClient("phc_example", server.url), capture_exceptions=True
        )
        provider.add_span_processor(processor)
        checkout(provider.get_tracer("shop"), "user-42")
        provider.shutdown()  # delivers everything queued

        for event in reversed(server.events()):
            props = event["properties"]
            detail = {
                k: v for k, v in props.items() if not k.startswith("$") and k != "service.name"
            }
            if event["event"] == "$exception":
                first = props["$exception_list"][0]
                detail = {
                    "type": first["type"],
                    "value": first["value"],
                    "handled": first["mechanism"]["handled"],
                }
            print(f"{event['event']:<20} {event['distinct_id']:<10} {detail}")
        print(processor.stats())


if __name__ == "__main__":
    main()
