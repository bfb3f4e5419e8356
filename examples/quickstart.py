"""Quickstart: send events and read a flag, then show what PostHog stored.

With no POSTHOG_API_KEY set, it starts the bundled local PostHog-compatible server
and prints what that server stored. With POSTHOG_API_KEY (and POSTHOG_HOST) set,
it sends to that PostHog project instead.
"""

from __future__ import annotations

import os

from posthog_otel import PostHogClient
from posthog_otel.devserver import DevServer

FLAGS = {"new-checkout": {"rollout_percentage": 50, "payload": {"button": "green"}}}


def main() -> None:
    server = None
    if os.environ.get("POSTHOG_API_KEY"):
        client = PostHogClient.from_env()
        print(f"Sending to your PostHog project at {client.host}")
    else:
        server = DevServer(flags=FLAGS).start()
        client = PostHogClient("phc_quickstart", server.url)
        print(f"No POSTHOG_API_KEY set: using a local PostHog-compatible server at {server.url}")

    with client:
        client.capture("signed_up", "user-42", {"plan": "pro", "referrer": "newsletter"})
        flag = client.feature_flag("new-checkout", "user-42")
        checkout = "new" if flag is not None and flag.enabled else "classic"
        client.batch(
            [
                ("viewed_cart", "user-42", {"items": 3, "checkout": checkout}),
                ("purchased", "user-42", {"total": 59.90, "checkout": checkout}),
            ]
        )

    if server is None:
        print("Done: open your PostHog project's activity page to see the events.")
        return
    print(f"\n{'event':<22} {'distinct_id':<12} properties")
    for event in reversed(server.events()):
        props = {k: v for k, v in event["properties"].items() if not k.startswith("$lib")}
        print(f"{event['event']:<22} {event['distinct_id']:<12} {props}")
    server.stop()


if __name__ == "__main__":
    main()
