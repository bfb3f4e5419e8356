"""Flag lookups: cost of a cached lookup, and requests made per 10,000 lookups across
100 users, against PostHog's Python SDK (remote evaluation, no local evaluation), both
asking the same local devserver (in its own process).

The cached lookup is also measured against a reference in the same run (a plain dict
lookup of the same key, through the same indexing), as a ratio that means the same on
a loaded machine, and counted in instructions per call under callgrind when valgrind
is installed (``_instructions``: a copy of this script, ``--count URL``).

    python benchmarks/flags.py [--lookups 10000] [--users 100]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import _instructions
from _common import devserver, per_call, record, request_counts, table
from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import PostHogClient, PostHogFlagProvider, PostHogSpanProcessor

FLAGS = {
    "new-checkout": {"variants": {"control": 50, "test": 50}},
    "beta": {"rollout_percentage": 50},
}


def first_in_span(tracer, flags, users: list[str], requests: int = 5_000) -> float:
    """µs for a flag's first lookup in a new span (each request's own), span cost excluded."""
    rounds = []
    for _ in range(5):
        spent = 0.0
        for i in range(requests):
            with tracer.start_as_current_span("request"):
                start = time.perf_counter()
                flags.is_enabled("beta", users[i % len(users)])
                spent += time.perf_counter() - start
        rounds.append(spent / requests * 1e6)
    return statistics.median(rounds)


def cached_lookups(flags, users: list[str]):
    """Ours, a cached ``is_enabled``, and the reference: a dict lookup of the same key."""
    reference = {("beta", user): True for user in users}
    n = len(users)

    def ours(i: int) -> object:
        return flags.is_enabled("beta", users[i % n])

    def plain(i: int) -> object:
        return reference.get(("beta", users[i % n]), False)

    return ours, plain


def count(url: str, users: list[str]) -> None:
    """The copy under callgrind: instructions per cached lookup, and per reference."""
    client = PostHogClient("phc_bench", url)
    flags = PostHogFlagProvider(client)
    ours, plain = cached_lookups(flags, users)
    for i in range(200):
        ours(i)
    _instructions.report(
        {
            "cached": _instructions.per_call(ours, 2_000),
            "reference": _instructions.per_call(plain, 2_000),
        }
    )
    flags.shutdown()
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--count", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    users = [f"user-{i}" for i in range(args.users)]
    if args.count:
        count(args.count, users)
        return
    rows = []
    with devserver(FLAGS) as url:
        client = PostHogClient("phc_bench", url)
        flags = PostHogFlagProvider(client)
        before = request_counts(url).get("/decide", 0)
        start = time.perf_counter()
        for i in range(args.lookups):
            flags.is_enabled("beta", users[i % len(users)])
        ours_wall = time.perf_counter() - start
        ours_requests = request_counts(url).get("/decide", 0) - before
        ours, plain = cached_lookups(flags, users)
        cached, cached_best = per_call(ours, 20_000)
        reference = per_call(plain, 20_000)[0]
        counted = _instructions.counted(__file__, ["--count", url, "--users", str(args.users)])
        provider = TracerProvider()
        processor = PostHogSpanProcessor(client)
        provider.add_span_processor(processor)
        flags_in_span = PostHogFlagProvider(client, processor=processor)
        for user in users:
            flags_in_span.is_enabled("beta", user)
        tracer = provider.get_tracer("bench")
        with tracer.start_as_current_span("request"):
            in_span, in_span_best = per_call(
                lambda i: flags_in_span.is_enabled("beta", "user-1"), 2_000
            )
        first = first_in_span(tracer, flags_in_span, users)
        flags.shutdown()
        provider.shutdown()

        import warnings

        import posthog

        logging.getLogger("posthog").setLevel(logging.CRITICAL)
        warnings.simplefilter("ignore", DeprecationWarning)  # get_feature_flag, as the issue names
        peer = posthog.Client("phc_bench", host=url)
        before = sum(request_counts(url).get(p, 0) for p in ("/flags", "/decide"))
        start = time.perf_counter()
        for i in range(args.lookups):
            peer.get_feature_flag("beta", users[i % len(users)])
        peer_wall = time.perf_counter() - start
        peer_requests = sum(request_counts(url).get(p, 0) for p in ("/flags", "/decide")) - before
        peer.shutdown()

    figures = {"flags_cached_us": cached, "flags_cached_x_dict": cached / reference}
    if counted is not None:
        figures["flags_cached_instructions"] = counted["cached"]
    record(**figures, flags_requests_ours=ours_requests, flags_requests_sdk=peer_requests)
    ours_ir = ref_ir = ratio_ir = "not counted (no valgrind)" if counted is None else ""
    if counted is not None:
        ours_ir, ref_ir = f"{counted['cached']:,.0f}", f"{counted['reference']:,.0f}"
        ratio_ir = f"{counted['cached'] / counted['reference']:.1f}x"
    header = ["a cached flag lookup", "µs per call (median)", "instructions per call"]
    print(
        table(
            header,
            [
                [
                    f"ours: `is_enabled`, no span, {args.users} users",
                    f"{cached:.2f} (best {cached_best:.2f})",
                    ours_ir,
                ],
                ["reference: a dict lookup of the same key", f"{reference:.3f}", ref_ir],
                ["ratio, ours / reference", f"{cached / reference:.1f}x", ratio_ir],
            ],
        )
    )
    print()
    rows.append(["ours: cached lookup, no span", f"{cached:.2f} (best {cached_best:.2f})", "", ""])
    rows.append(
        ["ours: cached lookup, first of its flag in a request's span", f"{first:.2f}", "", ""]
    )
    rows.append(
        [
            "ours: cached lookup, repeated in the same span",
            f"{in_span:.2f} (best {in_span_best:.2f})",
            "",
            "",
        ]
    )
    rows.append(
        [
            f"ours: {args.lookups:,} lookups, {args.users} users",
            f"{ours_wall / args.lookups * 1e6:.2f}",
            f"{ours_requests:,}",
            f"{peer_requests / max(ours_requests, 1):.0f}x fewer",
        ]
    )
    rows.append(
        [
            f"posthog.Client.get_feature_flag: {args.lookups:,} lookups, {args.users} users",
            f"{peer_wall / args.lookups * 1e6:.2f}",
            f"{peer_requests:,}",
            "1x",
        ]
    )
    print(table(["scenario", "µs per lookup (median)", "flag requests", "requests vs peer"], rows))


if __name__ == "__main__":
    main()
