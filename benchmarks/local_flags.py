"""Local flag evaluation: µs per lookup and per ``get_flags`` over 50 flags, side by side
with PostHog's Python SDK evaluating the same definitions locally, and the requests
both make: none per lookup, one per poll (a 304 while nothing changes).

Both poll the devserver (in its own process) for the definitions; lookups then stay
in process. The flag looked up has 3 conditions of 3 person properties each. Each
figure is also a ratio to posthog-python's, measured in the same run, and counted in
instructions per call under callgrind when valgrind is installed (``_instructions``:
a copy of this script, ``--count URL``). 100 users take turns, so per-user memories
(the rollout hashes) are warm, as for users who come back.

    python benchmarks/local_flags.py [--lookups 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import logging
import time

import _instructions
from _common import devserver, per_call, record, request_counts, table

from posthog_otel import PostHogClient, PostHogFlagProvider

SECRET = "phs_bench"
USERS = [f"user-{i}" for i in range(100)]
PROPS = {"plan": "team", "country": "DE", "age": 45, "email": "ana@acme.com", "version": "1.3.0"}


def prop(key: str, operator: str, value: object) -> dict[str, object]:
    return {"key": key, "type": "person", "operator": operator, "value": value}


CHECKOUT = {
    "id": 1,
    "key": "checkout",
    "version": 1,
    "active": True,
    "filters": {
        "groups": [
            {
                "properties": [
                    prop("plan", "exact", ["enterprise"]),
                    prop("country", "exact", "US"),
                    prop("age", "gt", 30),
                ],
                "rollout_percentage": 100,
            },
            {
                "properties": [
                    prop("email", "icontains", "@example.com"),
                    prop("plan", "is_not", "free"),
                    prop("age", "lt", 60),
                ],
                "rollout_percentage": 100,
            },
            {
                "properties": [
                    prop("version", "semver_gte", "1.2.0"),
                    prop("country", "is_set", "is_set"),
                    prop("email", "regex", "@acme\\.com$"),
                ],
                "rollout_percentage": 50,
            },
        ],
        "multivariate": {
            "variants": [
                {"key": "control", "rollout_percentage": 50},
                {"key": "one-click", "rollout_percentage": 50},
            ]
        },
    },
}


def definitions() -> dict[str, object]:
    """The checkout flag and 49 others: rollouts, a few properties each, some variants."""
    flags = [CHECKOUT]
    for i in range(49):
        conditions = [
            {"properties": [prop("plan", "exact", ["team", "pro"])], "rollout_percentage": 30 + i},
            {"properties": [prop("age", "gte", 18 + i)], "rollout_percentage": 100},
        ]
        filters: dict[str, object] = {"groups": conditions[: 1 + i % 2]}
        if i % 3 == 0:
            filters["multivariate"] = {
                "variants": [
                    {"key": "a", "rollout_percentage": 50},
                    {"key": "b", "rollout_percentage": 50},
                ]
            }
        flags.append(
            {"id": i + 2, "key": f"flag-{i}", "version": 1, "active": True, "filters": filters}
        )
    return {"flags": flags, "group_type_mapping": {}, "cohorts": {}}


def lookups(url: str) -> int:
    counts = request_counts(url)
    return sum(
        n
        for path, n in counts.items()
        if path.startswith(("/decide", "/flags")) and "definitions" not in path
    )


def polls(url: str) -> int:
    return sum(
        n
        for path, n in request_counts(url).items()
        if "definitions" in path or "local_evaluation" in path
    )


def count(url: str) -> None:
    """The copy under callgrind: instructions per lookup and per ``get_flags``, ours and
    posthog-python's."""
    import posthog

    client = PostHogClient("phc_bench", url, secret_key=SECRET)
    ours = PostHogFlagProvider(client, send_feature_flag_events=False)
    peer = posthog.Client("phc_bench", host=url, secret_key="phx_bench", poll_interval=30)
    assert ours.load_definitions(60)
    peer.load_feature_flags()
    lookup, peer_lookup, all_flags, peer_all = readers(ours, peer)
    for i in range(100):
        lookup(i), peer_lookup(i), all_flags(i)
    _instructions.report(
        {
            "lookup": _instructions.per_call(lookup, 1_000),
            "peer_lookup": _instructions.per_call(peer_lookup, 300),
            "all": _instructions.per_call(all_flags, 100),
            "peer_all": _instructions.per_call(peer_all, 30),
        }
    )
    ours.shutdown()
    peer.shutdown()
    client.close()


