"""The devserver as PostHog's OTLP endpoints: traces, logs and metrics sent by
OpenTelemetry's own OTLP/HTTP exporters (protobuf) and as hand-built OTLP JSON, stored
and read back through ``DevServer`` and ``/api/spans``, ``/api/logs``, ``/api/metrics``."""

from __future__ import annotations

import gzip
import http.client
import json
import logging
from urllib.parse import urlsplit

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from posthog_otel._limits import OTLP_MAX_DEPTH, OTLP_MAX_ITEMS, OTLP_MAX_VALUES
from tests.support.server import API_KEY

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"
PARENT_ID = "eee19b7ec3c1b173"
RESOURCE = Resource.create({"service.name": "checkout-api"})


def exchange(server, path, body, headers):
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, response.getheader("Content-Type"), raw


def as_json(body, key=API_KEY, **headers):
    return (
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {key}", **headers},
    )


def get(server, path):
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), json.loads(raw)


# --- OpenTelemetry's own exporters, protobuf -------------------------------------------------


def test_spans_from_opentelemetry_exporter_are_stored_as_sent(server):
    exporter = OTLPSpanExporter(
        endpoint=f"{server.url}/i/v1/traces", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("checkout.tracer")
    with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("posthogDistinctId", "alice")
        root.set_attribute("sessionId", "s-1")
        with tracer.start_as_current_span("charge card") as child:
            child.set_attributes(
                {"amount": 12.5, "count": 3, "paid": True, "tags": ["a", "b"], "big": 2**62}
            )
            child.add_event("retry", {"attempt": 2})
            child.set_status(Status(StatusCode.ERROR, "card declined"))
    provider.shutdown()

    spans = {s["name"]: s for s in server.wait_for_spans(2)}
    root, child = spans["POST /checkout"], spans["charge card"]
    trace_id = format(root_context(root), "032x")
    assert root["trace_id"] == child["trace_id"] == trace_id
    assert len(root["span_id"]) == 16 and root["parent_span_id"] == ""
    assert child["parent_span_id"] == root["span_id"]
    assert root["kind"] == SpanKind.SERVER.value + 1  # OTLP numbers kinds from 1 (internal)
    assert child["kind"] == 1
    assert child["attributes"] == {
        "amount": 12.5,
        "count": 3,
        "paid": True,
        "tags": ["a", "b"],
        "big": 2**62,
    }
    assert child["events"][0]["name"] == "retry"
    assert child["events"][0]["attributes"] == {"attempt": 2}
    assert child["events"][0]["time_unix_nano"] >= child["start_time_unix_nano"]
    assert child["status"] == {"code": 2, "message": "card declined"}
    assert root["start_time_unix_nano"] <= child["start_time_unix_nano"]
    assert child["end_time_unix_nano"] <= root["end_time_unix_nano"]
    assert root["resource"]["service.name"] == "checkout-api"
    assert root["scope"] == "checkout.tracer"
    assert set(root) == {
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "kind",
        "start_time_unix_nano",
        "end_time_unix_nano",
        "attributes",
        "resource",
        "scope",
        "status",
        "events",
    }
    assert [s["name"] for s in server.spans(distinct_id="alice")] == ["POST /checkout"]
    assert len(server.spans(trace_id=trace_id)) == 2
    assert server.spans(trace_id="0" * 32) == []
    assert [r.status for r in server.requests.matching("/i/v1/traces")] == [200, 200]


def root_context(span):
    return int(span["trace_id"], 16)


def test_logs_from_opentelemetry_exporter_keep_their_trace_and_attributes(server):
    exporter = OTLPLogExporter(
        endpoint=f"{server.url}/i/v1/logs",
        headers={"Authorization": f"Bearer {API_KEY}"},
        compression=Compression.Gzip,
    )
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    tracer_provider = TracerProvider()
    handler = LoggingHandler(logger_provider=provider)
    logger = logging.getLogger("tests.otlp.logs")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with tracer_provider.get_tracer("t").start_as_current_span("work") as span:
            logger.warning(
                "payment failed for %s",
                "alice",
                extra={"posthogDistinctId": "alice", "sessionId": "s-9"},
            )
            context = span.get_span_context()
        logger.info("no trace here", extra={"posthogDistinctId": "bob"})
    finally:
        logger.removeHandler(handler)
        provider.shutdown()

    records = server.wait_for_logs(2)
    alice = server.logs(distinct_id="alice")
    assert len(alice) == 1
    record = alice[0]
    assert record["body"] == "payment failed for alice"
    assert (record["severity_number"], record["severity_text"]) == (13, "WARN")
    assert record["trace_id"] == format(context.trace_id, "032x")
    assert record["span_id"] == format(context.span_id, "016x")
    assert record["attributes"]["sessionId"] == "s-9"
    assert record["resource"]["service.name"] == "checkout-api"
    assert record["time_unix_nano"] > 0 and record["observed_time_unix_nano"] > 0
    assert server.logs(session_id="s-9") == [record]
    assert server.logs(trace_id=record["trace_id"]) == [record]
    bob = server.logs(distinct_id="bob")[0]
    assert (bob["trace_id"], bob["span_id"]) == ("", "")
    assert len(records) == 2
    sent = server.requests.matching("/i/v1/logs")
    assert [r.status for r in sent] == [200, 200]
    assert all(r.headers.get("Content-Encoding") == "gzip" for r in sent)


def test_metrics_from_opentelemetry_exporter_every_kind(server):
    exporter = OTLPMetricExporter(
        endpoint=f"{server.url}/i/v1/metrics", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    reader = InMemoryMetricReader(
        preferred_temporality={
            Counter: AggregationTemporality.DELTA,
            Histogram: AggregationTemporality.DELTA,
        }
    )
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("checkout.meter")
    meter.create_counter("orders", unit="1", description="orders placed").add(3, {"plan": "pro"})
    meter.create_histogram("latency", unit="ms").record(12.0)
    meter.create_up_down_counter("in_flight").add(-2)
    meter.create_gauge("temperature").set(21.5)
    data = reader.get_metrics_data()
    assert exporter.export(data) == MetricExportResult.SUCCESS
    provider.shutdown()

    server.wait_for_metrics(4)
    metrics = {m["name"]: m for m in server.metrics()}
    orders = metrics["orders"]
    assert (orders["type"], orders["temporality"], orders["monotonic"]) == ("sum", "delta", True)
    assert (orders["unit"], orders["description"]) == ("1", "orders placed")
    assert orders["scope"] == "checkout.meter"
    assert orders["resource"]["service.name"] == "checkout-api"
    point = orders["data_points"][0]
    assert (point["value"], point["attributes"]) == (3, {"plan": "pro"})
    assert point["time_unix_nano"] >= point["start_time_unix_nano"] > 0
    latency = metrics["latency"]
    assert (latency["type"], latency["temporality"], latency["monotonic"]) == (
        "histogram",
        "delta",
        None,
    )
    histogram = latency["data_points"][0]
    assert (histogram["count"], histogram["sum"]) == (1, 12.0)
    assert len(histogram["bucket_counts"]) == len(histogram["explicit_bounds"]) + 1
    assert sum(histogram["bucket_counts"]) == 1
    in_flight = metrics["in_flight"]
    assert (in_flight["monotonic"], in_flight["data_points"][0]["value"]) == (False, -2)
    temperature = metrics["temperature"]
    assert (temperature["type"], temperature["temporality"]) == ("gauge", None)
    assert temperature["data_points"][0]["value"] == 21.5
    assert [m["name"] for m in server.metrics(name="orders")] == ["orders"]


# --- OTLP JSON, by hand ----------------------------------------------------------------------


def json_span(**extra):
    return {
        "traceId": TRACE_ID.upper(),
        "spanId": SPAN_ID,
        "parentSpanId": PARENT_ID,
        "name": "GET /cart",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": 1700000000500000000,
        "attributes": [
            {"key": "posthogDistinctId", "value": {"stringValue": "carol"}},
            {"key": "n", "value": {"intValue": "-9007199254740993"}},
            {"key": "ratio", "value": {"doubleValue": 0.5}},
            {"key": "inf", "value": {"doubleValue": "Infinity"}},
            {"key": "raw", "value": {"bytesValue": "AAEC"}},
            {
                "key": "nested",
                "value": {
                    "kvlistValue": {
                        "values": [
                            {
                                "key": "list",
                                "value": {"arrayValue": {"values": [{"boolValue": False}, {}]}},
                            }
                        ]
                    }
                },
            },
        ],
        "status": {"code": 1},
        **extra,
    }


def traces_body(*spans, resource=None):
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": resource or []},
                "scopeSpans": [{"scope": {"name": "hand"}, "spans": list(spans)}],
            }
        ]
    }


