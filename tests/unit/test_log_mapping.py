"""The tagging convention for log records, row by row, on real SDK records (no I/O)."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk.resources import Resource

from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern
from posthog_otel._mapping.logs import LogItem, LogMapper, is_tagged_record
from posthog_otel._mapping.tags import InvalidTagError, MappingOptions
from tests.support.spans import recording

MAPPER = LogMapper(MappingOptions(denylist=denylist_pattern(DEFAULT_DENYLIST)))


class Keep(LogRecordProcessor):
    """Keeps every record emitted, as a processor receives it."""

    def __init__(self) -> None:
        self.records: list = []

    def on_emit(self, log_record) -> None:
        self.records.append(log_record)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def emit(body="something happened", severity=SeverityNumber.INFO, **attributes):
    """One record from the SDK's Logger, as a processor would see it."""
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
    keep = Keep()
    provider.add_log_record_processor(keep)
    provider.get_logger("shop.orders").emit(
        body=body, severity_number=severity, severity_text=severity.name, attributes=attributes
    )
    return keep.records[0]


def logged(level, message, *args, exc_info=None, **extra):
    """One record through Python's logging and OpenTelemetry's logging handler."""
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
    keep = Keep()
    provider.add_log_record_processor(keep)
    log = logging.getLogger("tests.log_mapping")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler = LoggingHandler(logger_provider=provider)
    log.addHandler(handler)
    try:
        log.log(level, message, *args, exc_info=exc_info, extra=extra)
    finally:
        log.removeHandler(handler)
    return keep.records[0]


def only(events):
    assert len(events) == 1, events
    return events[0]


def test_untagged_records_make_no_events():
    record = emit(plan="pro")
    assert MAPPER.map_record(LogItem(record, exceptions=True)) == []
    assert not is_tagged_record(record.log_record.attributes, capture_exceptions=True)


def test_a_tagged_record_becomes_its_event():
    record = logged(
        logging.WARNING,
        "order %s placed",
        41,
        **{"posthog.event": "order_placed", "order.total": 12.5, "items": ["a", "b"]},
    )
    event = only(MAPPER.map_record(LogItem(record)))
    assert event["event"] == "order_placed"
    props = event["properties"]
    assert props["order.total"] == 12.5
    assert list(props["items"]) == ["a", "b"]  # the SDK keeps sequences as tuples
    assert "posthog.event" not in props
    assert props["$log_message"] == "order 41 placed"
    assert props["$log_level"] == "WARN"  # OpenTelemetry's name for Python's WARNING
    assert props["$log_severity_number"] == SeverityNumber.WARN.value
    assert props["$logger_name"] == "tests.log_mapping"
    assert props["service.name"] == "shop"
    assert props["$lib"] == "posthog-otel"
    assert "$trace_id" not in props  # logged outside any span
    # Nobody known and no trace: personless, with an id of its own.
    assert props["$process_person_profile"] is False
    assert event["distinct_id"] == event["uuid"]
    micros = record.log_record.timestamp // 1000
    assert event["timestamp"].endswith(f".{micros % 1_000_000:06d}+00:00")


def test_a_record_in_a_span_carries_its_trace_and_span():
    with recording() as (tracer, _):
        with tracer.start_as_current_span("checkout") as span:
            record = emit(**{"posthog.event": "order_placed"})
            context = span.get_span_context()
    event = only(MAPPER.map_record(LogItem(record)))
    assert event["properties"]["$trace_id"] == trace.format_trace_id(context.trace_id)
    assert event["properties"]["$span_id"] == trace.format_span_id(context.span_id)
    assert event["distinct_id"] == trace.format_trace_id(context.trace_id)  # personless


@pytest.mark.parametrize(
    ("record_attrs", "baggage_id", "span_attrs", "expected"),
    [
        ({"posthog.distinct_id": "own"}, "carried", {"posthog.distinct_id": "span"}, "own"),
        ({"enduser.id": "enduser"}, "carried", {"posthog.distinct_id": "span"}, "carried"),
        ({"enduser.id": "enduser"}, None, {"posthog.distinct_id": "span"}, "span"),
        ({"user.id": "user"}, None, {"enduser.id": "span-enduser"}, "user"),
        ({}, None, {"enduser.id": "span-enduser"}, "span-enduser"),
        ({}, None, None, None),
    ],
)
def test_identity_resolution_order(record_attrs, baggage_id, span_attrs, expected):
    record = emit(**{"posthog.event": "e", **record_attrs})
    event = only(MAPPER.map_record(LogItem(record, False, baggage_id, span_attrs)))
    if expected is None:
        assert event["properties"]["$process_person_profile"] is False
    else:
        assert event["distinct_id"] == expected
        assert "$process_person_profile" not in event["properties"]


def test_reserved_keys_work_as_on_spans():
    record = emit(
        **{
            "posthog.event": "plan_changed",
            "posthog.properties": json.dumps({"plan": {"from": "free", "to": "pro"}}),
            "posthog.set.plan": "pro",
            "posthog.set_once.first_plan": "free",
            "posthog.groups.company": "acme",
            "posthog.session_id": "s-1",
            "db.password": "hunter2",
            "token_count": 3,
        }
    )
    span = {"posthog.groups.team": "core", "posthog.groups.company": "other", "session.id": "s-2"}
    props = only(MAPPER.map_record(LogItem(record, span_attributes=span)))["properties"]
    assert props["plan"] == {"from": "free", "to": "pro"}
    assert props["$set"] == {"plan": "pro"}
    assert props["$set_once"] == {"first_plan": "free"}
    assert props["$groups"] == {"company": "acme", "team": "core"}  # the record's own wins
    assert props["$session_id"] == "s-1"
    assert "db.password" not in props
    assert props["token_count"] == 3
    assert not any(key.startswith("posthog.") for key in props)


