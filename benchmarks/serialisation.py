"""Serialisation ceiling: our encode path per event against orjson alone.

Our path is what the encoder thread does per tagged span: map it to an event,
encode the JSON, add it to a batch, and compress the sealed batch. The ceiling is
orjson encoding the finished event dict, and nothing else.

    python benchmarks/serialisation.py [--events 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import orjson
from _common import record, table
from e2e import PROPERTIES
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

import posthog_otel._json as encoding
from posthog_otel import PostHogClient
from posthog_otel._client.client import connection_of
from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern
from posthog_otel._mapping.spans import MappingOptions, SpanMapper
from posthog_otel._pipeline.delivery import Delivery
from posthog_otel._pipeline.stats import Stats


class Keep(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def spans(count: int) -> list[ReadableSpan]:
    keep = Keep()
    provider = TracerProvider()
    provider.add_span_processor(keep)
    tracer = provider.get_tracer("bench")
    attributes = {"posthog.event": "plan_chosen", "posthog.distinct_id": "user-1", **PROPERTIES}
    for _ in range(count):
        with tracer.start_as_current_span("choose_plan", attributes=attributes):
            pass
    return keep.spans


def per_event(work: Callable[[], None], events: int, rounds: int = 7) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        timings.append((time.perf_counter() - start) / events * 1e6)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    made = spans(args.events)
    client = PostHogClient("phc_bench", "http://127.0.0.1:9")
    mapper = SpanMapper(MappingOptions(denylist=denylist_pattern(DEFAULT_DENYLIST)))
    delivery = Delivery(connection_of(client), Stats(), mapper)
    events = [mapper.map_span(span)[0] for span in made]

    def our_path() -> None:
        batch = delivery.open_batch()
        for span in made:
            for data in delivery.encode_item(span):
                if not delivery.fits(batch, data):
                    batch.seal()
                    batch = delivery.open_batch()
                batch.add(data)
        batch.seal()

    def mapping_only() -> None:
        for span in made:
            mapper.map_span(span)

    def orjson_only() -> None:
        for event in events:
            orjson.dumps(event)

    rows = []
    ceiling = per_event(orjson_only, args.events)
    ours = per_event(our_path, args.events)
    mapping = per_event(mapping_only, args.events)
    saved, encoding._orjson = encoding._orjson, None
    try:
        ours_stdlib = per_event(our_path, args.events)
    finally:
        encoding._orjson = saved
    for name, value in [
        ("orjson alone, on the finished event (the ceiling)", ceiling),
        ("ours: mapping only", mapping),
        ("ours: mapping + JSON (orjson) + batch + gzip", ours),
        ("ours: mapping + JSON (standard library) + batch + gzip", ours_stdlib),
    ]:
        rows.append([name, f"{value:.2f}", f"{value / ceiling:.1f}x"])
    record(serialisation_orjson_us=ours, serialisation_stdlib_us=ours_stdlib)
    print(f"Serialisation per event, {args.events:,} tagged spans of 8 properties\n")
    print(table(["path", "µs per event (median of 7)", "x orjson alone"], rows))
    print(
        f"\nThe orjson extra saves {ours_stdlib - ours:.2f} µs per event ({ours_stdlib / ours:.2f}x)."
    )


if __name__ == "__main__":
    main()