def test_otlp_json_traces_with_hex_ids_and_int64_strings(server):
    body, headers = as_json(traces_body(json_span()))
    status, kind, raw = exchange(server, "/i/v1/traces", body, headers)
    assert (status, kind, json.loads(raw)) == (200, "application/json", {})
    (span,) = server.spans(trace_id=TRACE_ID)
    assert span["trace_id"] == TRACE_ID and span["parent_span_id"] == PARENT_ID
    assert span["start_time_unix_nano"] == 1700000000000000000
    assert span["end_time_unix_nano"] == 1700000000500000000
    assert span["attributes"] == {
        "posthogDistinctId": "carol",
        "n": -9007199254740993,
        "ratio": 0.5,
        "inf": float("inf"),
        "raw": "AAEC",
        "nested": {"list": [False, None]},
    }
    assert span["status"] == {"code": 1, "message": ""}
    assert span["scope"] == "hand" and span["events"] == []
    # The same span again (an export retried) is kept once.
    assert exchange(server, "/i/v1/traces", body, headers)[0] == 200
    assert len(server.spans()) == 1


def test_otlp_json_logs_and_metrics(server):
    logs = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": "1700000000000000001",
                                "severityNumber": 9,
                                "severityText": "INFO",
                                "body": {
                                    "kvlistValue": {
                                        "values": [{"key": "msg", "value": {"stringValue": "hi"}}]
                                    }
                                },
                                "attributes": [
                                    {"key": "sessionId", "value": {"stringValue": "s-2"}}
                                ],
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                            }
                        ]
                    }
                ]
            }
        ]
    }
    assert exchange(server, "/i/v1/logs", *as_json(logs))[0] == 200
    (record,) = server.wait_for_logs(1, session_id="s-2")
    assert record["body"] == {"msg": "hi"}
    assert (record["trace_id"], record["span_id"]) == (TRACE_ID, SPAN_ID)
    assert (record["observed_time_unix_nano"], record["scope"], record["resource"]) == (0, "", {})

    metrics = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "requests",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {"asInt": "7", "timeUnixNano": "5"},
                                        {"asDouble": 1.5},
                                    ],
                                },
                            },
                            {
                                "name": "sizes",
                                "histogram": {
                                    "aggregationTemporality": 1,
                                    "dataPoints": [
                                        {
                                            "count": "3",
                                            "sum": 6.0,
                                            "bucketCounts": ["1", "2"],
                                            "explicitBounds": [1.0],
                                        }
                                    ],
                                },
                            },
                        ]
                    }
                ]
            }
        ]
    }
    assert exchange(server, "/i/v1/metrics", *as_json(metrics))[0] == 200
    assert len(server.wait_for_metrics(3)) == 2
    (requests,) = server.metrics(name="requests")
    assert requests["temporality"] == "cumulative" and requests["monotonic"] is True
    assert [p["value"] for p in requests["data_points"]] == [7, 1.5]
    assert requests["data_points"][0]["time_unix_nano"] == 5
    (sizes,) = server.metrics(name="sizes")
    point = sizes["data_points"][0]
    assert (point["count"], point["sum"], point["bucket_counts"], point["explicit_bounds"]) == (
        3,
        6.0,
        [1, 2],
        [1.0],
    )


