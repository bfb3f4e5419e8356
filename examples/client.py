"""The low-level PostHogClient, used the way PostHog's Elixir Posthog.Client documents it.

python examples/client.py
"""

from __future__ import annotations

from datetime import datetime, timezone

from posthog_otel import APIError, Event, PostHogClient
from posthog_otel.devserver import DevServer

FLAGS = {
    "new-dashboard": {"payload": True},
    "pricing-test": {
        "variants": {"variant-a": 100},
        "payloads": {"variant-a": {"price": 99, "period": "monthly"}},
    },
    "team-tools": {"group_type": "team"},
}


def main() -> None:
    with DevServer(flags=FLAGS) as server, PostHogClient("phc_example", server.url) as client:
        # Capture an event
        client.capture("page_view", "user_123")
        # Event with properties and timestamp
        client.capture(
            "purchase",
            "user_123",
            {"product_id": "123", "price": 99.99},
            timestamp=datetime.now(timezone.utc),
        )
        # Event with custom headers
        client.capture("login", "user_123", headers={"X-Forwarded-For": "127.0.0.1"})
        # Send batch events (tuples as in the reference, or Event values with groups and uuids)
        client.batch(
            [
                ("page_view", "user_123", {}),
                Event("click", "user_123", {"button": "signup"}, groups={"team": "growth"}),
            ],
            timestamp=datetime.now(timezone.utc),
        )
        # Get feature flags
        answer = client.feature_flags("user_123", groups={"team": "engineering"})
        print("feature_flags:", answer.feature_flags)
        # One feature flag (also reports $feature_flag_called, once)
        print("new-dashboard:", client.feature_flag("new-dashboard", "user_123"))
        pricing = client.feature_flag("pricing-test", "user_123")
        print(f"pricing-test: enabled={pricing.enabled!r} payload={pricing.payload!r}")
        # Failures raise typed errors
        server.faults.respond(401)
        try:
            client.capture("page_view", "user_123")
        except APIError as exc:
            print(f"APIError: status {exc.status}")

        print("stored:", [e["event"] for e in reversed(server.events())])


if __name__ == "__main__":
    main()
