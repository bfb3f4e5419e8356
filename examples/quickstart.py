"""Quickstart: your spans become PostHog events, and you see exactly what PostHog stores.

With no POSTHOG_API_KEY set it starts the bundled PostHog-compatible server on a free
port and prints what that server stored. With POSTHOG_API_KEY and POSTHOG_HOST set it
sends to your PostHog project instead.

    python examples/quickstart.py           # run, print, exit
    python examples/quickstart.py --serve   # then keep the server up to browse the events
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from posthog_otel import (
    PostHogClient,
    PostHogFlagProvider,
    PostHogSpanProcessor,
    capture,
    identify,
)
from posthog_otel.devserver import DevServer

FLAGS_FILE = Path(__file__).resolve().parent / "flags.json"


class CardDeclinedError(Exception):
    pass


def checkout(tracer, flags: PostHogFlagProvider, user_id: str) -> None:
    """One request: a tagged server span, a flag that changes the flow, an event, an error."""
    with (
        identify(user_id),
        tracer.start_as_current_span(
            "POST /checkout",
            kind=SpanKind.SERVER,
            attributes={
                "posthog.event": "checkout_completed",
                "url.path": "/checkout",
                "cart.items": 2,
            },
        ) as span,
    ):
        variant = flags.get_flag("new-checkout")
        one_click = variant is not None and variant.enabled == "one-click"
        steps = 1 if one_click else 3  # the flag changes what the user goes through
        capture(
            "cart_reviewed",
            {
                "steps": steps,
                "items": [{"sku": "TEE-1", "qty": 2}],
                "total": {"amount": 59.9, "currency": "EUR"},
            },
        )
        try:
            if not flags.is_enabled("free-shipping"):
                raise CardDeclinedError("card declined, retried with the saved card")
        except CardDeclinedError as exc:
            span.record_exception(exc)  # handled: the request still succeeds


def main() -> None:
    server = None
    if os.environ.get("POSTHOG_API_KEY"):
        client = PostHogClient.from_env()
        print(f"Sending to your PostHog project at {client.host}")
    else:
        server = DevServer(flags=FLAGS_FILE).start()
        client = PostHogClient("phc_quickstart", server.url)
        print(f"No POSTHOG_API_KEY set: using the local PostHog-compatible server at {server.url}")

    provider = TracerProvider(resource=Resource.create({"service.name": "quickstart-shop"}))
    processor = PostHogSpanProcessor(client, capture_exceptions=True)
    provider.add_span_processor(processor)
    flags = PostHogFlagProvider(client, processor=processor)
    tracer = provider.get_tracer("quickstart")

    for user_id in ("bob", "carol"):  # PostHog's hash puts them in different variants
        checkout(tracer, flags, user_id)
    provider.shutdown()  # delivers everything queued
    stats = processor.stats()
    print(f"Sent {stats.events_sent} events, dropped {stats.dropped_total}.\n")

    if server is None:
        print("Open your PostHog project's Activity page to see them.")
        client.close()
        return
    show(server.url)
    client.close()
    if "--serve" in sys.argv:
        print(f"\nBrowse them at {server.url}/ (Ctrl-C to stop)")
        server.serve_forever()
    server.stop()


def show(url: str) -> None:
    """What the server stored, read back through its events API, oldest first."""
    with urllib.request.urlopen(url + "/api/events?limit=100") as response:
        events = list(reversed(json.loads(response.read())))
    print(f"{'event':<22} {'distinct_id':<12} {'properties':<52} flags")
    for event in events:
        props = event["properties"]
        flags = ", ".join(f"{k[9:]}={v}" for k, v in props.items() if k.startswith("$feature/"))
        print(f"{event['event']:<22} {event['distinct_id']:<12} {summary(event):<52} {flags}")
    print(f"\n{len(events)} events stored; each carries $trace_id, $span_id and $lib too.")


def summary(event: dict) -> str:
    props = event["properties"]
    if event["event"] == "$exception":
        first = props["$exception_list"][0]
        handled = "handled" if first["mechanism"]["handled"] else "unhandled"
        return f"{first['type']}: {first['value'][:24]} ({handled})"
    if event["event"] == "$feature_flag_called":
        return f"{props['$feature_flag']} -> {props['$feature_flag_response']}"
    shown = {k: v for k, v in props.items() if not k.startswith("$") and k != "service.name"}
    text = ", ".join(f"{k}={json.dumps(v)}" for k, v in shown.items())
    return text if len(text) <= 52 else text[:49] + "..."


if __name__ == "__main__":
    main()