def test_the_api_lists_spans_logs_and_metrics_like_events(server):
    body, headers = as_json(traces_body(json_span(), json_span(spanId="aaaaaaaaaaaaaaaa")))
    assert exchange(server, "/i/v1/traces", body, headers)[0] == 200
    status, answer_headers, spans = get(server, f"/api/spans?trace_id={TRACE_ID}&limit=1")
    assert (status, answer_headers["X-Total-Count"], len(spans)) == (200, "2", 1)
    assert spans[0]["attributes"]["inf"] is None  # the HTTP answer is strict JSON
    assert get(server, "/api/spans?distinct_id=carol")[1]["X-Total-Count"] == "2"
    assert get(server, "/api/spans?distinct_id=nobody")[2] == []
    assert get(server, "/api/logs?distinct_id=x&session_id=y&trace_id=z")[:3:2] == (200, [])
    assert get(server, "/api/metrics?name=x")[2] == []
    server.clear()
    assert server.spans() == [] and get(server, "/api/spans")[2] == []


# --- gzip, keys, malformed bodies, bounds ---------------------------------------------------


def test_gzip_bodies_are_inflated(server):
    body, headers = as_json(traces_body(json_span()), **{"Content-Encoding": "gzip"})
    assert exchange(server, "/i/v1/traces", gzip.compress(body), headers)[0] == 200
    assert len(server.spans()) == 1
    status, _, _ = exchange(server, "/i/v1/traces", gzip.compress(body)[:-10], headers)
    assert status == 400


