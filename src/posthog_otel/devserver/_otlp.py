"""OTLP bodies (traces, logs, metrics) read into the records the devserver stores.

Pure: a body in, records out, or a ``RejectError`` (400) saying what is wrong. Both
encodings OTLP/HTTP allows are read into one tree by one schema (``_SCHEMAS``: each
message's fields by number, as opentelemetry-proto's ``.proto`` files number them):

- protobuf, by a small wire-format reader of our own (varints, length-delimited fields,
  fixed 64 and 32 bits; packed or unpacked repeated scalars; unknown fields skipped);
- OTLP JSON: lowerCamelCase names (snake_case accepted), trace and span ids as hex,
  64-bit integers as numbers or decimal strings, bytes as base64, doubles as numbers or
  ``"NaN"``/``"Infinity"``; unknown fields ignored, as OTLP asks of receivers.

Then ``spans``, ``logs`` and ``metrics`` shape the tree: an ``AnyValue`` becomes a plain
value (string, int, float, bool, list, dict; bytes as base64 text), attributes a dict.
Bounded in nesting (``OTLP_MAX_DEPTH``), in records (``OTLP_MAX_ITEMS``) and in values
decoded (``OTLP_MAX_VALUES``); the body's bytes are bounded by its route.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from collections.abc import Callable, Mapping
from typing import Any

from posthog_otel._limits import OTLP_MAX_DEPTH, OTLP_MAX_ITEMS, OTLP_MAX_VALUES
from posthog_otel.devserver._wire import RejectError, parse_json

__all__ = ["decode", "logs", "metrics", "spans"]

# A field: (name, kind, repeated, message schema name for kind "message").
# Kinds: string, bytes, id (bytes shown as hex), varint (uint32/uint64), enum, int64
# (two's complement varint), bool, fixed64, sfixed64, fixed32, double, sint32, message.
_Field = tuple[str, str, bool, str]


def _f(name: str, kind: str, repeated: bool = False, message: str = "") -> _Field:
    return (name, kind, repeated, message)


_SCHEMAS: dict[str, dict[int, _Field]] = {
    # common/v1/common.proto
    "AnyValue": {
        1: _f("string_value", "string"),
        2: _f("bool_value", "bool"),
        3: _f("int_value", "int64"),
        4: _f("double_value", "double"),
        5: _f("array_value", "message", message="ArrayValue"),
        6: _f("kvlist_value", "message", message="KeyValueList"),
        7: _f("bytes_value", "bytes"),
    },
    "ArrayValue": {1: _f("values", "message", True, "AnyValue")},
    "KeyValueList": {1: _f("values", "message", True, "KeyValue")},
    "KeyValue": {1: _f("key", "string"), 2: _f("value", "message", message="AnyValue")},
    "InstrumentationScope": {
        1: _f("name", "string"),
        2: _f("version", "string"),
        3: _f("attributes", "message", True, "KeyValue"),
    },
    # resource/v1/resource.proto
    "Resource": {1: _f("attributes", "message", True, "KeyValue")},
    # collector/trace/v1/trace_service.proto, trace/v1/trace.proto
    "ExportTraceServiceRequest": {1: _f("resource_spans", "message", True, "ResourceSpans")},
    "ResourceSpans": {
        1: _f("resource", "message", message="Resource"),
        2: _f("scope_spans", "message", True, "ScopeSpans"),
    },
    "ScopeSpans": {
        1: _f("scope", "message", message="InstrumentationScope"),
        2: _f("spans", "message", True, "Span"),
    },
    "Span": {
        1: _f("trace_id", "id"),
        2: _f("span_id", "id"),
        4: _f("parent_span_id", "id"),
        5: _f("name", "string"),
        6: _f("kind", "enum"),
        7: _f("start_time_unix_nano", "fixed64"),
        8: _f("end_time_unix_nano", "fixed64"),
        9: _f("attributes", "message", True, "KeyValue"),
        11: _f("events", "message", True, "Event"),
        15: _f("status", "message", message="Status"),
    },
    "Event": {
        1: _f("time_unix_nano", "fixed64"),
        2: _f("name", "string"),
        3: _f("attributes", "message", True, "KeyValue"),
    },
    "Status": {2: _f("message", "string"), 3: _f("code", "enum")},
    # collector/logs/v1/logs_service.proto, logs/v1/logs.proto
    "ExportLogsServiceRequest": {1: _f("resource_logs", "message", True, "ResourceLogs")},
    "ResourceLogs": {
        1: _f("resource", "message", message="Resource"),
        2: _f("scope_logs", "message", True, "ScopeLogs"),
    },
    "ScopeLogs": {
        1: _f("scope", "message", message="InstrumentationScope"),
        2: _f("log_records", "message", True, "LogRecord"),
    },
    "LogRecord": {
        1: _f("time_unix_nano", "fixed64"),
        11: _f("observed_time_unix_nano", "fixed64"),
        2: _f("severity_number", "enum"),
        3: _f("severity_text", "string"),
        5: _f("body", "message", message="AnyValue"),
        6: _f("attributes", "message", True, "KeyValue"),
        9: _f("trace_id", "id"),
        10: _f("span_id", "id"),
    },
    # collector/metrics/v1/metrics_service.proto, metrics/v1/metrics.proto
    "ExportMetricsServiceRequest": {1: _f("resource_metrics", "message", True, "ResourceMetrics")},
    "ResourceMetrics": {
        1: _f("resource", "message", message="Resource"),
        2: _f("scope_metrics", "message", True, "ScopeMetrics"),
    },
    "ScopeMetrics": {
        1: _f("scope", "message", message="InstrumentationScope"),
        2: _f("metrics", "message", True, "Metric"),
    },
    "Metric": {
        1: _f("name", "string"),
        2: _f("description", "string"),
        3: _f("unit", "string"),
        5: _f("gauge", "message", message="Gauge"),
        7: _f("sum", "message", message="Sum"),
        9: _f("histogram", "message", message="Histogram"),
        10: _f("exponential_histogram", "message", message="ExponentialHistogram"),
        11: _f("summary", "message", message="Summary"),
    },
    "Gauge": {1: _f("data_points", "message", True, "NumberDataPoint")},
    "Sum": {
        1: _f("data_points", "message", True, "NumberDataPoint"),
        2: _f("aggregation_temporality", "enum"),
        3: _f("is_monotonic", "bool"),
    },
    "Histogram": {
        1: _f("data_points", "message", True, "HistogramDataPoint"),
        2: _f("aggregation_temporality", "enum"),
    },
    "ExponentialHistogram": {
        1: _f("data_points", "message", True, "ExponentialHistogramDataPoint"),
        2: _f("aggregation_temporality", "enum"),
    },
    "Summary": {1: _f("data_points", "message", True, "SummaryDataPoint")},
    "NumberDataPoint": {
        7: _f("attributes", "message", True, "KeyValue"),
        2: _f("start_time_unix_nano", "fixed64"),
        3: _f("time_unix_nano", "fixed64"),
        4: _f("as_double", "double"),
        6: _f("as_int", "sfixed64"),
    },
    "HistogramDataPoint": {
        9: _f("attributes", "message", True, "KeyValue"),
        2: _f("start_time_unix_nano", "fixed64"),
        3: _f("time_unix_nano", "fixed64"),
        4: _f("count", "fixed64"),
        5: _f("sum", "double"),
        6: _f("bucket_counts", "fixed64", True),
        7: _f("explicit_bounds", "double", True),
        11: _f("min", "double"),
        12: _f("max", "double"),
    },
    "ExponentialHistogramDataPoint": {
        1: _f("attributes", "message", True, "KeyValue"),
        2: _f("start_time_unix_nano", "fixed64"),
        3: _f("time_unix_nano", "fixed64"),
        4: _f("count", "fixed64"),
        5: _f("sum", "double"),
        6: _f("scale", "sint32"),
        7: _f("zero_count", "fixed64"),
        8: _f("positive", "message", message="Buckets"),
        9: _f("negative", "message", message="Buckets"),
        12: _f("min", "double"),
        13: _f("max", "double"),
    },
    "Buckets": {1: _f("offset", "sint32"), 2: _f("bucket_counts", "varint", True)},
    "SummaryDataPoint": {
        7: _f("attributes", "message", True, "KeyValue"),
        2: _f("start_time_unix_nano", "fixed64"),
        3: _f("time_unix_nano", "fixed64"),
        4: _f("count", "fixed64"),
        5: _f("sum", "double"),
        6: _f("quantile_values", "message", True, "ValueAtQuantile"),
    },
    "ValueAtQuantile": {1: _f("quantile", "double"), 2: _f("value", "double")},
}
# Messages that nest themselves (an attribute's value holding a list or a map): each level
# counts toward OTLP_MAX_DEPTH. Every other message nests a fixed few levels deep.
_RECURSIVE = frozenset({"AnyValue"})
_REQUESTS = {
    "traces": "ExportTraceServiceRequest",
    "logs": "ExportLogsServiceRequest",
    "metrics": "ExportMetricsServiceRequest",
}
# Bytes of each fixed-width kind; the wire type each kind is sent as.
_FIXED = {"fixed64": 8, "sfixed64": 8, "double": 8, "fixed32": 4}
_UNPACK: dict[str, Callable[[bytes], Any]] = {
    "fixed64": lambda b: struct.unpack("<Q", b)[0],
    "sfixed64": lambda b: struct.unpack("<q", b)[0],
    "double": lambda b: struct.unpack("<d", b)[0],
    "fixed32": lambda b: struct.unpack("<I", b)[0],
}
_VARINT_KINDS = frozenset({"varint", "enum", "int64", "bool", "sint32"})
# Enum values by name, as protobuf's JSON writes them (OTLP JSON itself sends numbers).
_ENUM_NAMES = {
    f"{prefix}_{name}": number
    for prefix, names in (
        ("SPAN_KIND", "UNSPECIFIED INTERNAL SERVER CLIENT PRODUCER CONSUMER"),
        ("STATUS_CODE", "UNSET OK ERROR"),
        ("AGGREGATION_TEMPORALITY", "UNSPECIFIED DELTA CUMULATIVE"),
        (
            "SEVERITY_NUMBER",
            "UNSPECIFIED "
            + " ".join(
                f"{level}{n or ''}"
                for level in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
                for n in (0, 2, 3, 4)
            ),
        ),
    )
    for number, name in enumerate(names.split())
}
_TEMPORALITY = {1: "delta", 2: "cumulative"}
_METRIC_TYPES = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
_HEX = re.compile(r"[0-9a-fA-F]*")
_DECIMAL = re.compile(r"-?[0-9]{1,20}")
_ID_BYTES = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}


def decode(signal: str, body: bytes, content_type: str) -> dict[str, Any]:
    """The export request in ``body`` (``signal``: traces, logs or metrics) as a tree of
    plain values keyed by the proto's field names; ``RejectError`` (400) when malformed
    or past a bound, and 415 for a content type OTLP/HTTP does not use."""
    schema = _REQUESTS[signal]
    budget = _Budget()
    if content_type == "application/x-protobuf":
        return _Protobuf(budget).message(body, schema, 0)
    if content_type == "application/json":
        return _Json(budget).message(parse_json(body), schema, 0, "")
    raise RejectError(415, "unsupported_media_type", "OTLP bodies are protobuf or JSON")


def _malformed(detail: str) -> RejectError:
    return RejectError(400, "invalid_otlp", detail)


class _Budget:
    """Values decoded so far in one request, held to ``OTLP_MAX_VALUES``."""

    def __init__(self) -> None:
        self.left = OTLP_MAX_VALUES

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise RejectError(
                400, "too_many_values", f"the body holds more than {OTLP_MAX_VALUES} values"
            )


def _depth(schema: str, depth: int) -> int:
    if schema in _RECURSIVE:
        depth += 1
        if depth > OTLP_MAX_DEPTH:
            raise RejectError(
                400, "too_deep", f"attribute values nest deeper than {OTLP_MAX_DEPTH} levels"
            )
    return depth


# -- protobuf --------------------------------------------------------------------------


class _Protobuf:
    """Protocol buffers' wire format, read by the schema; every read is bounds-checked."""

    def __init__(self, budget: _Budget) -> None:
        self._budget = budget

    def message(self, data: bytes, schema: str, depth: int) -> dict[str, Any]:
        depth = _depth(schema, depth)
        fields = _SCHEMAS[schema]
        out: dict[str, Any] = {}
        pos, end = 0, len(data)
        while pos < end:
            key, pos = _varint(data, pos)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise _malformed("field number 0")
            self._budget.take()
            field = fields.get(number)
            if wire == 0:
                raw, pos = _varint(data, pos)
                if field is not None:
                    self._set(out, field, _from_varint(field, raw))
            elif wire == 1 or wire == 5:
                size = 8 if wire == 1 else 4
                if pos + size > end:
                    raise _malformed("a fixed-width field runs past its message")
                chunk, pos = data[pos : pos + size], pos + size
                if field is not None:
                    if _FIXED.get(field[1]) != size:
                        raise _malformed(f"{field[0]} is not a {size * 8}-bit field")
                    self._set(out, field, _UNPACK[field[1]](chunk))
            elif wire == 2:
                length, pos = _varint(data, pos)
                if length > end - pos:
                    raise _malformed("a length-delimited field runs past its message")
                chunk, pos = data[pos : pos + length], pos + length
                if field is not None:
                    self._delimited(out, field, chunk, depth)
            else:
                raise _malformed(f"wire type {wire} is not used by OTLP")
        return out

    def _delimited(self, out: dict[str, Any], field: _Field, chunk: bytes, depth: int) -> None:
        name, kind, repeated, message = field
        if kind == "message":
            self._set(out, field, self.message(chunk, message, depth))
        elif kind == "string":
            try:
                self._set(out, field, chunk.decode("utf-8"))
            except UnicodeDecodeError:
                raise _malformed(f"{name} is not UTF-8") from None
        elif kind in ("bytes", "id"):
            self._set(out, field, chunk)
        elif repeated and kind in _FIXED:  # packed
            size = _FIXED[kind]
            if len(chunk) % size:
                raise _malformed(f"packed {name} is not a whole number of values")
            unpack = _UNPACK[kind]
            for i in range(0, len(chunk), size):
                self._budget.take()
                self._set(out, field, unpack(chunk[i : i + size]))
        elif repeated and kind in _VARINT_KINDS:  # packed
            pos = 0
            while pos < len(chunk):
                self._budget.take()
                raw, pos = _varint(chunk, pos)
                self._set(out, field, _from_varint(field, raw))
        else:
            raise _malformed(f"{name} is not a length-delimited field")

    @staticmethod
    def _set(out: dict[str, Any], field: _Field, value: Any) -> None:
        if field[2]:
            out.setdefault(field[0], []).append(value)
        else:
            out[field[0]] = value  # the last one wins, as in protobuf


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise _malformed("a varint runs past its message")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise _malformed("a varint longer than 10 bytes")


