"""send_traces and send_logs against the devserver's OTLP ingest: every span and record
arrives, linked to its person and session, counted apart from events; retries, drops and
shutdown's deadline as for events."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from posthog_otel import PostHogClient, PostHogLogProcessor, PostHogSpanExporter, identify
from tests.support.server import API_KEY


def test_every_span_arrives_with_its_person_and_session(make_pipeline, server):
    tracer, processor = make_pipeline(send_traces=True)
    threads, per_thread = 4, 250

    def work(n: int) -> None:
        for i in range(per_thread):
            with identify(f"user-{n}", session_id=f"session-{n}"):
                with tracer.start_as_current_span("request"):
                    with tracer.start_as_current_span("db", attributes={"i": i}):
                        pass

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with tracer.start_as_current_span("anonymous"):  # no identity: sent without the two
        pass
    total = threads * per_thread * 2 + 1
    assert processor.force_flush(30_000)
    spans = server.wait_for_spans(total, timeout=30)
    assert len(spans) == total  # none lost, none twice
    assert len({s["span_id"] for s in spans}) == total
    for span in spans:
        attrs = span["attributes"]
        if span["name"] == "anonymous":
            assert "posthogDistinctId" not in attrs and "sessionId" not in attrs
            continue
        user = attrs["posthogDistinctId"]
        assert user.startswith("user-")
        assert attrs["sessionId"] == "session-" + user.removeprefix("user-")
    stats = processor.stats()
    assert stats.traces.queued == stats.traces.sent == total
    assert stats.traces.dropped == {} and stats.traces.in_flight == 0
    assert stats.events_queued == stats.events_sent == 0  # spans are not events
    assert server.events() == []


def test_unsampled_spans_are_not_sent_and_tagged_spans_still_become_events(make_pipeline, server):
    tracer, processor = make_pipeline(send_traces=True)
    with identify("user-1"):
        with tracer.start_as_current_span("checkout", attributes={"posthog.event": "bought"}):
            pass
    processor.force_flush(10_000)
    [span] = server.wait_for_spans(1)
    assert span["attributes"]["posthogDistinctId"] == "user-1"
    [event] = server.wait_for_events(1)
    assert event["event"] == "bought" and event["distinct_id"] == "user-1"

    quiet, quiet_processor = make_pipeline(send_traces=True, sampler=ALWAYS_OFF)
    with quiet.start_as_current_span("never"):
        pass
    quiet_processor.force_flush(10_000)
    assert quiet_processor.stats().traces.queued == 0


def test_a_failing_endpoint_is_retried_and_its_spans_still_arrive(make_pipeline, server):
    server.faults.respond(503, times=2, paths="/i/v1/traces")
    tracer, processor = make_pipeline(send_traces=True)
    for _ in range(10):
        with tracer.start_as_current_span("s"):
            pass
    assert processor.force_flush(10_000)
    server.wait_for_spans(10)
    stats = processor.stats().traces
    assert stats.sent == 10 and stats.retries == 2 and stats.dropped == {}


def test_a_refusing_endpoint_counts_its_spans_by_status(make_pipeline, server):
    server.faults.respond(400, times=1, paths="/i/v1/traces")
    tracer, processor = make_pipeline(send_traces=True)
    for _ in range(5):
        with tracer.start_as_current_span("s"):
            pass
    processor.force_flush(10_000)
    stats = processor.stats().traces
    assert stats.dropped == {"http_400": 5} and stats.sent == 0 and stats.in_flight == 0


def test_a_full_queue_drops_and_counts_the_rest(make_pipeline, server):
    server.faults.hang(2.0, times=1, paths="/i/v1/traces")  # the first send waits
    tracer, processor = make_pipeline(send_traces=True, max_queue_size=50)
    for _ in range(2_000):
        with tracer.start_as_current_span("s"):
            pass
    assert processor.force_flush(30_000)
    stats = processor.stats().traces
    assert stats.dropped.get("queue_full", 0) > 0
    assert stats.queued == stats.sent  # what was accepted arrived
    assert stats.queued + stats.dropped["queue_full"] == 2_000
    assert len(server.wait_for_spans(stats.sent, timeout=20)) == stats.sent


def test_shutdown_returns_within_its_timeout_while_posthog_hangs(make_pipeline, server):
    server.faults.hang(30.0, times=5, paths="/i/v1/traces")
    tracer, processor = make_pipeline(send_traces=True)
    for _ in range(100):
        with tracer.start_as_current_span("s"):
            pass
    started = time.monotonic()
    processor.shutdown(timeout_millis=1_000)
    took = time.monotonic() - started
    assert took < 1.0 + 1.0 + 1.5  # the timeout, SETTLE, and a loaded machine
    stats = processor.stats().traces
    assert stats.queued == 100
    assert stats.dropped == {"shutdown": 100} and stats.in_flight == 0


@pytest.fixture
def logged(server):
    """A logger whose records go to a PostHogLogProcessor sharing a span processor's client."""
    made = []

    def make(**options):
        client = PostHogClient(API_KEY, server.url, timeout=2.0, retry_delay=0.01)
        from posthog_otel import PostHogSpanProcessor

        spans = PostHogSpanProcessor(client)
        tracer_provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
        tracer_provider.add_span_processor(spans)
        logs = PostHogLogProcessor(processor=spans, **options)
        provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
        provider.add_log_record_processor(logs)
        log = logging.getLogger(f"otlp-test-{len(made)}")
        log.setLevel(logging.DEBUG)
        log.propagate = False
        log.addHandler(LoggingHandler(logger_provider=provider))
        made.append((tracer_provider, provider, client))
        return tracer_provider.get_tracer("t"), log, logs

    yield make
    for tracer_provider, provider, client in made:
        provider.shutdown()
        tracer_provider.shutdown()
        client.close()


