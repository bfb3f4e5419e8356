"""PostHogSpanExporter: export() results, the entry point, and BatchSpanProcessor."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk._configuration import _import_exporters
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from conftest import API_KEY
from posthog_otel import PostHogClient, PostHogSpanExporter
from spans import recording


def tagged_spans(*names):
    with recording() as (tracer, ended):
        for name in names:
            with tracer.start_as_current_span(name, attributes={"posthog.event": name}):
                pass
        with tracer.start_as_current_span("untagged"):
            pass
        return ended()


def test_export_sends_tagged_spans_only(server, client):
    exporter = PostHogSpanExporter(client)
    assert exporter.export(tagged_spans("a", "b")) is SpanExportResult.SUCCESS
    assert sorted(e["event"] for e in server.events()) == ["a", "b"]
    assert exporter.stats().spans_seen == 3
    assert exporter.export(tagged_spans()) is SpanExportResult.SUCCESS
    assert len(server.requests.matching("/batch")) == 1  # nothing to send, no request


def test_export_reports_failure_and_never_raises(server, client, unused_port):
    server.faults.respond(401, times=5)
    exporter = PostHogSpanExporter(client)
    assert exporter.export(tagged_spans("a")) is SpanExportResult.FAILURE
    assert exporter.stats().dropped == {"http_401": 1}
    down = PostHogSpanExporter(
        PostHogClient(API_KEY, f"http://127.0.0.1:{unused_port}", retries=1, retry_delay=0.01),
        export_timeout=2,
    )
    assert down.export(tagged_spans("a")) is SpanExportResult.FAILURE
    assert down.stats().dropped == {"network": 1}


def test_a_batch_refused_as_too_large_is_split(server, client):
    server.faults.respond(413)
    exporter = PostHogSpanExporter(client)
    assert exporter.export(tagged_spans("a", "b", "c", "d")) is SpanExportResult.SUCCESS
    assert sorted(e["event"] for e in server.events()) == ["a", "b", "c", "d"]
    assert [r.status for r in server.requests.matching("/batch")] == [413, 200, 200]


def test_a_single_event_refused_as_too_large_is_logged_with_the_real_cause(server, client, caplog):
    server.faults.respond(413, times=5)  # a small event: only the server's limit is to blame
    exporter = PostHogSpanExporter(client)
    assert exporter.export(tagged_spans("a")) is SpanExportResult.FAILURE
    assert exporter.stats().dropped == {"too_large": 1}
    (line,) = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert "PostHog refused the request as too large, HTTP 413" in line
    assert "900 KiB" not in line


def test_an_event_over_the_limit_is_logged_with_its_size(server, client, caplog):
    exporter = PostHogSpanExporter(client)
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("s", attributes={"posthog.event": "huge"}) as span:
            span.set_attribute("blob", "x" * 1_000_000)
        spans = ended()
    exporter.export(spans)
    assert exporter.stats().dropped == {"too_large": 1}
    (line,) = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert "900 KiB" in line and "'huge'" in line
    assert server.requests.matching("/batch") == []


def test_shutdown_is_idempotent_and_final(server, client):
    exporter = PostHogSpanExporter(client)
    exporter.shutdown()
    exporter.shutdown()
    assert exporter.export(tagged_spans("late")) is SpanExportResult.FAILURE
    assert exporter.stats().dropped == {"shutdown": 1}
    assert exporter.force_flush() is True


def test_the_sdk_finds_us_by_name_and_we_configure_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("POSTHOG_API_KEY", API_KEY)
    monkeypatch.setenv("POSTHOG_HOST", server.url)
    span_exporters, _, _ = _import_exporters(["posthog"], [], [])
    exporter_class = span_exporters["posthog"]
    assert exporter_class is PostHogSpanExporter
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter_class()))
    with provider.get_tracer("t").start_as_current_span(
        "s", attributes={"posthog.event": "from_env"}
    ):
        pass
    provider.shutdown()
    assert [e["event"] for e in server.events()] == ["from_env"]


def test_without_configuration_the_error_names_the_variable(monkeypatch):
    monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    with pytest.raises(ValueError, match="POSTHOG_API_KEY"):
        PostHogSpanExporter()


def test_client_settings_as_arguments(server):
    exporter = PostHogSpanExporter(api_key=API_KEY, host=server.url, gzip=False, timeout=1.0)
    assert exporter.export(tagged_spans("plain")) is SpanExportResult.SUCCESS
    assert "Content-Encoding" not in server.requests.matching("/batch")[0].headers
    exporter.shutdown()
    assert API_KEY not in repr(exporter)


@pytest.mark.parametrize(
    "options", [{"max_batch_size": 0}, {"max_batch_size": 20_001}, {"max_queue_size": 0}]
)
def test_nonsense_sizes_are_refused(client, options):
    from posthog_otel import PostHogSpanProcessor

    with pytest.raises(ValueError, match=r"max_batch_size must be from 1|must be at least 1"):
        PostHogSpanProcessor(client, **options)
    if "max_batch_size" in options:
        with pytest.raises(ValueError, match="max_batch_size"):
            PostHogSpanExporter(client, **options)


def test_export_timeout_bounds_an_export_against_a_trickling_server(server):
    # Each answer trickles at one byte a second; the per-attempt timeout (30 s) and the
    # retries would allow minutes: only export_timeout ends the call.
    server.faults.trickle(bytes_per_second=1, times=100, paths="/batch")
    client = PostHogClient(API_KEY, server.url, timeout=30, retries=5, retry_delay=0.01)
    exporter = PostHogSpanExporter(client, export_timeout=1.5)
    started = time.monotonic()
    assert exporter.export(tagged_spans("a", "b")) is SpanExportResult.FAILURE
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 3.5, elapsed  # the upper bound is a hang guard
    assert exporter.stats().dropped == {"network": 2}
    client.close()
