"""Feature flags that change behaviour, show on the trace, and attribute later events.

python examples/feature_flags.py
"""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import PostHogClient, PostHogFlagProvider, PostHogSpanProcessor, capture, identify
from posthog_otel.devserver import DevServer

FLAGS = {
    "new-checkout": {
        "variants": {"control": 50, "one-click": 50},
        "payloads": {"one-click": {"button": "Buy now"}},
    },
    "free-shipping": {"rollout_percentage": 30},
}


def handle_checkout(flags: PostHogFlagProvider, tracer, user_id: str) -> str:
    with identify(user_id), tracer.start_as_current_span("POST /checkout"):
        variant = flags.get_flag("new-checkout")  # the user comes from identify()
        shipping = 0 if flags.is_enabled("free-shipping") else 5
        button = (flags.get_payload("new-checkout") or {}).get("button", "Place order")
        capture("order_placed", {"shipping": shipping, "button": button})
        shown = variant.enabled if variant else "off"
        return f"{user_id}: {shown}, shipping {shipping}, button {button!r}"


def main() -> None:
    with DevServer(flags=FLAGS) as server:
        client = PostHogClient("phc_example", server.url)
        provider = TracerProvider()
        processor = PostHogSpanProcessor(client)
        provider.add_span_processor(processor)
        flags = PostHogFlagProvider(client, processor=processor)
        tracer = provider.get_tracer("shop")
        for user_id in ("user-1", "user-2", "user-3", "user-1"):
            print(handle_checkout(flags, tracer, user_id))
        provider.shutdown()

        print()
        for event in reversed(server.events("order_placed")):
            props = event["properties"]
            seen = {k: v for k, v in props.items() if k.startswith("$feature/")}
            print(f"order_placed by {event['distinct_id']}: {seen}")
        print(f"$feature_flag_called events: {len(server.events('$feature_flag_called'))}")
        print(f"flag requests to PostHog: {len(server.requests.matching('/decide'))}")


if __name__ == "__main__":
    main()
