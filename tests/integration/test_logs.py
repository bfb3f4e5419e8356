"""Python logging, end to end: logging -> OpenTelemetry's logging handler -> our log
processor or exporter -> the devserver over HTTP."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from posthog_otel import (
    PostHogClient,
    PostHogFlagProvider,
    PostHogLogExporter,
    PostHogLogProcessor,
    identify,
)
from tests.support.server import API_KEY


@pytest.fixture
def make_logger():
    """A Python logger whose records reach ``processor`` through OpenTelemetry's
    logging handler (the one opentelemetry-instrumentation-logging installs)."""
    made = []

    def make(processor):
        provider = LoggerProvider(
            resource=Resource.create({"service.name": "shop"}), shutdown_on_exit=False
        )
        provider.add_log_record_processor(processor)
        log = logging.getLogger(f"shop.test{len(made)}")
        log.setLevel(logging.INFO)
        log.propagate = False
        handler = LoggingHandler(logger_provider=provider)
        log.addHandler(handler)
        made.append((provider, log, handler))
        return log, provider

    yield make
    for provider, log, handler in made:
        log.removeHandler(handler)
        provider.shutdown()


def _fail_payment():
    raise ValueError("card declined")


def test_logging_end_to_end_tagged_exception_and_untagged(server, make_pipeline, make_logger):
    tracer, spans = make_pipeline()
    log, _ = make_logger(PostHogLogProcessor(processor=spans, capture_exceptions=True))
    with identify("user-1"), tracer.start_as_current_span("POST /orders") as span:
        log.info("order placed", extra={"posthog.event": "order_placed", "order.total": 12.5})
        log.info("cart recalculated", extra={"cart.items": 3})  # untagged: nothing
        try:
            _fail_payment()
        except ValueError:
            log.exception("payment failed", extra={"order.id": 7})
        trace_id = trace.format_trace_id(span.get_span_context().trace_id)
    assert spans.force_flush(10_000)

    (order,) = server.wait_for_events(1, event="order_placed")
    assert order["distinct_id"] == "user-1"
    assert order["properties"]["order.total"] == 12.5
    assert order["properties"]["$trace_id"] == trace_id
    assert order["properties"]["$log_message"] == "order placed"
    assert order["properties"]["$logger_name"] == "shop.test0"

    (error,) = server.wait_for_events(1, event="$exception")
    assert error["distinct_id"] == "user-1"
    props = error["properties"]
    assert props["$trace_id"] == trace_id
    assert props["$log_message"] == "payment failed"
    assert props["order.id"] == 7
    (exception,) = props["$exception_list"]
    assert (exception["type"], exception["value"]) == ("ValueError", "card declined")
    assert exception["mechanism"]["handled"] is True
    functions = [frame["function"] for frame in exception["stacktrace"]["frames"]]
    assert functions[-2:] == [
        "test_logging_end_to_end_tagged_exception_and_untagged",
        "_fail_payment",
    ]

    assert len(server.events()) == 2  # the untagged record made nothing
    stats = spans.stats()  # one queue: the span processor's figures include the logs
    assert (stats.logs_seen, stats.events_queued, stats.events_sent) == (3, 2, 2)
    assert stats.in_flight == 0


def test_identity_from_identify_inside_a_span_that_started_before_it(
    server, make_pipeline, make_logger
):
    tracer, spans = make_pipeline()
    log, _ = make_logger(PostHogLogProcessor(processor=spans))
    with tracer.start_as_current_span("job"):
        log.info("before", extra={"posthog.event": "step", "n": 1})
        with identify("user-2"):
            log.info("inside", extra={"posthog.event": "step", "n": 2})
    with tracer.start_as_current_span("job", attributes={"enduser.id": "from-span"}):
        log.info("span's user", extra={"posthog.event": "step", "n": 3})
    spans.force_flush(10_000)
    events = sorted(server.wait_for_events(3, event="step"), key=lambda e: e["properties"]["n"])
    assert events[0]["properties"]["$process_person_profile"] is False
    assert [e["distinct_id"] for e in events[1:]] == ["user-2", "from-span"]


def test_flags_evaluated_in_the_span_reach_its_records(server, make_pipeline, make_logger):
    server.set_flags({"beta": True})
    tracer, spans = make_pipeline()
    client = PostHogClient(API_KEY, server.url, retry_delay=0.01)
    flags = PostHogFlagProvider(client, processor=spans, send_feature_flag_events=False)
    log, _ = make_logger(PostHogLogProcessor(processor=spans))
    with identify("user-3"), tracer.start_as_current_span("GET /checkout") as span:
        assert flags.is_enabled("beta")
        log.info("in the span", extra={"posthog.event": "viewed", "where": "span"})
        with tracer.start_as_current_span("render"):
            log.info("in a child", extra={"posthog.event": "viewed", "where": "child"})
        # Another provider's evaluation, recorded the OpenTelemetry way.
        span.add_event(
            "feature_flag.evaluation",
            {"feature_flag.key": "dark-mode", "feature_flag.result.variant": "on"},
        )
        log.info("after", extra={"posthog.event": "viewed", "where": "after"})
    spans.force_flush(10_000)
    by_place = {e["properties"]["where"]: e["properties"] for e in server.wait_for_events(3)}
    assert all(props["$feature/beta"] is True for props in by_place.values())
    assert "$feature/dark-mode" not in by_place["span"]
    assert by_place["after"]["$feature/dark-mode"] == "on"
    flags.shutdown()
    client.close()


def test_a_processor_of_its_own_delivers_at_shutdown(server, make_logger):
    client = PostHogClient(API_KEY, server.url, retry_delay=0.01)
    processor = PostHogLogProcessor(client, flush_interval=60)  # only shutdown sends
    log, provider = make_logger(processor)
    log.warning("signed up", extra={"posthog.event": "signed_up", "posthog.distinct_id": "u4"})
    provider.shutdown()  # shuts the processor down: what is queued is delivered
    (event,) = server.events()
    assert (event["event"], event["distinct_id"]) == ("signed_up", "u4")
    assert event["properties"]["service.name"] == "shop"
    log.warning("too late", extra={"posthog.event": "signed_up"})
    assert processor.stats().dropped == {"closed": 1}
    assert API_KEY not in repr(processor)
    client.close()


def test_shutting_down_logs_leaves_the_shared_queue_to_its_span_processor(
    server, make_pipeline, make_logger
):
    tracer, spans = make_pipeline()
    log, provider = make_logger(PostHogLogProcessor(processor=spans))
    log.info("first", extra={"posthog.event": "logged"})
    provider.shutdown()
    log.info("after shutdown", extra={"posthog.event": "logged"})  # counted, not sent
    with tracer.start_as_current_span("later", attributes={"posthog.event": "spanned"}):
        pass
    spans.force_flush(10_000)
    assert sorted(e["event"] for e in server.wait_for_events(2)) == ["logged", "spanned"]
    assert spans.stats().dropped == {"closed": 1}


def test_unusable_tags_are_counted_and_never_raise(server, make_pipeline, make_logger):
    _, spans = make_pipeline()
    log, _ = make_logger(PostHogLogProcessor(processor=spans))
    log.info("bad", extra={"posthog.event": "ok", "posthog.distinct_id": 42})
    log.info("good", extra={"posthog.event": "ok"})
    spans.force_flush(10_000)
    assert [e["event"] for e in server.wait_for_events(1)] == ["ok"]
    assert spans.stats().dropped == {"invalid": 1}
    assert spans.stats().in_flight == 0
    PostHogLogProcessor(processor=spans).on_emit(object())  # not a record: ignored


def test_capture_disabled_sends_nothing(server, make_logger):
    client = PostHogClient(API_KEY, server.url, enabled_capture=False)
    processor = PostHogLogProcessor(client)
    log, provider = make_logger(processor)
    log.info("x", extra={"posthog.event": "e"})
    provider.shutdown()
    assert server.events() == []
    assert processor.stats().dropped == {}
    client.close()


def test_bad_arguments_are_typed_errors(make_pipeline):
    _, spans = make_pipeline()
    with pytest.raises(TypeError, match="api_key, max_queue_size"):
        PostHogLogProcessor(processor=spans, api_key="phc_x", max_queue_size=5)
    with pytest.raises(TypeError, match="PostHogSpanProcessor"):
        PostHogLogProcessor(processor=object())  # type: ignore[arg-type]


# -- the exporter ----------------------------------------------------------------------


def test_exporter_behind_the_batch_processor_sees_the_record_not_its_context(
    server, client, make_pipeline, make_logger
):
    tracer, _ = make_pipeline()
    log, provider = make_logger(BatchLogRecordProcessor(PostHogLogExporter(client)))
    with identify("user-5"), tracer.start_as_current_span("renew") as span:
        log.info("own id", extra={"posthog.event": "renewed", "posthog.distinct_id": "user-5"})
        log.info("no id", extra={"posthog.event": "renewed_anonymously"})
        log.info("untagged")
        trace_id = trace.format_trace_id(span.get_span_context().trace_id)
    provider.force_flush()
    (own,) = server.wait_for_events(1, event="renewed")
    assert own["distinct_id"] == "user-5"
    assert own["properties"]["$trace_id"] == trace_id
    # The SDK's BatchLogRecordProcessor drops the record's context (baggage included)
    # before it queues it, so identify() is not seen: personless, keyed by the trace.
    (anonymous,) = server.wait_for_events(1, event="renewed_anonymously")
    assert anonymous["distinct_id"] == trace_id
    assert anonymous["properties"]["$process_person_profile"] is False
    assert len(server.events()) == 2


def test_exporter_behind_the_simple_processor_sees_the_emit_context(
    server, client, make_pipeline, make_logger
):
    tracer, _ = make_pipeline()
    log, _ = make_logger(SimpleLogRecordProcessor(PostHogLogExporter(client)))
    with identify("user-6"), tracer.start_as_current_span("renew"):
        log.info("renewed", extra={"posthog.event": "renewed"})
    (event,) = server.wait_for_events(1)
    assert event["distinct_id"] == "user-6"


def test_exporter_after_shutdown_fails_and_counts(server, client, make_logger):
    exporter = PostHogLogExporter(client)
    log, _ = make_logger(SimpleLogRecordProcessor(exporter))
    exporter.shutdown()
    log.info("late", extra={"posthog.event": "e"})
    log.info("untagged")
    assert exporter.stats().dropped == {"closed": 1}
    assert exporter.stats().logs_seen == 2
    assert server.events() == []


def test_attached_to_the_global_provider_it_behaves_as_the_processor(server, client):
    """What opentelemetry-instrument does: the global LoggerProvider is set, then the
    exporter is built and put behind a BatchLogRecordProcessor on it. Records there are
    taken by the attached processor as they are logged (with identify()'s identity) and
    skipped by the exporter; records of another provider are exported as before."""
    from unittest import mock

    providers, loggers = [], []
    for name in ("global", "other"):
        resource = Resource.create({"service.name": name})
        provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        log = logging.getLogger(f"shop.attached.{name}")
        log.setLevel(logging.INFO)
        log.propagate = False
        log.addHandler(LoggingHandler(logger_provider=provider))
        providers.append(provider)
        loggers.append(log)
    with mock.patch("opentelemetry._logs.get_logger_provider", return_value=providers[0]):
        exporter = PostHogLogExporter(client)
    assert PostHogLogExporter(client, attach_processor=False).stats().logs_seen == 0
    for provider in providers:
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    try:
        with identify("from-identify"):
            loggers[0].info("taken", extra={"posthog.event": "on_the_global_provider"})
            loggers[1].info("exported", extra={"posthog.event": "on_another_provider"})
            loggers[0].info("untagged")
        assert all(provider.force_flush() for provider in providers)
    finally:
        for provider, log in zip(providers, loggers, strict=True):
            provider.shutdown()
            log.handlers.clear()
    (taken,) = server.events("on_the_global_provider")  # once: the exporter skipped it
    assert taken["distinct_id"] == "from-identify"
    (exported,) = server.events("on_another_provider")
    assert exported["properties"]["$process_person_profile"] is False  # no context there
    stats = exporter.stats()
    assert (stats.logs_seen, stats.events_sent, stats.dropped) == (2, 2, {})


AUTO_APP = """
import logging
from opentelemetry import trace
from posthog_otel import identify

log = logging.getLogger("billing")
log.setLevel(logging.INFO)
tracer = trace.get_tracer("billing")
with identify("user-9"), tracer.start_as_current_span("renew") as span:
    extra = {"posthog.event": "subscription_renewed", "posthog.distinct_id": "user-9"}
    log.info("renewed", extra={**extra, "plan": "pro"})
    log.info("renewed, no id", extra={"posthog.event": "renewal_without_own_id"})
    log.info("untagged")
    print(trace.format_trace_id(span.get_span_context().trace_id))
"""


def test_otel_logs_exporter_posthog_under_opentelemetry_instrument(server, tmp_path: Path):
    instrument = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert instrument is not None
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(AUTO_APP))
    env = {
        **os.environ,
        "OTEL_LOGS_EXPORTER": "posthog",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "billing",
        "POSTHOG_API_KEY": API_KEY,
        "POSTHOG_HOST": server.url,
    }
    result = subprocess.run(
        [instrument, sys.executable, str(app)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a hang guard only: the app exits in a second or two
    )
    assert result.returncode == 0, result.stderr
    trace_id = result.stdout.strip()
    # Delivered before the process exited (the SDK shuts its LoggerProvider down at
    # exit), each once: the exporter skipped the records its attached processor took.
    assert len(server.events()) == 2
    events = {e["event"]: e for e in server.events()}
    assert sorted(events) == ["renewal_without_own_id", "subscription_renewed"]
    renewed = events["subscription_renewed"]
    assert renewed["distinct_id"] == "user-9"
    assert renewed["properties"]["plan"] == "pro"
    assert renewed["properties"]["service.name"] == "billing"
    assert renewed["properties"]["$trace_id"] == trace_id
    assert renewed["properties"]["$logger_name"] == "billing"
    # The attached processor read the context the record was logged in: identify()'s.
    assert events["renewal_without_own_id"]["distinct_id"] == "user-9"


LOGS_UNDER_INSTRUMENT = {
    "OTEL_LOGS_EXPORTER": "posthog",
    "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
    "OTEL_PROPAGATORS": "tracecontext,baggage,posthog",
}


def test_flask_logs_under_opentelemetry_instrument_keep_context_and_survive_sigterm(
    server, services
):
    """40 requests each log a tagged record; SIGTERM right after the last answer. The
    exporter attached our processor to the SDK's LoggerProvider, so each record was
    queued with its context as it was logged, and the SIGTERM drain delivers it (behind
    the SDK's BatchLogRecordProcessor alone, all 40 waited in its queue and were lost)."""
    import signal

    import requests

    app = services.flask(env=LOGS_UNDER_INSTRUMENT)
    with requests.Session() as session:
        for i in range(40):
            query, headers = "log=item_logged", {}
            if i == 7:
                query += "&user=u-ep"  # identify() in the handler
            if i == 11:  # posthog-js's tracing headers: baggage, through the propagator
                headers = {"X-POSTHOG-DISTINCT-ID": "u-hdr", "X-POSTHOG-SESSION-ID": "s-11"}
            response = session.get(f"{app.url}/items/{i}?{query}", headers=headers, timeout=10)
            response.raise_for_status()
    stopped = app.stop(signal.SIGTERM)
    assert stopped.returncode == -signal.SIGTERM, stopped.output
    events = server.events("item_logged")
    assert len(events) == len({e["uuid"] for e in events}) == 40, stopped.output
    by_item = {e["properties"]["item"]: e for e in events}
    assert sorted(by_item) == list(range(40))
    assert by_item[7]["distinct_id"] == "u-ep"
    assert by_item[11]["distinct_id"] == "u-hdr"
    assert by_item[11]["properties"]["$session_id"] == "s-11"
    assert by_item[3]["properties"]["$process_person_profile"] is False  # nobody identified
    spans = {e["properties"]["item"]: e for e in server.events("item_viewed")}
    assert by_item[7]["properties"]["$trace_id"] == spans[7]["properties"]["$trace_id"]
    assert by_item[7]["properties"]["$logger_name"] == "shop"
