"""The devserver's OTLP reader: its schema against opentelemetry-proto's own descriptors,
round trips through the real protobuf classes, and fuzzing (any bytes, any JSON: a
result or our 400, never another exception, in bounded time)."""

from __future__ import annotations

import base64
import json
import math
import time

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from posthog_otel.devserver import _otlp
from posthog_otel.devserver._wire import RejectError

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REQUESTS = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}
SHAPES = {"traces": _otlp.spans, "logs": _otlp.logs, "metrics": _otlp.metrics}
_KINDS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_ENUM: "enum",
    FieldDescriptor.TYPE_UINT32: "varint",
    FieldDescriptor.TYPE_UINT64: "varint",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    FieldDescriptor.TYPE_FIXED32: "fixed32",
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_MESSAGE: "message",
}


def descriptors():
    seen = {}

    def walk(descriptor):
        if descriptor.name not in seen:
            seen[descriptor.name] = descriptor
            for field in descriptor.fields:
                if field.message_type is not None:
                    walk(field.message_type)

    for request in REQUESTS.values():
        walk(request.DESCRIPTOR)
    return seen


def test_every_field_we_read_is_numbered_and_typed_as_opentelemetry_proto_says():
    found = descriptors()
    for message, fields in _otlp._SCHEMAS.items():
        descriptor = found[message]
        for number, (name, kind, repeated, nested) in fields.items():
            field = descriptor.fields_by_number[number]
            assert field.name == name, (message, number)
            assert _KINDS[field.type] == ("bytes" if kind == "id" else kind), (message, name)
            assert field.is_repeated == repeated, (message, name)
            if nested:
                assert field.message_type.name == nested, (message, name)


def decode(signal, body, content_type="application/x-protobuf"):
    return SHAPES[signal](_otlp.decode(signal, body, content_type))


def sample_traces() -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    by_resource = message.resource_spans.add()
    kv = by_resource.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "api"
    by_scope = by_resource.scope_spans.add()
    by_scope.scope.name = "scope"
    span = by_scope.spans.add()
    span.trace_id, span.span_id, span.parent_span_id = bytes(range(16)), b"\1" * 8, b"\2" * 8
    span.name, span.kind = "GET /", 2
    span.start_time_unix_nano, span.end_time_unix_nano = 1, 2**64 - 1
    span.status.code, span.status.message = 2, "boom"
    for key, value in [("i", -5), ("d", -0.25), ("b", True), ("s", "x")]:
        kv = span.attributes.add()
        kv.key = key
        field = {int: "int_value", float: "double_value", bool: "bool_value", str: "string_value"}
        setattr(kv.value, field[type(value)], value)
    event = span.events.add()
    event.name, event.time_unix_nano = "e", 7
    return message


def test_protobuf_and_its_json_form_decode_alike():
    message = sample_traces()
    (span,) = decode("traces", message.SerializeToString())
    assert span == {
        "trace_id": bytes(range(16)).hex(),
        "span_id": "01" * 8,
        "parent_span_id": "02" * 8,
        "name": "GET /",
        "kind": 2,
        "start_time_unix_nano": 1,
        "end_time_unix_nano": 2**64 - 1,
        "attributes": {"i": -5, "d": -0.25, "b": True, "s": "x"},
        "resource": {"service.name": "api"},
        "scope": "scope",
        "status": {"code": 2, "message": "boom"},
        "events": [{"name": "e", "time_unix_nano": 7, "attributes": {}}],
    }
    # protobuf's own JSON form, with OTLP's hex ids in place of base64
    as_json = json_format.MessageToDict(message)
    raw = as_json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    for key in ("traceId", "spanId", "parentSpanId"):
        raw[key] = base64.b64decode(raw[key]).hex()
    assert decode("traces", json.dumps(as_json).encode(), "application/json") == [span]


any_values = st.recursive(
    st.one_of(
        st.text(max_size=20),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False),
        st.binary(max_size=10),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=20,
)


def to_any_value(value) -> AnyValue:
    out = AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.SetInParent()  # set even when empty
        out.array_value.values.extend(to_any_value(v) for v in value)
    else:
        out.kvlist_value.SetInParent()
        for key, item in value.items():
            kv = out.kvlist_value.values.add()
            kv.key = key
            kv.value.CopyFrom(to_any_value(item))
    return out


