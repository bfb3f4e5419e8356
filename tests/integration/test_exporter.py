"""PostHogSpanExporter: export() results, the entry point, and BatchSpanProcessor."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk._configuration import _import_exporters
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from posthog_otel import PostHogClient, PostHogSpanExporter
from tests.support.server import API_KEY
from tests.support.spans import recording


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
    # Attributes are cut to fit (test_hostile_spans); a thousand small properties
    # added by before_send are not, and lose their event.
    def many(event):
        event["properties"].update({f"p{i}": "x" * 1000 for i in range(1000)})
        return event

    exporter = PostHogSpanExporter(client, before_send=many)
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("s", attributes={"posthog.event": "huge"}):
            pass
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
    assert exporter.stats().dropped == {"closed": 1}
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


def test_attached_to_the_global_provider_it_behaves_as_the_processor(server, client):
    from opentelemetry import baggage, context

    provider = TracerProvider()
    exporter = PostHogSpanExporter(client, attach_processor=False)
    assert exporter.stats().spans_seen == 0
    # What opentelemetry-instrument does: the global provider is set, then we are built.
    from unittest import mock

    with mock.patch("opentelemetry.trace.get_tracer_provider", return_value=provider):
        attached = PostHogSpanExporter(client)
    provider.add_span_processor(BatchSpanProcessor(attached))
    tracer = provider.get_tracer("t")
    token = context.attach(baggage.set_baggage("posthog.distinct_id", "from-baggage"))
    try:
        with tracer.start_as_current_span("s", attributes={"posthog.event": "seen_at_start"}):
            pass
    finally:
        context.detach(token)
    provider.shutdown()
    (event,) = server.wait_for_events(1, event="seen_at_start")
    assert event["distinct_id"] == "from-baggage"  # identity copied at span start
    assert len(server.events("seen_at_start")) == 1
    assert server.repeats() == {}  # the exporter skipped what it took (same span, same uuid)
    assert attached.stats().events_sent == 1


def test_under_opentelemetry_instrument_identity_crosses_services(server, services):
    downstream = services.flask(telemetry="exporter", env={"OTEL_BSP_SCHEDULE_DELAY": "100"})
    upstream = services.flask(
        telemetry="exporter",
        env={"OTEL_BSP_SCHEDULE_DELAY": "100", "DOWNSTREAM_URL": downstream.url},
    )
    import requests

    requests.get(f"{upstream.url}/items/7?user=user-1", timeout=10).raise_for_status()
    events = server.wait_for_events(2, event="item_viewed", timeout=20)
    # Upstream: identify() ran after the server span started; downstream: from baggage.
    assert [e["distinct_id"] for e in events] == ["user-1", "user-1"]
    assert len({e["properties"]["$trace_id"] for e in events}) == 1


BURST = """
from opentelemetry import trace
tracer = trace.get_tracer("burst")
for i in range(50_000):
    with tracer.start_as_current_span("s", attributes={"posthog.event": "burst", "n": i}):
        pass
"""


def test_under_opentelemetry_instrument_a_burst_of_50000_loses_nothing(server, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from tests.support.services import service_env

    script = tmp_path / "burst.py"
    script.write_text(BURST)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    env = service_env(server.url, "burst", OTEL_TRACES_EXPORTER="posthog")
    result = subprocess.run(
        [str(instrument), sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert server.store.count(event="burst") == 50_000  # the SDK's own queue drops 2/3


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
