"""Serialisation ceiling: our encode path per event against orjson alone.

Our path is what the encoder thread does per tagged span: map it to an event,
encode the JSON, add it to a batch, and compress the sealed batch. The ceiling is
orjson encoding the finished event dict, and nothing else.

Time on a shared machine is noisy, so each path is also counted in CPU instructions
per event: the script runs itself under callgrind (valgrind), collecting only inside
``itertools.starmap``'s step, which calls the measured work once per span and which
our code never uses (``--collect-atstart=no --toggle-collect=starmap_next``). Spans are
made and the caches warmed before counting starts; counts are exact and repeatable.

    python benchmarks/serialisation.py [--events 20000] [--counted 1000]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
from _common import record, table
from e2e import PROPERTIES
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

import posthog_otel._json as encoding
from posthog_otel import PostHogClient
from posthog_otel._client.batch import PIPELINE_BATCH_BYTES
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


class Paths:
    """The paths measured, each as work on one span (``step``) or on all (``run``)."""

    def __init__(self, made: list[ReadableSpan]) -> None:
        self.made = made
        client = PostHogClient("phc_bench", "http://127.0.0.1:9")
        self.mapper = SpanMapper(MappingOptions(denylist=denylist_pattern(DEFAULT_DENYLIST)))
        self.delivery = Delivery(connection_of(client), Stats(), self.mapper)
        self.events = [self.mapper.map_span(span)[0] for span in made]
        self.batch = self.delivery.open_batch()
        self.last = made[-1]

    def step(self, name: str) -> Callable[[Any], object]:
        return {
            "orjson": orjson.dumps,
            "mapping": self.mapper.map_span,
            "json": self.delivery.encode_item,
            "path": self.add,
            "path_stdlib": self.add,
        }[name]

    def inputs(self, name: str) -> list[Any]:
        return self.events if name == "orjson" else self.made

    def add(self, span: ReadableSpan) -> None:
        """What the encoder does per span: encode, batch, and seal a full batch (and the last)."""
        delivery = self.delivery
        for data in delivery.encode_item(span):
            if not self.batch.append(data, delivery.max_batch_events, PIPELINE_BATCH_BYTES):
                self.batch.seal()
                self.batch = delivery.open_batch()
                self.batch.add(data)
        if span is self.last:
            self.batch.seal()
            self.batch = delivery.open_batch()

    def run(self, name: str) -> Callable[[], None]:
        step, inputs = self.step(name), self.inputs(name)

        def work() -> None:
            for value in inputs:
                step(value)

        return work


PATHS = {
    "orjson": "orjson alone, on the finished event (the ceiling)",
    "mapping": "ours: mapping only",
    "json": "ours: mapping + JSON (orjson)",
    "path": "ours: mapping + JSON (orjson) + batch + gzip",
    "path_stdlib": "ours: mapping + JSON (standard library) + batch + gzip",
}


def counted(name: str, events: int) -> None:
    """The child run under callgrind: warm up, then ``events`` steps inside starmap."""
    if name == "path_stdlib":
        encoding._orjson = None
    paths = Paths(spans(events))
    step, inputs = paths.step(name), paths.inputs(name)
    for value in inputs[: min(100, events)]:  # warm the caches (keys, resource, clock)
        step(value)
    paths.batch = paths.delivery.open_batch()
    collections.deque(itertools.starmap(step, [(value,) for value in inputs]), maxlen=0)


def instructions(name: str, events: int) -> float | None:
    """CPU instructions per event on ``name``'s path, counted by callgrind; ``None``
    without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
               "--collect-atstart=no", "--toggle-collect=starmap_next",
               sys.executable, __file__, "--count", name, "--events", str(events)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=True)
    match = re.search(r"Collected : (\d+)", out.stderr)
    return int(match.group(1)) / events if match else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--counted", type=int, default=1000, help="spans counted by callgrind")
    parser.add_argument("--no-instructions", action="store_true")
    parser.add_argument("--count", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count:
        counted(args.count, args.events)
        return
    paths = Paths(spans(args.events))
    timed = {}
    for name in PATHS:
        if name == "path_stdlib":
            saved, encoding._orjson = encoding._orjson, None
            try:
                timed[name] = per_event(paths.run(name), args.events)
            finally:
                encoding._orjson = saved
        else:
            timed[name] = per_event(paths.run(name), args.events)
    counts = {
        name: None if args.no_instructions else instructions(name, args.counted) for name in PATHS
    }
    rows = []
    for name, label in PATHS.items():
        count = counts[name]
        rows.append(
            [
                label,
                f"{timed[name]:.2f}",
                f"{timed[name] / timed['orjson']:.1f}x",
                "-" if count is None else f"{count:,.0f}",
                "-"
                if count is None or not counts["orjson"]
                else f"{count / counts['orjson']:.1f}x",
            ]
        )
    figures = {
        "serialisation_orjson_us": timed["path"],
        "serialisation_stdlib_us": timed["path_stdlib"],
        "serialisation_orjson_x": timed["path"] / timed["orjson"],
        "serialisation_stdlib_x": timed["path_stdlib"] / timed["orjson"],
    }
    if all(counts.values()):
        figures["serialisation_orjson_ix"] = counts["path"] / counts["orjson"]  # type: ignore[operator]
        figures["serialisation_stdlib_ix"] = counts["path_stdlib"] / counts["orjson"]  # type: ignore[operator]
        figures.update({f"serialisation_instructions_{k}": v for k, v in counts.items()})  # type: ignore[misc]
    record(**figures)
    print(f"Serialisation per event, {args.events:,} tagged spans of 8 properties\n")
    header = ["path", "µs per event (median of 7)", "x orjson alone",
              f"instructions per event (callgrind, {args.counted:,} spans)", "x orjson alone"]  # fmt: skip
    print(table(header, rows))
    saving = timed["path_stdlib"] - timed["path"]
    print(
        f"\nThe orjson extra saves {saving:.2f} µs per event "
        f"({timed['path_stdlib'] / timed['path']:.2f}x)."
    )


if __name__ == "__main__":
    main()
