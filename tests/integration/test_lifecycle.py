"""Lifecycle: after ``shutdown()`` nothing of ours runs or holds on, the counters are settled,
and a process's last flush at exit needs no new thread (Python 3.12.0-3.12.2 refuse one).

The exit tests run the package in a child interpreter, so they also run on the other Python
versions (``python3 dev.py test-versions``): 3.12.1 is the one that refuses threads at exit.
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import textwrap
import threading
import weakref

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import (
    PostHogClient,
    PostHogFlagProvider,
    PostHogLogProcessor,
    PostHogSpanProcessor,
)
from posthog_otel._pipeline.spans import pipeline_of
from tests.support.server import API_KEY, assert_accounted, wait_until


def _ours() -> set[threading.Thread]:
    """Threads of ours still running, but the process's one watchdog (it serves every
    client for the process's life, started once)."""
    return {
        t
        for t in threading.enumerate()
        if (t.name.startswith("posthog-otel") and t.name != "posthog-otel-watchdog")
        or isinstance(t, threading.Timer)
    }


def test_shutdown_leaves_no_thread_of_ours_running(server):
    before = _ours()
    client = PostHogClient(API_KEY, server.url, retry_delay=0.01)
    for i in range(200):
        processor = PostHogSpanProcessor(client)
        processor.shutdown(timeout_millis=30_000)
        flags = PostHogFlagProvider(client)
        assert flags.capture(f"made_{i}", "u1")  # the provider's own queue, and its threads
        flags.shutdown(timeout=30)
    client.close()
    # Within a second of the last shutdown, whatever it had to wait for.
    wait_until(lambda: not _ours() - before, timeout=1.0)
    assert len(server.events()) == 200


def test_nothing_holds_a_pipeline_after_shutdown(server):
    provider = TracerProvider(shutdown_on_exit=False)
    processor = PostHogSpanProcessor(api_key=API_KEY, host=server.url)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tests")
    for _ in range(5):
        with tracer.start_as_current_span("s", attributes={"posthog.event": "held"}):
            pass
    pipeline = pipeline_of(processor)
    refs = [weakref.ref(pipeline), weakref.ref(pipeline.worker)]
    del pipeline
    provider.shutdown()
    assert processor.stats().events_sent == 5
    del provider, processor, tracer

    def released() -> bool:
        gc.collect()
        return all(ref() is None for ref in refs)

    wait_until(released, timeout=1.0)


def test_the_counters_are_settled_when_shutdown_returns(server, make_pipeline):
    server.faults.hang(30, paths="/batch")
    tracer, processor = make_pipeline(client_options={"timeout": 20})
    for _ in range(10):
        with tracer.start_as_current_span("s", attributes={"posthog.event": "cut"}):
            pass
    assert processor.force_flush(100) is False  # the send is now hanging
    wait_until(lambda: server.requests.matching("/batch"))
    processor.shutdown(timeout_millis=300)
    stats = processor.stats()  # at once: no waiting for a timer to count the cut-off
    assert_accounted(stats, offered=10)
    assert stats.dropped == {"shutdown": 10}


def _run_at_exit(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,  # a hang guard only: the script exits in a second or two
        check=False,
    )


def test_a_span_processor_delivers_at_exit_without_starting_a_thread(server):
    result = _run_at_exit(
        f"""
        from opentelemetry.sdk.trace import TracerProvider
        from posthog_otel import PostHogSpanProcessor
        provider = TracerProvider()
        provider.add_span_processor(
            PostHogSpanProcessor(api_key="{API_KEY}", host="{server.url}", flush_interval=60)
        )
        tracer = provider.get_tracer("x")
        for i in range(5):
            with tracer.start_as_current_span("s", attributes={{"posthog.event": "span_at_exit"}}):
                pass
        """
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(server.events("span_at_exit")) == 5


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_log_exporter_delivers_at_exit_without_starting_a_thread(server):
    # The SDK flushes its BatchLogRecordProcessor at exit: our exporter's first request.
    result = _run_at_exit(
        f"""
        import logging, warnings
        warnings.simplefilter("ignore")
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from posthog_otel import PostHogLogExporter
        provider = LoggerProvider()
        exporter = PostHogLogExporter(api_key="{API_KEY}", host="{server.url}")
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=60_000))
        log = logging.getLogger("app")
        log.addHandler(LoggingHandler(logger_provider=provider))
        log.warning("bye", extra={{"posthog.event": "log_at_exit", "posthog.distinct_id": "u"}})
        """
    )
    assert result.returncode == 0, result.stderr
    # The SDK's own LoggingHandler.flush starts a thread at exit (a traceback on 3.12.1 that
    # is not ours): only our frames must be absent.
    assert "posthog_otel" not in result.stderr, result.stderr
    assert len(server.events("log_at_exit")) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_counts_the_spans_and_records_it_sees(server, make_pipeline):
    tracer, processor = make_pipeline(flush_interval=60)
    logs = PostHogLogProcessor(processor=processor)
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(logs)
    logger = provider.get_logger("tests")
    # The parent counts on this thread first: its hooks now hold this thread's cells.
    with tracer.start_as_current_span("s"):
        logger.emit(body="in the parent")
    assert (processor.stats().spans_seen, processor.stats().logs_seen) == (1, 1)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        code = 1
        try:
            for _ in range(3):
                with tracer.start_as_current_span("s"):
                    logger.emit(body="in the child")
            stats = processor.stats()
            code = 0 if (stats.spans_seen, stats.logs_seen) == (3, 3) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # 2: the child's counts stayed at 0
    assert (processor.stats().spans_seen, processor.stats().logs_seen) == (1, 1)
    provider.shutdown()


def test_shutdown_ends_the_drop_episodes_with_their_counts(server, make_pipeline, caplog):
    caplog.set_level(logging.INFO, logger="posthog_otel")
    tracer, processor = make_pipeline(before_send=lambda event: None)
    for _ in range(4):
        with tracer.start_as_current_span("s", attributes={"posthog.event": "unwanted"}):
            pass
    assert processor.force_flush(10_000)
    processor.shutdown()
    lines = [r.getMessage() for r in caplog.records if "before_send" in r.getMessage()]
    assert len(lines) == 2, lines  # the episode's first drop, then the rest counted at shutdown
    assert lines[1].startswith("posthog-otel: 3 more event(s) dropped (before_send) in the last")
