"""Feature flags decided in process, from definitions polled in the background.

With a secret key the provider fetches the project's flag definitions and decides
each lookup itself, in microseconds; PostHog is asked only for a flag the
definitions cannot decide (here: a property the call did not pass).

python examples/local_flags.py
"""

from __future__ import annotations

from posthog_otel import PostHogClient, PostHogFlagProvider
from posthog_otel.devserver import DevServer

# PostHog's own definitions format, as /flags/definitions returns it (an export of a
# real project works as it is).
DEFINITIONS = {
    "flags": [
        {
            "id": 1,
            "key": "new-checkout",
            "version": 4,
            "active": True,
            "filters": {
                "groups": [
                    {
                        "properties": [{"key": "plan", "type": "person", "value": ["pro", "team"]}],
                        "rollout_percentage": 100,
                    },
                    {
                        "properties": [
                            {"key": "country", "type": "person", "value": "NZ"},
                            {
                                "key": "app",
                                "type": "person",
                                "operator": "semver_gte",
                                "value": "2.1",
                            },
                        ],
                        "rollout_percentage": 50,
                    },
                ],
                "multivariate": {
                    "variants": [
                        {"key": "one-click", "rollout_percentage": 50},
                        {"key": "classic", "rollout_percentage": 50},
                    ]
                },
                "payloads": {"one-click": '{"button": "Buy now"}'},
            },
        }
    ],
    "group_type_mapping": {},
    "cohorts": {},
}

USERS = [
    ("ana", {"plan": "pro"}),
    ("ben", {"plan": "free", "country": "NZ", "app": "2.4.0"}),
    ("cleo", {"plan": "free", "country": "NZ", "app": "1.9.9"}),
    ("dev", {"plan": "team"}),
    ("eve", {"country": "NZ"}),  # no plan, no app: the definitions cannot decide
]


def main() -> None:
    with DevServer(flags=DEFINITIONS) as server:  # it accepts any phs_ or phx_ key
        client = PostHogClient("phc_example", server.url, secret_key="phs_example")
        flags = PostHogFlagProvider(client, send_feature_flag_events=False)
        print("definitions loaded:", flags.load_definitions(timeout=5))
        for user, properties in USERS:
            flag = flags.get_flag("new-checkout", user, person_properties=properties)
            assert flag is not None
            print(f"{user:5} {flag.enabled!s:10} payload={flag.payload}  ({flag.reason})")

        stats = flags.stats()
        print()
        print(f"lookups decided locally: {stats.local}, asked of PostHog: {stats.remote}")
        print(f"flag requests to PostHog: {len(server.requests.matching('/decide'))}")
        print(f"definition requests: {len(server.requests.matching('/flags/definitions'))}")
        flags.shutdown()
        client.close()


if __name__ == "__main__":
    main()