def _from_varint(field: _Field, raw: int) -> Any:
    kind = field[1]
    raw &= (1 << 64) - 1
    if kind == "bool":
        return raw != 0
    if kind == "sint32":
        raw &= 0xFFFFFFFF
        return (raw >> 1) ^ -(raw & 1)
    if kind == "int64":
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if kind in ("varint", "enum"):
        return raw
    raise _malformed(f"{field[0]} is not a varint field")


# -- JSON --------------------------------------------------------------------------------


class _Json:
    """OTLP JSON (protobuf's JSON mapping, with OTLP's hex ids) read by the same schema."""

    def __init__(self, budget: _Budget) -> None:
        self._budget = budget

    def message(self, value: Any, schema: str, depth: int, where: str) -> dict[str, Any]:
        depth = _depth(schema, depth)
        if not isinstance(value, dict):
            raise _malformed(f"{where or 'the body'} is not a JSON object")
        out: dict[str, Any] = {}
        for field in _SCHEMAS[schema].values():
            name = field[0]
            item = value.get(_camel(name), value.get(name))
            if item is None:
                continue
            here = f"{where}.{name}" if where else name
            if field[2]:
                if not isinstance(item, list):
                    raise _malformed(f"{here} is not a list")
                out[name] = [self._value(field, one, depth, here) for one in item]
            else:
                out[name] = self._value(field, item, depth, here)
        return out

    def _value(self, field: _Field, value: Any, depth: int, where: str) -> Any:
        self._budget.take()
        kind = field[1]
        if kind == "message":
            return self.message(value, field[3], depth, where)
        if kind == "string":
            if not isinstance(value, str):
                raise _malformed(f"{where} is not a string")
            return value
        if kind == "id":
            if not isinstance(value, str) or len(value) % 2 or not _HEX.fullmatch(value):
                raise _malformed(f"{where} is not a hex id")
            return bytes.fromhex(value)
        if kind == "bytes":
            try:
                return base64.b64decode(_text(value, where), validate=True)
            except (binascii.Error, ValueError):
                raise _malformed(f"{where} is not base64") from None
        if kind == "bool":
            if not isinstance(value, bool):
                raise _malformed(f"{where} is not true or false")
            return value
        if kind == "double":
            return _double(value, where)
        return _integer(kind, value, where)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _malformed(f"{where} is not a string")
    return value