def readers(ours, peer):
    """A lookup and a ``get_flags``, ours and posthog-python's, for user ``i % 100``."""

    def lookup(i: int) -> object:
        return ours.get_flag("checkout", USERS[i % 100], person_properties=PROPS)

    def peer_lookup(i: int) -> object:
        return peer.get_feature_flag_result(
            "checkout",
            USERS[i % 100],
            person_properties=PROPS,
            only_evaluate_locally=True,
            send_feature_flag_events=False,
        )

    def all_flags(i: int) -> object:
        return ours.get_flags(USERS[i % 100], person_properties=PROPS)

    def peer_all(i: int) -> object:
        return peer.get_all_flags(
            USERS[i % 100], person_properties=PROPS, only_evaluate_locally=True
        )

    return lookup, peer_lookup, all_flags, peer_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import warnings

    import posthog

    logging.getLogger("posthog").setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore", DeprecationWarning)
    if args.count:
        count(args.count)
        return
    rows = []
    with devserver(definitions()) as url:
        client = PostHogClient("phc_bench", url, secret_key=SECRET)
        ours = PostHogFlagProvider(client, send_feature_flag_events=False)
        ours_events = PostHogFlagProvider(client)
        peer = posthog.Client("phc_bench", host=url, secret_key="phx_bench", poll_interval=30)
        assert ours.load_definitions(10)
        assert ours_events.load_definitions(10)
        peer.load_feature_flags()
        ours_lookup, _, ours_all, peer_all = readers(ours, peer)

        def ours_lookup_events(i: int) -> object:
            return ours_events.get_flag("checkout", USERS[i % 100], person_properties=PROPS)

        def peer_lookup(i: int, events: bool = False) -> object:
            return peer.get_feature_flag_result(
                "checkout",
                USERS[i % 100],
                person_properties=PROPS,
                only_evaluate_locally=True,
                send_feature_flag_events=events,
            )

        for i in range(100):  # the same answers, and warm caches on both sides
            got, want = ours_lookup(i), peer_lookup(i)
            assert (got.enabled if got else None) == (want.get_value() if want else None), i
        ours_us = per_call(ours_lookup, args.lookups, args.rounds)[0]
        peer_us = per_call(peer_lookup, args.lookups, args.rounds)[0]
        ours_ev = per_call(ours_lookup_events, args.lookups, args.rounds)[0]
        peer_ev = per_call(lambda i: peer_lookup(i, True), args.lookups, args.rounds)[0]

        assert len(ours_all(0)) == len(peer_all(0)) == 50
        ours_all_us = per_call(ours_all, args.lookups // 10, args.rounds)[0]
        peer_all_us = per_call(peer_all, args.lookups // 10, args.rounds)[0]

        counted = _instructions.counted(__file__, ["--count", url])

        before_lookups, before_polls = lookups(url), polls(url)
        start = time.perf_counter()
        for i in range(args.lookups):
            ours_lookup(i)
        ours_wall = time.perf_counter() - start
        ours_requests = lookups(url) - before_lookups
        ours_polls = polls(url) - before_polls
        before_lookups = lookups(url)
        for i in range(args.lookups):
            peer_lookup(i)
        peer_requests = lookups(url) - before_lookups

        fast = PostHogFlagProvider(client, poll_interval=0.5, send_feature_flag_events=False)
        before_polls = polls(url)
        assert fast.load_definitions(10)
        time.sleep(5.0)  # an idle process, five seconds: what polling alone costs
        idle_polls = polls(url) - before_polls
        fast.shutdown()
        ours.shutdown()
        ours_events.shutdown()
        peer.shutdown()
        client.close()

    figures = {
        "local_lookup_us": ours_us,
        "local_x_sdk": ours_us / peer_us,
        "local_all_us": ours_all_us,
        "local_all_x_sdk": ours_all_us / peer_all_us,
    }
    if counted is not None:
        figures["local_lookup_instructions"] = counted["lookup"]
        figures["local_all_instructions"] = counted["all"]
    record(**figures, local_requests=ours_requests)

    def instructions(ours_key: str, peer_key: str) -> list[str]:
        if counted is None:
            return ["not counted (no valgrind)", "", ""]
        mine, theirs = counted[ours_key], counted[peer_key]
        return [f"{mine:,.0f}", f"{theirs:,.0f}", f"{mine / theirs:.2f}x"]

    print(
        table(
            [
                "per call",
                "ours µs",
                "posthog-python µs",
                "ours / posthog-python",
                "ours instructions",
                "posthog-python instructions",
                "ratio",
            ],
            [
                [
                    "a local lookup, 3 conditions x 3 properties",
                    f"{ours_us:.2f}",
                    f"{peer_us:.2f}",
                    f"{ours_us / peer_us:.2f}x",
                    *instructions("lookup", "peer_lookup"),
                ],
                [
                    "`get_flags` over 50 flags",
                    f"{ours_all_us:.1f}",
                    f"{peer_all_us:.1f}",
                    f"{ours_all_us / peer_all_us:.2f}x",
                    *instructions("all", "peer_all"),
                ],
            ],
        )
    )
    print()
    rows.append(
        [
            "local lookup, 3 conditions x 3 properties",
            f"{ours_us:.2f}",
            f"{peer_us:.2f}",
            f"{peer_us / ours_us:.1f}x",
        ]
    )
    rows.append(
        [
            "the same, with $feature_flag_called on",
            f"{ours_ev:.2f}",
            f"{peer_ev:.2f}",
            f"{peer_ev / ours_ev:.1f}x",
        ]
    )
    rows.append(
        [
            "get_flags over 50 flags (per call)",
            f"{ours_all_us:.1f}",
            f"{peer_all_us:.1f}",
            f"{peer_all_us / ours_all_us:.1f}x",
        ]
    )
    print(table(["µs, median of rounds", "ours", "posthog-python", "ours faster by"], rows))
    print()
    print(
        table(
            ["requests", "ours", "posthog-python"],
            [
                [
                    f"flag requests during {args.lookups:,} lookups",
                    f"{ours_requests:,}",
                    f"{peer_requests:,}",
                ],
                [
                    f"definition polls during them ({ours_wall:.2f} s; poll_interval 30 s)",
                    f"{ours_polls}",
                    "",
                ],
                [
                    "definition polls by an idle process in 5 s, poll_interval 0.5 s",
                    f"{idle_polls}",
                    "",
                ],
            ],
        )
    )


if __name__ == "__main__":
    main()
