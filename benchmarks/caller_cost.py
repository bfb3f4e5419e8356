"""Caller cost: wall time of the application's own span loop, with each pipeline's worker
running beside it, per span. Everything sends to the same counting sink in another process.

    python benchmarks/caller_cost.py [--spans 20000] [--repetitions 7]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from _common import (
    alternate,
    median_spread,
    paired_ratios,
    record,
    reset_sink,
    sink,
    table,
    wait_for_sink,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from posthog_otel import PostHogClient, PostHogSpanProcessor

PROPERTIES = {
    "plan": "pro",
    "seats": 12,
    "price": 49.5,
    "trial": False,
    "region": "eu",
    "step": 3,
    "source": "ads",
}


class NoOpProcessor(SpanProcessor):
    def on_start(self, span, parent_context=None):
        pass

    def on_end(self, span):
        pass


def span_loop(
    processor: SpanProcessor | None, spans: int, tagged: bool, settle: Callable[[], None]
) -> float:
    provider = TracerProvider()
    if processor is not None:
        provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    attributes = (
        {**PROPERTIES, "posthog.event": "plan_chosen"} if tagged else {**PROPERTIES, "k": "v"}
    )
    start = time.perf_counter()
    for _ in range(spans):
        with tracer.start_as_current_span("choose_plan", attributes=attributes):
            pass
    elapsed = time.perf_counter() - start
    settle()
    provider.shutdown()
    return elapsed / spans * 1e6


def scenarios(url: str, spans: int, expected: dict[str, int]) -> dict[str, Callable[[], float]]:
    def ours(tagged: bool) -> Callable[[], float]:
        def run() -> float:
            reset_sink(url)
            processor = PostHogSpanProcessor(PostHogClient("phc_bench", url), max_queue_size=spans)
            return span_loop(processor, spans, tagged, lambda: processor.force_flush(120_000))

        return run

    def bsp_otlp() -> float:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        reset_sink(url)
        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces"))
        return span_loop(processor, spans, True, lambda: processor.force_flush())

    expected.update({"ours, tagged": spans})
    return {
        "bare SDK (no processor)": lambda: span_loop(None, spans, True, lambda: None),
        "no-op processor": lambda: span_loop(NoOpProcessor(), spans, True, lambda: None),
        "ours, untagged spans": ours(False),
        "ours, tagged spans": ours(True),
        "BatchSpanProcessor + OTLP/HTTP": bsp_otlp,
    }


def posthog_capture_cost(url: str, calls: int) -> float:
    import posthog

    client = posthog.Client("phc_bench", host=url)
    start = time.perf_counter()
    for _ in range(calls):
        client.capture("plan_chosen", distinct_id="user-1", properties=PROPERTIES)
    elapsed = time.perf_counter() - start
    client.shutdown()
    return elapsed / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=60, help="rounds of the paired comparison")
    parser.add_argument("--no-instructions", action="store_true", help="skip callgrind")
    args = parser.parse_args()
    with sink() as url:
        runs = scenarios(url, args.spans, {})
        runs["posthog.Client.capture (per call)"] = lambda: posthog_capture_cost(url, args.spans)
        results = alternate(runs, args.repetitions)
        wait_for_sink(url, 0, 1)
        counted = None
        if not args.no_instructions:
            from _callgrind import available, beyond_noop

            counted = (
                beyond_noop(Path(__file__), "span", url)
                if available()
                else ("\n(valgrind not found)", {})
            )
    noop = median_spread(results["no-op processor"])[0]
    bsp = median_spread(results["BatchSpanProcessor + OTLP/HTTP"])[0]
    rows = []
    for name, values in results.items():
        mid, spread = median_spread(values)
        rows.append([name, f"{mid:.2f}", f"{spread:.0%}", f"{mid / noop:.3f}", f"{bsp / mid:.2f}"])
    print(f"Caller cost, {args.spans:,} spans x {args.repetitions} alternating rounds\n")
    print(table(["scenario", "µs per span (median)", "spread", "x no-op", "BSP+OTLP ÷ this"], rows))
    print(untagged_paired(args.pairs))
    tagged = median_spread(results["ours, tagged spans"])[0]
    record(caller_tagged_x_noop=tagged / noop, caller_bsp_over_tagged=bsp / tagged)
    if counted is not None:
        print(counted[0])
        if counted[1]:
            record(caller_instructions_untagged=counted[1]["untagged"])


def untagged_paired(pairs: int, spans: int = 5_000) -> str:
    """Untagged spans never reach our worker, so a paired comparison can resolve a few percent."""
    client = PostHogClient("phc_bench", "http://127.0.0.1:9")  # never contacted: nothing is tagged
    processor = PostHogSpanProcessor(client)
    noop, ours = NoOpProcessor(), processor

    def run(p):
        return lambda: span_loop_shared(p, spans)

    median, low, high = paired_ratios(run(noop), run(ours), pairs)
    processor.shutdown()
    record(caller_untagged_paired=median)
    return (
        f"\nUntagged spans, paired: ours / no-op = {median:.3f} "
        f"(quartiles {low:.3f}-{high:.3f}) over {pairs} back-to-back pairs of {spans:,} spans"
    )


_providers: dict[int, TracerProvider] = {}


def span_loop_shared(processor: SpanProcessor, spans: int) -> float:
    """Like span_loop, but reusing one provider per processor so rounds stay short."""
    provider = _providers.get(id(processor))
    if provider is None:
        provider = _providers[id(processor)] = TracerProvider()
        provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    attributes = {**PROPERTIES, "k": "v"}
    start = time.perf_counter()
    for _ in range(spans):
        with tracer.start_as_current_span("choose_plan", attributes=attributes):
            pass
    return (time.perf_counter() - start) / spans * 1e6


def child(name: str, spans: int) -> None:
    """One loop to count under callgrind (``_callgrind``): ``spans`` spans through a
    provider with a no-op processor (``noop``) or ours (``untagged``, ``tagged``)."""
    import os

    if name == "noop":
        processor: SpanProcessor = NoOpProcessor()
    else:
        url = os.environ.get("BENCH_SINK", "http://127.0.0.1:9")
        processor = PostHogSpanProcessor(PostHogClient("phc_bench", url), max_queue_size=spans + 1)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    tagged = name == "tagged"
    attributes = (
        {**PROPERTIES, "posthog.event": "plan_chosen"} if tagged else {**PROPERTIES, "k": "v"}
    )
    for _ in range(spans):
        with tracer.start_as_current_span("choose_plan", attributes=attributes):
            pass
    processor.force_flush()
    provider.shutdown()


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