_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_INT_RANGES = {
    "int64": (-(1 << 63), (1 << 63) - 1),
    "sfixed64": (-(1 << 63), (1 << 63) - 1),
    "fixed64": (0, (1 << 64) - 1),
    "varint": (0, (1 << 64) - 1),
    "enum": (-(1 << 31), (1 << 31) - 1),
    "fixed32": (0, (1 << 32) - 1),
    "sint32": (-(1 << 31), (1 << 31) - 1),
}


def _double(value: Any, where: str) -> float:
    if isinstance(value, str) and value in _SPECIAL_DOUBLES:
        return _SPECIAL_DOUBLES[value]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _malformed(f"{where} is not a number")
    try:
        return float(value)
    except (ValueError, OverflowError):
        raise _malformed(f"{where} is not a number") from None


def _integer(kind: str, value: Any, where: str) -> int:
    """An integer as OTLP JSON sends it: a number, or (64-bit kinds) a decimal string."""
    number: int | None = None
    if kind == "enum" and isinstance(value, str) and value in _ENUM_NAMES:
        number = _ENUM_NAMES[value]
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and _DECIMAL.fullmatch(value)
    ):
        number = int(value)
    low, high = _INT_RANGES[kind]
    if number is None or not low <= number <= high:
        raise _malformed(f"{where} is not an integer in range")
    return number


