"""The pipeline's counters as OpenTelemetry metrics, read with the SDK's InMemoryMetricReader."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from posthog_otel._pipeline import metrics
from tests.support.server import API_KEY


def _read(reader: InMemoryMetricReader) -> dict[tuple[str, tuple], int]:
    """Every data point, by instrument name and attributes."""
    points = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                    points[key] = point.value
    return points


def _delta(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def test_sent_dropped_retried_and_queue_size_as_instruments(server, make_pipeline):
    reader = InMemoryMetricReader()
    metrics.instrument(MeterProvider(metric_readers=[reader]))
    before = _read(reader)
    assert ("posthog_otel.queue.size", ()) in before
    server.faults.respond(503, times=1, paths="/batch")
    tracer, processor = make_pipeline(
        before_send=lambda e: None if e["event"] == "secret" else e, max_batch_size=10
    )
    for name in ("a", "b", "secret", "c"):
        with tracer.start_as_current_span("s", attributes={"posthog.event": name}):
            pass
    assert processor.force_flush(10_000)
    stats = processor.stats()
    assert (stats.events_sent, stats.retries, dict(stats.dropped)) == (3, 1, {"before_send": 1})
    assert _delta(_read(reader), before) == {
        ("posthog_otel.events.sent", ()): 3,
        ("posthog_otel.events.dropped", (("reason", "before_send"),)): 1,
        ("posthog_otel.requests.retried", ()): 1,
    }


def test_the_queue_gauge_sums_live_pipelines(make_pipeline):
    reader = InMemoryMetricReader()
    metrics.instrument(MeterProvider(metric_readers=[reader]))
    tracer, processor = make_pipeline(flush_interval=60)
    queued = _read(reader)[("posthog_otel.queue.size", ())]
    with tracer.start_as_current_span("s", attributes={"posthog.event": "waits"}):
        pass  # one item below the encoder's wake-up mark: it waits for the interval
    assert _read(reader)[("posthog_otel.queue.size", ())] == queued + 1
    assert processor.force_flush(10_000)
    assert _read(reader)[("posthog_otel.queue.size", ())] == queued


SCRIPT = """
import json, sys
from opentelemetry import metrics
from opentelemetry.sdk.trace import TracerProvider
from posthog_otel import PostHogSpanProcessor

configured = sys.argv[1] == "configured"
if configured:  # the application's MeterProvider, set after our processor exists
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
processor = PostHogSpanProcessor(api_key="{key}", host="{url}")
if configured:
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
tracer = TracerProvider(shutdown_on_exit=False)
tracer.add_span_processor(processor)
for _ in range(4):
    with tracer.get_tracer("x").start_as_current_span("s", attributes={{"posthog.event": "m"}}):
        pass
processor.force_flush(10_000)
points = {{}}
if configured:
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                points[m.name] = [p.value for p in m.data.data_points]
print(json.dumps({{"points": points, "sdk": "opentelemetry.sdk.metrics" in sys.modules}}))
"""


def _run(server, mode: str) -> dict:
    script = textwrap.dedent(SCRIPT.format(key=API_KEY, url=server.url))
    result = subprocess.run(
        [sys.executable, "-c", script, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_global_meter_provider_gets_them_even_when_set_later(server):
    points = _run(server, "configured")["points"]
    assert points["posthog_otel.events.sent"] == [4]
    assert points["posthog_otel.requests.retried"] == [0]
    assert points["posthog_otel.queue.size"] == [0]


def test_without_a_meter_provider_nothing_of_the_metrics_sdk_is_loaded(server):
    assert _run(server, "none") == {"points": {}, "sdk": False}