def test_a_record_takes_groups_and_session_it_does_not_set_from_its_span():
    record = emit(**{"posthog.event": "e"})
    span = {"posthog.groups.company": "acme", "posthog.session_id": "s-9", "posthog.event": "x"}
    props = only(MAPPER.map_record(LogItem(record, span_attributes=span)))["properties"]
    assert props["$groups"] == {"company": "acme"}
    assert props["$session_id"] == "s-9"
    assert "x" not in props.values()  # the span's own attributes are not the record's


def test_flags_known_in_the_span_become_feature_properties():
    record = emit(**{"posthog.event": "e"})
    flags = {"new-checkout": "one-click", "beta": True}
    props = only(MAPPER.map_record(LogItem(record, flags=flags)))["properties"]
    assert props["$feature/new-checkout"] == "one-click"
    assert props["$feature/beta"] is True


def _raise_nested():
    try:
        raise KeyError("card")
    except KeyError as exc:
        raise RuntimeError("payment failed for order 7") from exc


def test_logger_exception_becomes_a_handled_exception_event():
    try:
        _raise_nested()
    except RuntimeError:
        record = logged(logging.ERROR, "checkout broke", exc_info=True, **{"order.id": 7})
    assert MAPPER.map_record(LogItem(record)) == []  # exceptions not asked for
    event = only(MAPPER.map_record(LogItem(record, exceptions=True, distinct_id="u1")))
    assert event["event"] == "$exception"
    assert event["distinct_id"] == "u1"
    props = event["properties"]
    assert props["$exception_level"] == "error"
    assert props["$log_message"] == "checkout broke"
    assert props["order.id"] == 7
    assert not any(key.startswith("exception.") for key in props)
    outer, cause = props["$exception_list"]
    assert (outer["type"], outer["value"]) == ("RuntimeError", "payment failed for order 7")
    assert outer["mechanism"]["handled"] is True
    assert outer["stacktrace"]["frames"][-1]["function"] == "_raise_nested"
    assert outer["stacktrace"]["frames"][-1]["in_app"] is True
    assert (cause["type"], cause["mechanism"]["type"]) == ("KeyError", "chained")


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        (SeverityNumber.WARN, "warning"),
        (SeverityNumber.ERROR3, "error"),
        (SeverityNumber.FATAL, "fatal"),
        (SeverityNumber.INFO, "info"),
        (SeverityNumber.UNSPECIFIED, "error"),
    ],
)
def test_exception_level_follows_severity(severity, level):
    record = emit(severity=severity, **{"exception.type": "ValueError", "exception.message": "x"})
    event = only(MAPPER.map_record(LogItem(record, exceptions=True)))
    assert event["properties"]["$exception_level"] == level
    assert event["properties"]["$exception_list"][0]["type"] == "ValueError"


def test_a_tagged_record_with_an_exception_makes_both_events():
    record = emit(
        **{
            "posthog.event": "payment_failed",
            "posthog.distinct_id": "u2",
            "posthog.set.plan": "pro",
            "exception.type": "ValueError",
            "exception.message": "bad card",
        }
    )
    tagged, exception = MAPPER.map_record(LogItem(record, exceptions=True))
    assert (tagged["event"], exception["event"]) == ("payment_failed", "$exception")
    assert tagged["distinct_id"] == exception["distinct_id"] == "u2"
    assert tagged["uuid"] != exception["uuid"]
    assert "$set" in tagged["properties"] and "$set" not in exception["properties"]


@pytest.mark.parametrize(
    "attrs",
    [
        {"posthog.event": ""},
        {"posthog.event": "e", "posthog.distinct_id": 42},
        {"posthog.event": "e", "posthog.properties": "[1, 2]"},
    ],
)
def test_unusable_tags_are_an_error_the_worker_counts(attrs):
    with pytest.raises(InvalidTagError):
        MAPPER.map_record(LogItem(emit(**attrs)))


def test_an_unusable_tag_spoils_only_the_events_that_use_it():
    record = emit(**{"posthog.event": "", "exception.type": "ValueError"})
    problems: list[str] = []
    (event,) = MAPPER.map_record(LogItem(record, exceptions=True), problems)
    assert event["event"] == "$exception"
    assert problems == ["posthog.event must be a non-empty string, got ''"]


def test_non_string_bodies_are_kept_as_values():
    record = emit(body={"order": 7, "items": [1, 2]}, **{"posthog.event": "e"})
    props = only(MAPPER.map_record(LogItem(record)))["properties"]
    assert props["$log_message"] == {"order": 7, "items": [1, 2]}


def test_maps_in_a_record_stay_nested_properties():
    record = logged(
        logging.INFO,
        "x",
        **{
            "posthog.event": "e",
            "order": {"id": 7, "card_token": "tok_1"},
            "posthog.properties": {"cart": {"items": 2, "password": "p"}},
        },
    )
    props = only(MAPPER.map_record(LogItem(record)))["properties"]
    assert props["order"] == {"id": 7}  # credentials dropped at any depth
    assert props["cart"] == {"items": 2}
