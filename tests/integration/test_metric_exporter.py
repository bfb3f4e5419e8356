"""PostHogMetricExporter against the devserver: delta temporality, histograms, the Bearer
key, retries, an unreachable host, shutdown, and OTEL_METRICS_EXPORTER=posthog with no code."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from posthog_otel import ConfigurationError, PostHogClient, PostHogMetricExporter, identify
from tests.support.server import API_KEY, wait_until

BIN = Path(sys.executable).parent
HOUR_MS = 3_600_000  # the reader's own timer never fires: each test flushes by hand


@pytest.fixture
def make_meter(server):
    """A MeterProvider whose only reader exports through a PostHogMetricExporter, flushed
    by the test (``provider.force_flush()`` collects and exports at once)."""
    made = []

    def make(host=None, *, export_timeout=10.0, **client_options):
        client = PostHogClient(
            API_KEY, host or server.url, **{"timeout": 2.0, "retry_delay": 0.01, **client_options}
        )
        exporter = PostHogMetricExporter(client, export_timeout=export_timeout)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=HOUR_MS)
        provider = MeterProvider(
            metric_readers=[reader], resource=Resource.create({"service.name": "shop"})
        )
        made.append((provider, client))
        return provider, exporter

    yield make
    for provider, client in made:
        provider.shutdown(timeout_millis=5_000)
        client.close()


def test_every_instrument_kind_is_delta_and_a_counter_sends_its_increment(server, make_meter):
    provider, exporter = make_meter()
    kinds = (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter)
    for kind in (*kinds, ObservableGauge):  # what the reader asks the exporter
        assert exporter._preferred_temporality[kind] is AggregationTemporality.DELTA
    meter = provider.get_meter("shop")
    orders = meter.create_counter("orders")
    orders.add(5, {"plan": "pro"})
    assert provider.force_flush()
    orders.add(3, {"plan": "pro"})
    assert provider.force_flush()

    points = server.wait_for_metrics(2, name="orders")[::-1]  # oldest first
    assert [m["temporality"] for m in points] == ["delta", "delta"]
    assert [m["type"] for m in points] == ["sum", "sum"]
    assert all(m["monotonic"] for m in points)
    values = [m["data_points"][0]["value"] for m in points]
    assert values == [5, 3]  # cumulative would send 5, then 8
    first, second = (m["data_points"][0] for m in points)
    assert second["start_time_unix_nano"] >= first["time_unix_nano"]  # the next interval
    assert first["attributes"] == {"plan": "pro"}
    assert points[0]["resource"]["service.name"] == "shop"
    assert exporter.stats().events_sent == 2


def test_histogram_buckets_and_up_down_counters_arrive_as_delta(server, make_meter):
    provider, _ = make_meter()
    meter = provider.get_meter("shop")
    latency = meter.create_histogram("latency", unit="ms")
    stock = meter.create_up_down_counter("stock")
    for value in (3, 7, 30, 800):
        latency.record(value)
    stock.add(10)
    stock.add(-4)
    assert provider.force_flush()

    (histogram,) = server.wait_for_metrics(1, name="latency")
    assert histogram["type"] == "histogram"
    assert histogram["temporality"] == "delta"
    (point,) = histogram["data_points"]
    assert point["count"] == 4
    assert point["sum"] == 840
    bounds = point["explicit_bounds"]
    assert bounds[:4] == [0, 5, 10, 25]  # the SDK's default boundaries
    assert len(point["bucket_counts"]) == len(bounds) + 1
    assert sum(point["bucket_counts"]) == 4
    assert point["bucket_counts"][1] == 1  # 3 in (0, 5]
    (updown,) = server.wait_for_metrics(1, name="stock")
    assert (updown["temporality"], updown["monotonic"]) == ("delta", False)
    assert updown["data_points"][0]["value"] == 6


def _many_series(counters=4, histograms=3):
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader], resource=Resource.create({"service.name": "shop"})
    )
    meter = provider.get_meter("shop")
    counter, histogram = meter.create_counter("hits"), meter.create_histogram("size")
    for n in range(counters):
        counter.add(n + 1, {"route": f"/r{n}"})
    for n in range(histograms):
        histogram.record(10 * (n + 1), {"route": f"/r{n}"})
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


def test_a_large_export_goes_as_several_requests_in_order(server, monkeypatch):
    from posthog_otel._pipeline import metric_exporter

    monkeypatch.setattr(metric_exporter, "MAX_POINTS_PER_REQUEST", 3)
    exporter = PostHogMetricExporter(api_key=API_KEY, host=server.url, retry_delay=0.01)
    try:
        assert exporter.export(_many_series()) is MetricExportResult.SUCCESS
        assert len(server.requests.matching("/i/v1/metrics")) == 3  # 3 + 3 + 1 points
        server.wait_for_metrics(7)
        hits = {
            p["attributes"]["route"]: p["value"]
            for m in server.metrics("hits")
            for p in m["data_points"]
        }
        assert hits == {"/r0": 1, "/r1": 2, "/r2": 3, "/r3": 4}
        sizes = {
            p["attributes"]["route"]: p["sum"]
            for m in server.metrics("size")
            for p in m["data_points"]
        }
        assert sizes == {"/r0": 10, "/r1": 20, "/r2": 30}
        assert {m["resource"]["service.name"] for m in server.metrics()} == {"shop"}

        server.faults.respond(400, times=1, paths="/i/v1/metrics", after=1)
        assert exporter.export(_many_series()) is MetricExportResult.FAILURE
        stats = exporter.stats()
    finally:
        exporter.shutdown()
    assert (stats.events_queued, stats.events_sent, dict(stats.dropped)) == (
        14,
        11,
        {"http_400": 3},
    )


def test_metrics_carry_no_user_attribute_even_inside_identify(server, make_meter):
    provider, _ = make_meter()
    counter = provider.get_meter("shop").create_counter("clicks")
    with identify("user-1", session_id="s-1"):
        counter.add(1, {"button": "buy"})
    assert provider.force_flush()
    (metric,) = server.wait_for_metrics(1, name="clicks")
    assert metric["data_points"][0]["attributes"] == {"button": "buy"}


def test_sent_with_the_project_key_as_bearer_and_protobuf(server, make_meter):
    server.api_key = API_KEY  # the devserver now refuses any other key
    provider, _ = make_meter()
    provider.get_meter("shop").create_counter("c").add(1)
    assert provider.force_flush()
    server.wait_for_metrics(1, name="c")
    (request,) = server.requests.matching("/i/v1/metrics")
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["content-type"] == "application/x-protobuf"

    wrong = PostHogMetricExporter(api_key="phc_wrong", host=server.url, retries=0)
    provider2 = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(wrong, export_interval_millis=HOUR_MS)]
    )
    provider2.get_meter("shop").create_counter("c").add(1)
    provider2.force_flush()
    assert wrong.stats().dropped == {"http_401": 1}
    provider2.shutdown()


def test_a_5xx_is_retried_then_delivered(server, make_meter):
    server.faults.respond(503, times=2, paths="/i/v1/metrics")
    provider, exporter = make_meter()
    provider.get_meter("shop").create_counter("retried").add(2)
    assert provider.force_flush()
    (metric,) = server.wait_for_metrics(1, name="retried")
    assert metric["data_points"][0]["value"] == 2
    stats = exporter.stats()
    assert (stats.retries, stats.events_sent, dict(stats.dropped)) == (2, 1, {})
    assert [r.status for r in server.requests.matching("/i/v1/metrics")] == [503, 503, 200]


def test_an_unreachable_host_fails_within_the_timeout_and_is_counted_and_logged_once(
    unused_port, caplog
):
    caplog.set_level(logging.WARNING, "posthog_otel")
    exporter = PostHogMetricExporter(
        api_key=API_KEY,
        host=f"http://127.0.0.1:{unused_port}",
        export_timeout=1.0,
        retries=100,
        retry_delay=0.05,
    )
    data = _metrics_data(points=2)
    try:
        for _ in range(2):
            started = time.monotonic()
            assert exporter.export(data) is MetricExportResult.FAILURE
            assert time.monotonic() - started < 1.0 + 0.75  # the export's own deadline
        stats = exporter.stats()
    finally:
        exporter.shutdown()
    assert dict(stats.dropped) == {"network": 4}
    assert (stats.events_queued, stats.events_sent) == (4, 0)
    assert stats.retries > 2  # retried until the deadline, not once
    lines = [r.getMessage() for r in caplog.records if "metric data point" in r.getMessage()]
    assert len(lines) == 2, lines  # the episode's first drop, and its count at shutdown
    assert "2 more metric data point(s) dropped (network)" in lines[1]
    assert API_KEY not in caplog.text


def test_shutdown_cuts_off_an_export_in_flight_and_refuses_later_ones(server):
    server.faults.hang(20, paths="/i/v1/metrics", times=5)
    exporter = PostHogMetricExporter(
        api_key=API_KEY, host=server.url, export_timeout=30.0, timeout=20.0
    )
    data = _metrics_data()
    results = []
    thread = threading.Thread(target=lambda: results.append(exporter.export(data)), daemon=True)
    thread.start()
    wait_until(lambda: server.requests.matching("/i/v1/metrics"))
    started = time.monotonic()
    exporter.shutdown()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2.0  # not the 20 s hang, nor the 30 s timeout
    assert results == [MetricExportResult.FAILURE]
    assert exporter.export(data) is MetricExportResult.FAILURE
    assert exporter.stats().dropped == {"network": 1, "closed": 1}


def test_export_never_raises_on_data_it_cannot_read_or_encode(server):
    from types import SimpleNamespace

    exporter = PostHogMetricExporter(api_key=API_KEY, host=server.url)
    odd_metric = SimpleNamespace(name="odd", data=SimpleNamespace(data_points=[object()]))
    scope = SimpleNamespace(metrics=[odd_metric], scope=None, schema_url="")
    odd = SimpleNamespace(
        resource_metrics=[SimpleNamespace(resource=None, scope_metrics=[scope], schema_url="")]
    )
    try:
        assert exporter.export(object()) is MetricExportResult.FAILURE  # not MetricsData
        assert exporter.export(odd) is MetricExportResult.FAILURE  # the encoder refuses it
        stats = exporter.stats()
    finally:
        exporter.shutdown()
    assert dict(stats.dropped) == {"invalid": 2}
    assert stats.events_queued == 2
    assert server.requests.matching("/i/v1/metrics") == []


def test_configuration_and_repr(server, monkeypatch):
    monkeypatch.setenv("POSTHOG_API_KEY", API_KEY)
    monkeypatch.setenv("POSTHOG_HOST", server.url)
    exporter = PostHogMetricExporter()
    try:
        assert API_KEY not in repr(exporter)
        assert exporter.force_flush() is True
    finally:
        exporter.shutdown()
        exporter.shutdown()  # idempotent
    with pytest.raises(ConfigurationError, match="export_timeout"):
        PostHogMetricExporter(api_key=API_KEY, export_timeout=0)
    monkeypatch.setitem(
        sys.modules, "opentelemetry.exporter.otlp.proto.common.metrics_encoder", None
    )
    with pytest.raises(ConfigurationError, match=r"otlp extra.*posthog-otel\[otlp\]"):
        PostHogMetricExporter(api_key=API_KEY)


def test_the_entry_point_is_the_exporter():
    (found,) = entry_points(group="opentelemetry_metrics_exporter", name="posthog")
    assert found.load() is PostHogMetricExporter
    assert PostHogMetricExporter.__module__ == "posthog_otel"  # shown where users import it


def test_otel_metrics_exporter_posthog_under_opentelemetry_instrument(server):
    """No code: opentelemetry-instrument builds the exporter from the entry point and the
    POSTHOG_* variables; the SDK's periodic reader sends every 100 ms."""
    script = (
        "from opentelemetry import metrics\n"
        "counter = metrics.get_meter('app').create_counter('signups')\n"
        "counter.add(4, {'plan': 'free'})\n"
        "import sys; sys.stdin.read()\n"  # alive until the test has seen an export
    )
    env = {
        **os.environ,
        "POSTHOG_API_KEY": API_KEY,
        "POSTHOG_HOST": server.url,
        "OTEL_METRICS_EXPORTER": "posthog",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_METRIC_EXPORT_INTERVAL": "100",
        "OTEL_SERVICE_NAME": "signup-service",
    }
    process = subprocess.Popen(
        [str(BIN / "opentelemetry-instrument"), sys.executable, "-c", script],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        (metric, *_) = server.wait_for_metrics(1, name="signups", timeout=60)
    finally:
        output, _ = process.communicate("", timeout=30)
    assert process.returncode == 0, output
    assert metric["temporality"] == "delta"
    assert metric["data_points"][0]["value"] == 4
    assert metric["resource"]["service.name"] == "signup-service"


def _metrics_data(points=1):
    """One collection of one counter (``points`` series), as a reader hands it over."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("shop").create_counter("hung")
    for n in range(points):
        counter.add(1, {"n": n})
    data = reader.get_metrics_data()
    provider.shutdown()
    return data