def test_a_bomb_is_inflated_only_to_the_limit(server):
    bomb = gzip.compress(b"\0" * (11 * 1024 * 1024))  # over OTLP_MAX_BODY_BYTES inflated
    headers = {
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "gzip",
        "Authorization": f"Bearer {API_KEY}",
    }
    assert exchange(server, "/i/v1/logs", bomb, headers)[0] == 413


def test_keys_the_capture_routes_refuse_are_refused(server):
    body, headers = as_json(traces_body(json_span()))
    server.api_key = "phc_right"
    assert exchange(server, "/i/v1/traces", body, headers)[0] == 401
    assert (
        exchange(server, "/i/v1/traces", *as_json(traces_body(json_span()), key="phc_right"))[0]
        == 200
    )
    no_key = {"Content-Type": "application/json"}
    assert exchange(server, "/i/v1/metrics", body, no_key)[0] == 401
    assert [r.status for r in server.requests.matching("/i/v1/")] == [401, 200, 401]
    assert len(server.spans()) == 1


PROTOBUF = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {API_KEY}"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/i/v1/traces", b"\x0a\x05\x12\x03"),  # a length past the end
        ("/i/v1/traces", b"\x0b"),  # wire type 3 (a group)
        ("/i/v1/logs", b"\x08" + b"\xff" * 11),  # a varint of 11 bytes
        ("/i/v1/metrics", b"\x0a\x02\x08"),  # a nested message cut short
        ("/i/v1/traces", b"\x0a\x06\x12\x04\x12\x02\x0a\x00"),  # a span with no trace id
        ("/i/v1/traces", b"\x0a\x04\x0d\x00\x00\x00"),  # a fixed32 where a message belongs
        ("/i/v1/logs", b"\x0a\x09\x12\x07\x12\x05\x1a\x03\xff\xfe\xfd"),  # text not UTF-8
    ],
)
def test_malformed_protobuf_is_400_and_recorded(server, path, body):
    status, _, raw = exchange(server, path, body, PROTOBUF)
    assert status == 400, raw
    assert json.loads(raw)["type"] == "validation_error"
    assert server.requests.summary()["by_status"] == {"400": 1}
    assert server.spans() == server.logs() == server.metrics() == []


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"resourceSpans": {}}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz", "spanId": "00"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "'
        + b"ab" * 15
        + b'", "spanId": "0102030405060708"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "'
        + TRACE_ID.encode()
        + b'", "spanId": "0102030405060708", "startTimeUnixNano": "-1"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "'
        + TRACE_ID.encode()
        + b'", "spanId": "0102030405060708", "name": 5}]}]}]}',
        b'{"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": {"bytesValue": "!!"}}]}}]}',
        b"{NaN",
    ],
)
def test_malformed_json_is_400(server, body):
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
    assert exchange(server, "/i/v1/traces", body, headers)[0] == 400
    assert server.spans() == []


