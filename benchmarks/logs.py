"""Caller cost for log records: the application's own ``logger.info(...)`` loop through
OpenTelemetry's logging handler and each log processor, per record, with the
processor's worker running beside it. Every record is logged inside a span and
``identify()``, as in a request; everything sends to the counting sink.

    python benchmarks/logs.py [--records 20000] [--repetitions 7] [--pairs 60]
"""

from __future__ import annotations

import argparse
import itertools
import logging
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
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import PostHogClient, PostHogLogProcessor, identify

EXTRA = {
    "plan": "pro",
    "seats": 12,
    "price": 49.5,
    "trial": False,
    "region": "eu",
    "step": 3,
    "source": "ads",
}
_names = itertools.count()
TRACER = TracerProvider().get_tracer("bench")


class NoOpProcessor(LogRecordProcessor):
    def on_emit(self, log_record):
        pass

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def logger_for(processor: LogRecordProcessor | None) -> tuple[logging.Logger, LoggerProvider]:
    """A fresh logger whose records go through OpenTelemetry's handler to ``processor``."""
    provider = LoggerProvider(shutdown_on_exit=False)
    if processor is not None:
        provider.add_log_record_processor(processor)
    log = logging.getLogger(f"bench.{next(_names)}")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(LoggingHandler(logger_provider=provider))
    return log, provider


def record_loop(log: logging.Logger, records: int, tagged: bool) -> float:
    """µs per ``logger.info`` call, inside a span and ``identify()``."""
    extra = {**EXTRA, "posthog.event": "plan_chosen"} if tagged else {**EXTRA, "k": "v"}
    with identify("user-1"), TRACER.start_as_current_span("request"):
        start = time.perf_counter()
        for _ in range(records):
            log.info("plan chosen", extra=extra)
        elapsed = time.perf_counter() - start
    return elapsed / records * 1e6


def run_once(
    processor: LogRecordProcessor | None, records: int, tagged: bool, settle: Callable[[], None]
) -> float:
    log, provider = logger_for(processor)
    cost = record_loop(log, records, tagged)
    settle()
    provider.shutdown()
    return cost


def scenarios(url: str, records: int) -> dict[str, Callable[[], float]]:
    def ours(tagged: bool) -> Callable[[], float]:
        def run() -> float:
            reset_sink(url)
            client = PostHogClient("phc_bench", url)
            processor = PostHogLogProcessor(client, max_queue_size=records)
            cost = run_once(processor, records, tagged, lambda: processor.force_flush(120_000))
            client.close()
            return cost

        return run

    def blrp_otlp() -> float:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        reset_sink(url)
        processor = BatchLogRecordProcessor(OTLPLogExporter(endpoint=url + "/v1/logs"))
        return run_once(processor, records, True, lambda: processor.force_flush())

    return {
        "no processor": lambda: run_once(None, records, True, lambda: None),
        "no-op processor": lambda: run_once(NoOpProcessor(), records, True, lambda: None),
        "ours, untagged records": ours(False),
        "ours, tagged records": ours(True),
        "BatchLogRecordProcessor + OTLP/HTTP": blrp_otlp,
    }


def untagged_paired(pairs: int, records: int = 5_000) -> str:
    """Untagged records never reach our worker, so a paired comparison can resolve a few
    percent."""
    client = PostHogClient("phc_bench", "http://127.0.0.1:9")  # never contacted
    ours = PostHogLogProcessor(client)
    noop_log, noop_provider = logger_for(NoOpProcessor())
    our_log, our_provider = logger_for(ours)
    median, low, high = paired_ratios(
        lambda: record_loop(noop_log, records, False),
        lambda: record_loop(our_log, records, False),
        pairs,
    )
    noop_provider.shutdown()
    our_provider.shutdown()
    return (
        f"\nUntagged records, paired: ours / no-op = {median:.3f} "
        f"(quartiles {low:.3f}-{high:.3f}) over {pairs} back-to-back pairs of {records:,} records"
    )


def hook_cost(calls: int = 200_000) -> str:
    """``on_emit`` alone, on one untagged record the SDK made: ns per call."""

    class Keep(NoOpProcessor):
        def on_emit(self, log_record):
            self.record = log_record

    keep = Keep()
    log, provider = logger_for(keep)
    log.info("plan chosen", extra=EXTRA)
    record = keep.record
    ours = PostHogLogProcessor(PostHogClient("phc_bench", "http://127.0.0.1:9"))
    rows = []
    for name, processor in (("no-op processor", NoOpProcessor()), ("ours, untagged", ours)):
        emit = processor.on_emit
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(calls):
                emit(record)
            best = min(best, time.perf_counter() - start)
        rows.append([name, f"{best / calls * 1e9:.0f}"])
    ours.shutdown()
    provider.shutdown()
    return "\n" + table(["on_emit, untagged record", "ns per call (best of 5)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=60, help="rounds of the paired comparison")
    parser.add_argument("--no-instructions", action="store_true", help="skip callgrind")
    args = parser.parse_args()
    with sink() as url:
        results = alternate(scenarios(url, args.records), args.repetitions)
        wait_for_sink(url, 0, 1)
        counted = None
        if not args.no_instructions:
            from _callgrind import available, beyond_noop

            counted = (
                beyond_noop(Path(__file__), "record", url)
                if available()
                else ("\n(valgrind not found)", {})
            )
    noop = median_spread(results["no-op processor"])[0]
    blrp = median_spread(results["BatchLogRecordProcessor + OTLP/HTTP"])[0]
    rows = []
    for name, values in results.items():
        mid, spread = median_spread(values)
        rows.append([name, f"{mid:.2f}", f"{spread:.0%}", f"{mid / noop:.3f}", f"{blrp / mid:.2f}"])
    print(f"Caller cost per log record, {args.records:,} records x {args.repetitions} rounds\n")
    print(
        table(["scenario", "µs per record (median)", "spread", "x no-op", "BLRP+OTLP ÷ this"], rows)
    )
    print(untagged_paired(args.pairs))
    print(hook_cost())
    tagged = median_spread(results["ours, tagged records"])[0]
    record(logs_tagged_x_noop=tagged / noop)
    if counted is not None:
        print(counted[0])
        if counted[1]:
            record(logs_instructions_tagged=counted[1]["tagged"])


def child(name: str, records: int) -> None:
    """One loop to count under callgrind (``_callgrind``): ``records`` records inside a
    span and ``identify()``, through a no-op processor (``noop``) or ours (``untagged``,
    ``tagged``)."""
    import os

    if name == "noop":
        processor: LogRecordProcessor = NoOpProcessor()
    else:
        url = os.environ.get("BENCH_SINK", "http://127.0.0.1:9")
        client = PostHogClient("phc_bench", url)
        processor = PostHogLogProcessor(client, max_queue_size=records + 1)
    log, provider = logger_for(processor)
    record_loop(log, records, name == "tagged")
    processor.force_flush()
    provider.shutdown()


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