def test_every_record_from_the_level_arrives_with_person_session_and_trace(logged, server):
    tracer, log, logs = logged(send_logs=True)
    with identify("user-7", session_id="session-7"):
        with tracer.start_as_current_span("request") as span:
            log.info("hello %s", "there", extra={"posthog.event": "greeted"})
            log.warning("careful")
            log.debug("too quiet")  # below INFO
        trace_id = format(span.get_span_context().trace_id, "032x")
    with tracer.start_as_current_span("no user"):
        log.error("nobody")
    logs.force_flush(10_000)
    records = server.wait_for_logs(3)
    by_body = {r["body"]: r for r in records}
    assert set(by_body) == {"hello there", "careful", "nobody"}
    for body in ("hello there", "careful"):
        assert by_body[body]["attributes"]["posthogDistinctId"] == "user-7"
        assert by_body[body]["attributes"]["sessionId"] == "session-7"
        assert by_body[body]["trace_id"] == trace_id
    assert "posthogDistinctId" not in by_body["nobody"]["attributes"]
    stats = logs.stats()
    assert stats.logs.queued == stats.logs.sent == 3 and stats.logs.dropped == {}
    assert server.wait_for_events(1)[0]["event"] == "greeted"  # still an event


def test_identity_from_the_current_span_when_no_baggage(logged, server):
    tracer, log, logs = logged(send_logs=True, logs_min_level="WARNING")
    attributes = {"posthog.distinct_id": "span-user", "posthog.session_id": "span-session"}
    with tracer.start_as_current_span("job", attributes=attributes):
        log.info("not sent: below WARNING")
        log.warning("sent")
    logs.force_flush(10_000)
    [record] = server.wait_for_logs(1)
    assert record["body"] == "sent"
    assert record["attributes"]["posthogDistinctId"] == "span-user"
    assert record["attributes"]["sessionId"] == "span-session"


def test_a_plain_exporter_sends_each_exports_spans(server):
    client = PostHogClient(API_KEY, server.url, timeout=2.0, retry_delay=0.01)
    exporter = PostHogSpanExporter(client, attach_processor=False, send_traces=True)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("a", attributes={"posthog.distinct_id": "u"}):
        with tracer.start_as_current_span("b"):
            pass
    result = exporter.export(memory.get_finished_spans())
    assert result.name == "SUCCESS"
    spans = server.wait_for_spans(2)
    assert {s["name"] for s in spans} == {"a", "b"}
    assert exporter.stats().traces.sent == 2
    exporter.shutdown()
    provider.shutdown()
    client.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_after_fork_parent_and_child_each_send_their_own_spans(server, make_pipeline):
    tracer, processor = make_pipeline(send_traces=True, flush_interval=60)
    with tracer.start_as_current_span("before_fork"):
        pass
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        code = 1
        try:
            if processor.stats().traces.queued != 0:  # the parent's are the parent's
                os._exit(3)
            with tracer.start_as_current_span("from_child"):
                pass
            code = 0 if processor.force_flush(10_000) else 2
            if processor.stats().traces.sent != 1:
                code = 4
        finally:
            os._exit(code)
    with tracer.start_as_current_span("from_parent"):
        pass
    assert processor.force_flush(10_000)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    spans = server.wait_for_spans(3)
    assert sorted(s["name"] for s in spans) == ["before_fork", "from_child", "from_parent"]


SIGTERM_SCRIPT = """
import os, signal, time
from opentelemetry.sdk.trace import TracerProvider
from posthog_otel import PostHogClient, PostHogSpanProcessor

provider = TracerProvider()
processor = PostHogSpanProcessor(PostHogClient({key!r}, {url!r}), flush_interval=60)
provider.add_span_processor(processor)
tracer = provider.get_tracer("t")
for i in range(300):
    with tracer.start_as_current_span("queued"):
        pass
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
"""


def test_a_script_killed_by_sigterm_delivers_its_spans(server):
    script = textwrap.dedent(SIGTERM_SCRIPT.format(key=API_KEY, url=server.url))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POSTHOG_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, "POSTHOG_SEND_TRACES": "true"},
    )
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert len(server.wait_for_spans(300)) == 300  # flush_interval=60: only the drain sent them
