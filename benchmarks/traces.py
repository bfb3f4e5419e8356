"""send_traces against the SDK's BatchSpanProcessor + OTLP/HTTP exporter, side by side,
both to the counting sink (PostHog's /i/v1/traces, OpenTelemetry's /v1/traces):

- caller cost: µs per span (start and end, a dozen attributes, inside ``identify()``)
  in a tight loop, the worker running beside it;
- a burst at the defaults: ``--burst`` spans as fast as one thread makes them, then a
  flush; spans lost = made - counted by the sink (ours also says why, in stats().traces).

    python benchmarks/traces.py [--spans 20000] [--repetitions 5] [--burst 50000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from _common import alternate, median_spread, record, reset_sink, sink, sink_stats, table
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from posthog_otel import PostHogClient, PostHogSpanProcessor, identify

ATTRIBUTES = {
    "http.request.method": "GET",
    "http.route": "/items/<int:item>",
    "url.path": "/items/7",
    "http.response.status_code": 200,
    "server.address": "shop.example.com",
    "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
    "plan": "pro",
    "seats": 12,
}
RESOURCE = Resource.create({"service.name": "shop", "deployment.environment": "prod"})


def span_loop(provider: TracerProvider, spans: int) -> float:
    """µs per span made and ended."""
    tracer = provider.get_tracer("bench")
    with identify("user-1", session_id="session-1"):
        start = time.perf_counter()
        for _ in range(spans):
            with tracer.start_as_current_span("GET /items/<int:item>", attributes=ATTRIBUTES):
                pass
        elapsed = time.perf_counter() - start
    return elapsed / spans * 1e6


def ours(url: str) -> tuple[SpanProcessor, Callable[[], dict[str, int]], Callable[[], None]]:
    client = PostHogClient("phc_bench", url)
    processor = PostHogSpanProcessor(client, send_traces=True, flush_on_sigterm=False)
    return processor, lambda: dict(processor.stats().traces.dropped), client.close


def ours_events_only(
    url: str,
) -> tuple[SpanProcessor, Callable[[], dict[str, int]], Callable[[], None]]:
    client = PostHogClient("phc_bench", url)
    processor = PostHogSpanProcessor(client, flush_on_sigterm=False)
    return processor, dict, client.close


def bsp_otlp(url: str) -> tuple[SpanProcessor, Callable[[], dict[str, int]], Callable[[], None]]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces"))
    return processor, dict, lambda: None


def bsp_otlp_holding(
    url: str,
) -> tuple[SpanProcessor, Callable[[], dict[str, int]], Callable[[], None]]:
    """The SDK's processor with a queue that holds the whole loop: it sends every span."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=url + "/v1/traces")
    return BatchSpanProcessor(exporter, max_queue_size=HOLDING), dict, lambda: None


HOLDING = 20_000  # --spans, set in main()
PEERS = {"ours, send_traces=True": ours, "BatchSpanProcessor + OTLPSpanExporter": bsp_otlp}
HOLDING_PEER = "BatchSpanProcessor + OTLPSpanExporter, max_queue_size=spans"


def run(
    url: str, make, spans: int, lost: list[int] | None = None, why: list | None = None
) -> float:
    """One round: a fresh provider with ``make``'s processor (``None``: no processor)."""
    reset_sink(url)
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    processor = close = dropped = None
    if make is not None:
        processor, dropped, close = make(url)
        provider.add_span_processor(processor)
    cost = span_loop(provider, spans)
    if processor is not None:
        processor.force_flush(120_000)
        if lost is not None:
            lost.append(spans - sink_stats(url)["events"])
            why.append(dropped())
    provider.shutdown()
    if close is not None:
        close()
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--burst", type=int, default=50_000)
    args = parser.parse_args()
    with sink() as url:
        scenarios = {"no processor": lambda: run(url, None, args.spans)}
        scenarios["ours, send_traces off (the hooks alone)"] = lambda: run(
            url, ours_events_only, args.spans
        )
        global HOLDING
        HOLDING = args.spans
        delivered: dict[str, list[int]] = {name: [] for name in [*PEERS, HOLDING_PEER]}
        for name, make in [*PEERS.items(), (HOLDING_PEER, bsp_otlp_holding)]:
            scenarios[name] = lambda make=make, name=name: run(
                url, make, args.spans, delivered[name], []
            )
        results = alternate(scenarios, args.repetitions)
        bursts = {}
        for name, make in PEERS.items():
            lost: list[int] = []
            why: list[dict[str, int]] = []
            cost = run(url, make, args.burst, lost, why)
            bursts[name] = (cost, lost[0], why[0])
    base = median_spread(results["no processor"])[0]
    rows = []
    for name, values in results.items():
        mid, spread = median_spread(values)
        lost = delivered.get(name)
        sent = f"{args.spans - max(lost):,}-{args.spans - min(lost):,}" if lost else "-"
        rows.append([name, f"{mid:.2f}", f"{spread:.0%}", f"{mid - base:+.2f}", sent])
    print(
        f"Caller cost per span, {args.spans:,} spans x {args.repetitions} rounds, worker running\n"
    )
    header = ["scenario", "µs per span (median)", "spread", "µs over no processor", "spans sent"]
    print(table(header, rows))
    burst_rows = [
        [name, f"{cost:.2f}", f"{lost:,}", ", ".join(f"{k}: {v:,}" for k, v in why.items()) or "-"]
        for name, (cost, lost, why) in bursts.items()
    ]
    print(f"\nA burst of {args.burst:,} spans at the defaults, then a flush\n")
    print(table(["scenario", "µs per span", "spans lost", "ours: why"], burst_rows))
    ours_cost = median_spread(results["ours, send_traces=True"])[0]
    bsp_cost = median_spread(results["BatchSpanProcessor + OTLPSpanExporter"])[0]
    record(
        traces_cost_ours=ours_cost - base,
        traces_cost_bsp=bsp_cost - base,
        traces_burst_lost_ours=bursts["ours, send_traces=True"][1],
        traces_burst_lost_bsp=bursts["BatchSpanProcessor + OTLPSpanExporter"][1],
    )


if __name__ == "__main__":
    main()
