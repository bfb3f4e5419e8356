"""PostHog flags through the OpenFeature API (pip install 'posthog-otel[openfeature]'):
values and reasons, an asynchronous read, and a tracked metric with the user's flags.

python examples/openfeature_provider.py
"""

from __future__ import annotations

import asyncio

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.track import TrackingEventDetails

from posthog_otel import PostHogClient, PostHogFlagProvider
from posthog_otel.devserver import DevServer
from posthog_otel.openfeature import PostHogProvider

FLAGS = {
    "dark-mode": True,
    "search-ranking": {"variants": {"bm25": 50, "vector": 50}},
    "upload-limit-mb": {"payload": 250},
    "org-beta": {"group_type": "company"},
}


def main() -> None:
    with DevServer(flags=FLAGS) as server:
        flags = PostHogFlagProvider(
            PostHogClient("phc_example", server.url), send_feature_flag_events=False
        )
        api.set_provider_and_wait(PostHogProvider(flags))
        client = api.get_client()

        alice = EvaluationContext(targeting_key="alice", attributes={"plan": "pro"})
        acme = EvaluationContext(targeting_key="bob", attributes={"groups": {"company": "acme"}})
        carol = EvaluationContext(targeting_key="carol")  # no company: the flag is off
        for name, details in [
            ("dark-mode", client.get_boolean_details("dark-mode", False, alice)),
            ("search-ranking", client.get_string_details("search-ranking", "bm25", alice)),
            ("upload-limit-mb", client.get_integer_details("upload-limit-mb", 10, alice)),
            ("org-beta (no group)", client.get_boolean_details("org-beta", False, alice)),
            ("org-beta (acme)", client.get_boolean_details("org-beta", False, acme)),
            ("org-beta (carol)", client.get_boolean_details("org-beta", False, carol)),
            ("dark-mode again", client.get_boolean_details("dark-mode", False, alice)),
            ("no-such-flag", client.get_boolean_details("no-such-flag", False, alice)),
        ]:
            error = f" error={details.error_code}" if details.error_code else ""
            print(f"{name:<20} value={details.value!r:<10} reason={details.reason}{error}")

        # On an event loop: a read that must ask PostHog runs off the loop.
        bob = EvaluationContext(targeting_key="bob")
        ranking = asyncio.run(client.get_string_details_async("search-ranking", "bm25", bob))
        print(f"{'async (bob)':<20} value={ranking.value!r:<10} reason={ranking.reason}")

        # A metric for experiments: an event with the flags alice was given.
        client.track("upload_finished", alice, TrackingEventDetails(value=12.5))
        flags.flush()
        (event,) = server.wait_for_events(1, event="upload_finished")
        shown = {
            k: v for k, v in event["properties"].items() if k.startswith(("$feature/", "value"))
        }
        print(f"{'tracked':<20} {shown}")
        api.shutdown()
        flags.shutdown()


if __name__ == "__main__":
    main()
