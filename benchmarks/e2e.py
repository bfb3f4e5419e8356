"""End to end: events produced as fast as possible, until the sink has counted them.

Each scenario runs in a fresh process (so peak RSS is its own), alternating with the
others over several rounds; all send to the same counting sink in another process.
Throughput is events delivered per second, from the first event produced to the
moment the sink counted the last one.

    python benchmarks/e2e.py [--events 50000] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable

from _common import median_spread, record, reset_sink, sink, sink_stats, table

PROPERTIES = {
    "plan": "pro",
    "region": "eu-west",
    "seats": 12,
    "step": 3,
    "price": 49.5,
    "ratio": 0.75,
    "trial": False,
    "cart": {"items": 2, "sku": "TEE-1", "total": 99.0},
}
BIG = 50_000


def ours_spans(sink_url: str, events: int, queue: int | None) -> Callable[[], None]:
    from opentelemetry.sdk.trace import TracerProvider

    from posthog_otel import PostHogClient, PostHogSpanProcessor

    options = {} if queue is None else {"max_queue_size": queue}
    processor = PostHogSpanProcessor(PostHogClient("phc_bench", sink_url), **options)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    attributes = {"posthog.event": "plan_chosen", "posthog.distinct_id": "user-1", **PROPERTIES}
    for _ in range(events):
        with tracer.start_as_current_span("choose_plan", attributes=attributes):
            pass
    return provider.shutdown


def ours_capture(sink_url: str, events: int, queue: int | None) -> Callable[[], None]:
    from posthog_otel import PostHogClient, PostHogSpanProcessor, capture

    options = {} if queue is None else {"max_queue_size": queue}
    processor = PostHogSpanProcessor(PostHogClient("phc_bench", sink_url), **options)
    for _ in range(events):
        capture("plan_chosen", PROPERTIES, distinct_id="user-1")  # no span: straight to the queue
    return processor.shutdown


def posthog_sdk(sink_url: str, events: int, queue: int | None) -> Callable[[], None]:
    import posthog

    logging.getLogger("posthog").setLevel(logging.CRITICAL)  # it logs every drop
    options = {} if queue is None else {"max_queue_size": queue}
    client = posthog.Client("phc_bench", host=sink_url, **options)
    for _ in range(events):
        client.capture("plan_chosen", distinct_id="user-1", properties=PROPERTIES)
    return client.shutdown


def bsp_otlp(sink_url: str, events: int, queue: int | None) -> Callable[[], None]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    options = {} if queue is None else {"max_queue_size": queue}
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=sink_url + "/v1/traces"), **options)
    )
    tracer = provider.get_tracer("bench")
    for _ in range(events):
        with tracer.start_as_current_span(
            "choose_plan", attributes={"user": "user-1", **PROPERTIES}
        ):
            pass
    return provider.shutdown


def bare_spans(sink_url: str, events: int, queue: int | None) -> Callable[[], None]:
    """The same spans with no processor: what creating them costs on its own."""
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("bench")
    attributes = {"posthog.event": "plan_chosen", "posthog.distinct_id": "user-1", **PROPERTIES}
    for _ in range(events):
        with tracer.start_as_current_span("choose_plan", attributes=attributes):
            pass
    return lambda: None


PIPELINES = {"ours, tagged spans": ours_spans, "ours, capture()": ours_capture,
             "posthog.Client.capture": posthog_sdk, "BatchSpanProcessor + OTLP/HTTP": bsp_otlp,
             "(baseline) the same spans, nothing exported": bare_spans}  # fmt: skip


def child(name: str, queue: int | None, events: int, sink_url: str) -> dict[str, float]:
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    finish = PIPELINES[name](sink_url, events, queue)
    produced = time.perf_counter() - start
    finish()  # flush and shut down, as an application does at exit
    last, last_change = -1, time.perf_counter()
    while name in SENDERS and time.perf_counter() - last_change < 2.0:  # until the sink stops
        count = sink_stats(sink_url)["events"]
        if count != last:
            last, last_change = count, time.perf_counter()
        if count >= events:
            break
        time.sleep(0.01)
    stats = sink_stats(sink_url)
    return {
        "produce_s": produced,
        "total_s": last_change - start,
        "delivered": stats["unique"],
        "received": stats["events"],
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


SENDERS = [name for name in PIPELINES if not name.startswith("(baseline)")]


def run_child(name: str, queue: int | None, events: int, sink_url: str) -> dict[str, float]:
    reset_sink(sink_url)
    command = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--events",
        str(events),
        "--sink",
        sink_url,
    ]
    if queue is not None:
        command += ["--queue", str(queue)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=BIG)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--queue", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.queue, args.events, args.sink)))
        return

    runs = [(name, queue) for name in SENDERS for queue in (None, args.events)]
    runs.append(("(baseline) the same spans, nothing exported", None))
    results: dict[tuple[str, int | None], list[dict[str, float]]] = {run: [] for run in runs}
    with sink() as url:
        for round_ in range(args.repetitions):
            order = runs[round_ % len(runs) :] + runs[: round_ % len(runs)]
            for name, queue in order:
                results[(name, queue)].append(run_child(name, queue, args.events, url))
                print(
                    f"round {round_ + 1}: {name} queue={queue or 'default'} done", file=sys.stderr
                )

    def rate(r: dict[str, float]) -> float:
        return r["delivered"] / r["total_s"]

    peer = {
        q: median_spread([rate(r) for r in results[("posthog.Client.capture", q)]])[0]
        for q in (None, args.events)
    }
    peer_rss = median_spread(
        [r["rss_mb"] for r in results[("posthog.Client.capture", args.events)]]
    )[0]
    rows = []
    for (name, queue), runs_ in results.items():
        if name not in SENDERS:
            rss = median_spread([r["rss_mb"] for r in runs_])[0]
            produced = median_spread([args.events / r["produce_s"] for r in runs_])[0]
            rows.append(
                [
                    name,
                    "-",
                    f"({produced:,.0f} made)",
                    "",
                    "",
                    "",
                    "",
                    f"{rss:.0f}",
                    f"{rss / peer_rss:.2f}x",
                ]
            )
            continue
        events_per_s, spread = median_spread([rate(r) for r in runs_])
        lost = median_spread([args.events - r["delivered"] for r in runs_])[0]
        duplicates = max(r["received"] - r["delivered"] for r in runs_)
        rss = median_spread([r["rss_mb"] for r in runs_])[0]
        rows.append(
            [
                name,
                "default" if queue is None else f"{queue:,}",
                f"{events_per_s:,.0f}",
                f"{spread:.0%}",
                f"{events_per_s / peer[queue]:.2f}x",
                f"{lost:,.0f} ({lost / args.events:.0%})",
                f"{duplicates:,}",
                f"{rss:.0f}",
                f"{rss / peer_rss:.2f}x",
            ]
        )
    record_targets(results, args.events, peer, peer_rss, rate)
    print(
        f"End to end, {args.events:,} events of 8 properties, {args.repetitions} alternating rounds\n"
    )
    header = ["pipeline", "queue", "events/s (median)", "spread", "vs posthog SDK", "lost (median)",
              "duplicates", "peak RSS MB", "RSS vs SDK big queue"]  # fmt: skip
    print(table(header, rows))
    print(f"\nCPU count: {os.cpu_count()}; the sink runs in its own process.")


def record_targets(results, events: int, peer, peer_rss: float, rate) -> None:
    """The figures run.py's targets table reads: losses, throughput and RSS against the SDK."""

    def median(name: str, queue: int | None, figure) -> float:
        return median_spread([figure(r) for r in results[(name, queue)]])[0]

    figures: dict[str, float] = {"e2e_events": events}
    for key, name in (("tagged", "ours, tagged spans"), ("capture", "ours, capture()")):
        figures[f"e2e_lost_{key}"] = max(events - r["delivered"] for r in results[(name, None)])
        for label, queue in (("default", None), ("big", events)):
            figures[f"e2e_{key}_vs_sdk_{label}"] = median(name, queue, rate) / peer[queue]
        figures[f"e2e_rss_{key}_vs_sdk"] = median(name, events, lambda r: r["rss_mb"]) / peer_rss
    record(**figures)


if __name__ == "__main__":
    main()