def test_other_content_types_are_415(server):
    headers = {"Content-Type": "text/plain", "Authorization": f"Bearer {API_KEY}"}
    assert exchange(server, "/i/v1/traces", b"{}", headers)[0] == 415


def nested_value(levels):
    value = {"stringValue": "bottom"}
    for _ in range(levels - 1):
        value = {"arrayValue": {"values": [value]}}
    return value


def test_attribute_values_nest_to_the_bound(server):
    ok = json_span(attributes=[{"key": "deep", "value": nested_value(OTLP_MAX_DEPTH)}])
    assert exchange(server, "/i/v1/traces", *as_json(traces_body(ok)))[0] == 200
    too_deep = json_span(
        spanId="bbbbbbbbbbbbbbbb",
        attributes=[{"key": "deep", "value": nested_value(OTLP_MAX_DEPTH + 1)}],
    )
    status, _, raw = exchange(server, "/i/v1/traces", *as_json(traces_body(too_deep)))
    assert (status, json.loads(raw)["code"]) == (400, "too_deep")
    assert len(server.spans()) == 1


def test_attribute_values_nest_to_the_bound_in_protobuf(server):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    def request(levels):
        message = ExportTraceServiceRequest()
        span = message.resource_spans.add().scope_spans.add().spans.add()
        span.trace_id, span.span_id = bytes(range(1, 17)), bytes(range(1, 9))
        value = AnyValue(string_value="bottom")
        for _ in range(levels - 1):
            outer = AnyValue()
            outer.array_value.values.append(value)
            value = outer
        kv = span.attributes.add()
        kv.key = "deep"
        kv.value.CopyFrom(value)
        return message.SerializeToString()

    assert exchange(server, "/i/v1/traces", request(OTLP_MAX_DEPTH), PROTOBUF)[0] == 200
    status, _, raw = exchange(server, "/i/v1/traces", request(OTLP_MAX_DEPTH + 1), PROTOBUF)
    assert (status, json.loads(raw)["code"]) == (400, "too_deep")


def test_records_in_one_request_are_bounded(server):
    record = {"severityNumber": 9}
    over = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record] * (OTLP_MAX_ITEMS + 1)}]}]}
    status, _, raw = exchange(server, "/i/v1/logs", *as_json(over))
    assert (status, json.loads(raw)["code"]) == (400, "too_many_items")
    assert server.logs() == []
    at = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record] * OTLP_MAX_ITEMS}]}]}
    assert exchange(server, "/i/v1/logs", *as_json(at))[0] == 200
    assert len(server.logs()) == OTLP_MAX_ITEMS


def test_values_in_one_request_are_bounded(server):
    # A packed list of fixed64 bucket counts: 8 bytes a value, cheap to send, each one decoded.
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    message = ExportMetricsServiceRequest()
    metric = message.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "wide"
    metric.histogram.data_points.add().bucket_counts.extend([1] * (OTLP_MAX_VALUES + 1))
    status, _, raw = exchange(server, "/i/v1/metrics", message.SerializeToString(), PROTOBUF)
    assert (status, json.loads(raw)["code"]) == (400, "too_many_values")
    assert server.metrics() == []