def plain(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


@settings(FUZZ, max_examples=200)
@given(value=any_values)
def test_any_value_round_trips_from_protobuf_and_json(value):
    message = ExportLogsServiceRequest()
    record = message.resource_logs.add().scope_logs.add().log_records.add()
    record.body.CopyFrom(to_any_value(value))
    (from_protobuf,) = decode("logs", message.SerializeToString())
    assert from_protobuf["body"] == plain(value)
    body = json_format.MessageToJson(message).encode()
    (from_json,) = decode("logs", body, "application/json")
    assert from_json["body"] == plain(value)


def check_bounded(signal, body, content_type="application/x-protobuf"):
    started = time.perf_counter()
    status = 200
    try:
        decode(signal, body, content_type)
    except RejectError as error:
        status = error.status
    assert status in (200, 400)
    assert time.perf_counter() - started < 2.0


@settings(FUZZ)
@given(signal=st.sampled_from(sorted(REQUESTS)), body=st.binary(max_size=300))
def test_random_bytes_decode_or_are_refused(signal, body):
    check_bounded(signal, body)


@settings(FUZZ)
@given(
    signal=st.sampled_from(["traces", "metrics"]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 10_000),
)
def test_a_valid_body_with_bytes_changed_decodes_or_is_refused(signal, edits, cut):
    body = bytearray(valid_body(signal))
    for position, byte in edits:
        body[position % len(body)] = byte
    check_bounded(signal, bytes(body[: max(1, cut % (len(body) + 1))]))


def valid_body(signal) -> bytes:
    if signal == "traces":
        return sample_traces().SerializeToString()
    message = ExportMetricsServiceRequest()
    metrics = message.resource_metrics.add().scope_metrics.add()
    histogram = metrics.metrics.add()
    histogram.name = "h"
    point = histogram.histogram.data_points.add()
    point.count, point.sum = 3, 1.5
    point.bucket_counts.extend([1, 2])
    point.explicit_bounds.append(1.0)
    exponential = metrics.metrics.add().exponential_histogram.data_points.add()
    exponential.scale, exponential.positive.offset = -3, -1
    exponential.positive.bucket_counts.extend([4, 5])
    summary = metrics.metrics.add().summary.data_points.add()
    summary.quantile_values.add(quantile=0.5, value=2.0)
    metrics.metrics.add().gauge.data_points.add(as_int=-1)
    return message.SerializeToString()


def test_every_metric_type_decodes_as_opentelemetry_proto_encodes_it():
    shaped = decode("metrics", valid_body("metrics"))
    assert [m["type"] for m in shaped] == ["histogram", "exponential_histogram", "summary", "gauge"]
    histogram, exponential, summary, gauge = (m["data_points"][0] for m in shaped)
    assert (histogram["count"], histogram["sum"], histogram["bucket_counts"]) == (3, 1.5, [1, 2])
    assert histogram["explicit_bounds"] == [1.0]
    assert (exponential["scale"], exponential["positive"]) == (
        -3,
        {"offset": -1, "bucket_counts": [4, 5]},
    )
    assert summary["quantile_values"] == [{"quantile": 0.5, "value": 2.0}]
    assert gauge["value"] == -1


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceSpans",
                    "resourceLogs",
                    "resourceMetrics",
                    "scopeSpans",
                    "scopeLogs",
                    "scopeMetrics",
                    "spans",
                    "logRecords",
                    "metrics",
                    "traceId",
                    "spanId",
                    "body",
                    "attributes",
                    "key",
                    "value",
                    "stringValue",
                    "intValue",
                    "doubleValue",
                    "arrayValue",
                    "kvlistValue",
                    "values",
                    "bytesValue",
                    "sum",
                    "dataPoints",
                    "asInt",
                    "asDouble",
                    "histogram",
                    "bucketCounts",
                    "name",
                    "timeUnixNano",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(FUZZ)
@given(signal=st.sampled_from(sorted(REQUESTS)), value=json_values)
def test_any_json_decodes_or_is_refused(signal, value):
    body = json.dumps(value, allow_nan=False).encode()
    check_bounded(signal, body, "application/json")


@pytest.mark.parametrize("size", [1, 10_000_000])
def test_a_large_body_is_read_in_bounded_time(size):
    # One string of ~10 MB, or a run of tiny fields up to the value budget.
    if size > 1:
        body = b"\x0a" + _varint(size + 5) + b"\x0a" + _varint(size) + b"a" * size
    else:
        body = b"\x18\x01" * 2_000_000
    check_bounded("logs", body)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_non_finite_doubles_are_kept():
    message = ExportLogsServiceRequest()
    message.resource_logs.add().scope_logs.add().log_records.add().body.double_value = math.nan
    (record,) = decode("logs", message.SerializeToString())
    assert math.isnan(record["body"])