# -- shaping -------------------------------------------------------------------------------


def spans(tree: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The spans of a decoded ``ExportTraceServiceRequest``, as ``DevServer.spans`` gives them."""
    out: list[dict[str, Any]] = []
    for resource, scope, span in _records(tree, "resource_spans", "scope_spans", "spans"):
        status = span.get("status", {})
        out.append(
            {
                "trace_id": _id(span, "trace_id", required=True),
                "span_id": _id(span, "span_id", required=True),
                "parent_span_id": _id(span, "parent_span_id"),
                "name": span.get("name", ""),
                "kind": span.get("kind", 0),
                "start_time_unix_nano": span.get("start_time_unix_nano", 0),
                "end_time_unix_nano": span.get("end_time_unix_nano", 0),
                "attributes": _attributes(span),
                "resource": resource,
                "scope": scope,
                "status": {"code": status.get("code", 0), "message": status.get("message", "")},
                "events": [
                    {
                        "name": event.get("name", ""),
                        "time_unix_nano": event.get("time_unix_nano", 0),
                        "attributes": _attributes(event),
                    }
                    for event in span.get("events", [])
                ],
            }
        )
    return out


def logs(tree: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The log records of a decoded ``ExportLogsServiceRequest``."""
    out: list[dict[str, Any]] = []
    for resource, scope, record in _records(tree, "resource_logs", "scope_logs", "log_records"):
        body = record.get("body")
        out.append(
            {
                "time_unix_nano": record.get("time_unix_nano", 0),
                "observed_time_unix_nano": record.get("observed_time_unix_nano", 0),
                "severity_number": record.get("severity_number", 0),
                "severity_text": record.get("severity_text", ""),
                "body": _plain(body) if body is not None else None,
                "attributes": _attributes(record),
                "resource": resource,
                "scope": scope,
                "trace_id": _id(record, "trace_id"),
                "span_id": _id(record, "span_id"),
            }
        )
    return out


def metrics(tree: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The metrics of a decoded ``ExportMetricsServiceRequest``, each with its data points."""
    out: list[dict[str, Any]] = []
    for resource, scope, metric in _records(tree, "resource_metrics", "scope_metrics", "metrics"):
        kind = next((k for k in _METRIC_TYPES if k in metric), None)
        if kind is None:
            continue  # a metric with no data (as the OpenTelemetry Collector, dropped)
        data = metric[kind]
        out.append(
            {
                "name": metric.get("name", ""),
                "description": metric.get("description", ""),
                "unit": metric.get("unit", ""),
                "type": kind,
                "temporality": _TEMPORALITY.get(data.get("aggregation_temporality", 0))
                if kind in ("sum", "histogram", "exponential_histogram")
                else None,
                "monotonic": data.get("is_monotonic", False) if kind == "sum" else None,
                "resource": resource,
                "scope": scope,
                "data_points": [_point(kind, p) for p in data.get("data_points", [])],
            }
        )
    return out


def _records(
    tree: Mapping[str, Any], resources: str, scopes: str, items: str
) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(resource attributes, scope name, record) for every record, held to OTLP_MAX_ITEMS."""
    found: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
    count = 0
    for by_resource in tree.get(resources, []):
        resource = _attributes(by_resource.get("resource", {}))
        for by_scope in by_resource.get(scopes, []):
            scope = by_scope.get("scope", {}).get("name", "")
            for record in by_scope.get(items, []):
                found.append((resource, scope, record))
                count += _points_in(record) if items == "metrics" else 1
                if count > OTLP_MAX_ITEMS:
                    raise RejectError(
                        400, "too_many_items", f"the body holds more than {OTLP_MAX_ITEMS} records"
                    )
    return found


def _points_in(metric: Mapping[str, Any]) -> int:
    return sum(len(metric[k].get("data_points", [])) for k in _METRIC_TYPES if k in metric)


def _point(kind: str, point: Mapping[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "attributes": _attributes(point),
        "start_time_unix_nano": point.get("start_time_unix_nano", 0),
        "time_unix_nano": point.get("time_unix_nano", 0),
    }
    if kind in ("sum", "gauge"):
        shaped["value"] = point.get("as_double", point.get("as_int"))
        return shaped
    shaped["count"] = point.get("count", 0)
    shaped["sum"] = point.get("sum")
    if kind == "histogram":
        shaped["bucket_counts"] = point.get("bucket_counts", [])
        shaped["explicit_bounds"] = point.get("explicit_bounds", [])
    elif kind == "exponential_histogram":
        shaped["scale"] = point.get("scale", 0)
        shaped["zero_count"] = point.get("zero_count", 0)
        for side in ("positive", "negative"):
            buckets = point.get(side, {})
            shaped[side] = {
                "offset": buckets.get("offset", 0),
                "bucket_counts": buckets.get("bucket_counts", []),
            }
    else:  # summary
        shaped["quantile_values"] = [
            {"quantile": q.get("quantile", 0.0), "value": q.get("value", 0.0)}
            for q in point.get("quantile_values", [])
        ]
    if kind != "summary":
        for bound in ("min", "max"):
            if bound in point:
                shaped[bound] = point[bound]
    return shaped


def _id(record: Mapping[str, Any], name: str, *, required: bool = False) -> str:
    """An id as lowercase hex; '' when absent (or all zero bytes, OTLP's "none")."""
    raw: bytes = record.get(name, b"")
    if not raw.strip(b"\0"):
        if required:
            raise _malformed(f"a span without a {name}")
        return ""
    if len(raw) != _ID_BYTES[name]:
        raise _malformed(f"{name} is {len(raw)} bytes, not {_ID_BYTES[name]}")
    return raw.hex()


def _attributes(holder: Mapping[str, Any]) -> dict[str, Any]:
    return {kv.get("key", ""): _plain(kv.get("value", {})) for kv in holder.get("attributes", [])}


def _plain(value: Mapping[str, Any]) -> Any:
    """An ``AnyValue`` as a plain JSON value (bytes as base64 text; none set: None)."""
    if "string_value" in value:
        return value["string_value"]
    if "bool_value" in value:
        return value["bool_value"]
    if "int_value" in value:
        return value["int_value"]
    if "double_value" in value:
        return value["double_value"]
    if "array_value" in value:
        return [_plain(v) for v in value["array_value"].get("values", [])]
    if "kvlist_value" in value:
        return _attributes({"attributes": value["kvlist_value"].get("values", [])})
    if "bytes_value" in value:
        return base64.b64encode(value["bytes_value"]).decode("ascii")
    return None
