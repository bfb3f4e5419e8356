"""Spans and log records to OTLP (``_mapping.otlp``): real SDK spans and records, decoded
again with opentelemetry-proto; PostHog's two attributes added, never over the span's own."""

from __future__ import annotations

import logging
import sys

import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from posthog_otel._config import parse_level
from posthog_otel._mapping import otlp
from posthog_otel._mapping.otlp import LogRecordItem, encode_logs_request, encode_spans_request
from posthog_otel._pipeline.otlp import OtlpBatch, min_severity
from posthog_otel.errors import ConfigurationError


def ended_spans(*attribute_sets, resource=None):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource or Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for index, attributes in enumerate(attribute_sets):
        with tracer.start_as_current_span(f"span-{index}", attributes=attributes):
            pass
    return list(exporter.get_finished_spans())


def decoded_spans(data: bytes):
    request = ExportTraceServiceRequest.FromString(data)
    return [
        (span.name, {kv.key: kv.value.string_value for kv in span.attributes})
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


@pytest.mark.parametrize(
    ("attributes", "person", "session"),
    [
        ({"posthog.distinct_id": "u1", "posthog.session_id": "s1"}, "u1", "s1"),
        ({"posthog.distinct_id": "u1"}, "u1", None),
        ({"posthog.session_id": "s1"}, None, "s1"),
        ({}, None, None),
        # the span's own attributes win
        ({"posthog.distinct_id": "u1", "posthogDistinctId": "mine"}, "mine", None),
        ({"posthog.session_id": "s1", "sessionId": "own-session"}, None, "own-session"),
    ],
)
def test_a_span_carries_posthogs_two_attributes_unless_it_sets_them(attributes, person, session):
    [(_, attrs)] = decoded_spans(encode_spans_request(ended_spans(attributes)))
    assert attrs.get("posthogDistinctId") == person
    assert attrs.get("sessionId") == session
    assert list(attrs).count("posthogDistinctId") <= 1 and list(attrs).count("sessionId") <= 1
    for key, value in attributes.items():  # nothing of the span's own is lost
        assert attrs[key] == value


def test_a_batch_is_one_request_with_every_span_linked():
    spans = ended_spans(*({"posthog.distinct_id": f"u{i}", "n": str(i)} for i in range(50)))
    spans += ended_spans(
        {"posthog.session_id": "other"}, resource=Resource.create({"service.name": "b"})
    )
    decoded = decoded_spans(encode_spans_request(spans))
    assert len(decoded) == 51
    for name, attrs in decoded:
        if "n" in attrs:
            assert attrs["posthogDistinctId"] == f"u{attrs['n']}", name
        else:
            assert attrs == {"posthog.session_id": "other", "sessionId": "other"}


def test_interleaved_resources_each_span_gets_its_own_identity():
    """Spans are matched to their encoded selves by OpenTelemetry's grouping (resource,
    then scope): interleaved, each still carries its own person."""
    first = ended_spans(*({"posthog.distinct_id": f"a{i}", "n": f"a{i}"} for i in range(5)))
    other = Resource.create({"service.name": "b"})
    second = ended_spans(
        *({"posthog.distinct_id": f"b{i}", "n": f"b{i}"} for i in range(5)), resource=other
    )
    mixed = [span for pair in zip(first, second, strict=True) for span in pair]
    decoded = decoded_spans(encode_spans_request(mixed))
    assert sorted(attrs["n"] for _, attrs in decoded) == sorted(s.attributes["n"] for s in mixed)
    for _, attrs in decoded:
        assert attrs["posthogDistinctId"] == attrs["n"]


def emitted_records(*calls):
    """Log records as a processor receives them, from logging calls (logger, message, extra)."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
    records = []

    class Keep(SimpleLogRecordProcessor):
        def on_emit(self, log_record):
            records.append(log_record)

    provider.add_log_record_processor(Keep(exporter))
    for logger_name, message, extra in calls:
        log = logging.getLogger(logger_name)
        handler = LoggingHandler(logger_provider=provider)
        log.addHandler(handler)
        log.propagate = False
        try:
            log.warning(message, extra=extra)
        finally:
            log.removeHandler(handler)
    return records


def decoded_logs(data: bytes):
    request = ExportLogsServiceRequest.FromString(data)
    return [
        (record.body.string_value, {kv.key: kv.value.string_value for kv in record.attributes})
        for rl in request.resource_logs
        for sl in rl.scope_logs
        for record in sl.log_records
    ]


def test_each_record_carries_the_identity_its_context_knew_across_scopes():
    # three loggers interleaved: OpenTelemetry groups records by scope, and each encoded
    # record must still get its own item's identity
    calls = [(f"log.{i % 3}", f"message {i}", {"n": i}) for i in range(9)]
    records = emitted_records(*calls)
    items = [
        LogRecordItem(record, f"user-{i}", f"session-{i}" if i % 2 else None)
        for i, record in enumerate(records)
    ]
    decoded = decoded_logs(encode_logs_request(items))
    assert len(decoded) == 9
    for body, attrs in decoded:
        i = int(body.split()[-1])
        assert attrs["posthogDistinctId"] == f"user-{i}"
        assert attrs.get("sessionId") == (f"session-{i}" if i % 2 else None)


def test_a_records_own_attributes_win_over_its_context():
    [own, tagged] = emitted_records(
        ("a", "own", {"posthogDistinctId": "mine", "sessionId": "my-session"}),
        ("a", "tagged", {"posthog.distinct_id": "tagged-user"}),
    )
    decoded = dict(
        decoded_logs(
            encode_logs_request(
                [LogRecordItem(own, "ctx", "ctx-s"), LogRecordItem(tagged, "ctx", None)]
            )
        )
    )
    assert decoded["own"]["posthogDistinctId"] == "mine"
    assert decoded["own"]["sessionId"] == "my-session"
    assert decoded["tagged"]["posthogDistinctId"] == "tagged-user"  # its posthog.distinct_id


def test_without_the_otlp_extra_turning_it_on_names_the_extra(monkeypatch):
    from posthog_otel._pipeline.pipeline import PipelineOptions

    otlp.require_encoders.cache_clear()
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.common.trace_encoder", None)
    try:
        with pytest.raises(ConfigurationError, match=r"send_traces.*posthog-otel\[otlp\]"):
            PipelineOptions(send_traces=True)
        with pytest.raises(ConfigurationError, match=r"send_logs.*posthog-otel\[otlp\]"):
            PipelineOptions(send_logs=True)
        PipelineOptions()  # off: nothing needed
    finally:
        otlp.require_encoders.cache_clear()


def test_a_batch_over_the_request_size_is_halved_and_an_item_over_its_bound_dropped(monkeypatch):
    monkeypatch.setattr("posthog_otel._pipeline.otlp.OTLP_BATCH_BYTES", 3000)
    monkeypatch.setattr("posthog_otel._pipeline.otlp.MAX_OTLP_ITEM_BYTES", 6000)
    spans = ended_spans(*({"pad": "x" * 400, "n": str(i)} for i in range(20)))
    spans += ended_spans({"pad": "y" * 10_000})  # over the item bound alone
    drops = []
    batch = OtlpBatch(encode_spans_request, lambda *a: drops.append(a[:2]), gzip=False)
    for span in spans:
        batch.add(span)
    sealed = batch.seal()
    assert drops == [("too_large", 1)]
    assert len(sealed) == 20
    assert all(len(body) <= 3000 for body, _ in sealed.parts)
    names = [name for body, _ in sealed.parts for name, _ in decoded_spans(body)]
    assert sorted(names) == sorted(f"span-{i}" for i in range(20))


@pytest.mark.parametrize(
    ("raw", "level"),
    [("INFO", 20), ("warning", 30), ("WARN", 30), ("30", 30), ("0", 0), ("critical", 50)],
)
def test_the_minimum_level_variable_takes_names_or_numbers(raw, level):
    assert parse_level(raw) == level


def test_a_bad_level_names_the_variable():
    from posthog_otel._pipeline.pipeline import PipelineOptions

    with pytest.raises(ConfigurationError, match="POSTHOG_LOGS_MIN_LEVEL"):
        PipelineOptions.from_env({"POSTHOG_LOGS_MIN_LEVEL": "loud"})
    assert PipelineOptions.from_env({"POSTHOG_LOGS_MIN_LEVEL": "error"}).logs_min_level == 40
    assert PipelineOptions.from_env({"POSTHOG_SEND_TRACES": "true"}).send_traces is True
    assert PipelineOptions.from_env({}, send_traces=None).send_traces is False


@pytest.mark.parametrize(
    ("level", "severity"),
    [(0, 0), (5, 1), (10, 5), (20, 9), (25, 11), (30, 13), (40, 17), (50, 21)],
)
def test_a_logging_level_is_the_least_severity_number_it_admits(level, severity):
    assert min_severity(level) == severity


def test_credential_attributes_are_left_out_as_from_events():
    from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern

    denylist = denylist_pattern(DEFAULT_DENYLIST)
    attributes = {"db.password": "hunter2", "apiKey": "k", "http.route": "/x", "token_count": "3"}
    [(_, attrs)] = decoded_spans(encode_spans_request(ended_spans(attributes), denylist))
    assert attrs == {"http.route": "/x", "token_count": "3"}
    [(_, kept)] = decoded_spans(encode_spans_request(ended_spans(attributes)))  # no denylist
    assert kept == attributes
    [record] = emitted_records(("a", "login", {"password": "hunter2", "user": "u"}))
    [(_, attrs)] = decoded_logs(encode_logs_request([LogRecordItem(record, "u1")], denylist))
    assert "password" not in attrs and attrs["user"] == "u" and attrs["posthogDistinctId"] == "u1"
