"""Hostile or unlucky spans and log records: no capture lost to a span's event limit,
privacy_mode sending no content in any event, one bad attribute costing only itself,
and every outside value (strings, lists, nesting, exception chains) bounded and counted.

Each test here failed on the main branch before these bounds existed.
"""

from __future__ import annotations

import gc
import json

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import get_current_span

from posthog_otel import PostHogLogProcessor, _otel, capture
from posthog_otel._limits import (
    MAX_EXCEPTION_CHAIN,
    MAX_EXCEPTION_FRAMES,
    MAX_LIST_ITEMS,
    MAX_STRING_LENGTH,
    MAX_VALUE_DEPTH,
)
from posthog_otel._mapping.logs import LogItem, LogMapper
from posthog_otel._mapping.spans import MappingOptions, SpanMapper
from posthog_otel._pipeline import spans as captured
from tests.support.server import assert_accounted
from tests.support.spans import recording

DEEP_JSON = "[" * 5000 + "]" * 5000  # deeper than the JSON parser's recursion guard


def logger_for(span_processor, capture_exceptions=False):
    """A LoggerProvider whose records go through a log processor sharing the span one."""
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
    shared = PostHogLogProcessor(processor=span_processor, capture_exceptions=capture_exceptions)
    provider.add_log_record_processor(shared)
    return provider.get_logger("shop.hostile")


def chained(n: int) -> BaseException:
    """An exception whose ``__cause__`` chain is ``n`` long (``raise ... from`` in a loop)."""
    error: BaseException | None = None
    for i in range(n):
        try:
            raise ValueError(f"step {i}") from error
        except ValueError as exc:
            error = exc
    assert error is not None
    return error


# -- 4: the 129th capture() in a span ------------------------------------------------------


def test_every_capture_in_a_long_span_is_delivered_once(server, make_pipeline):
    tracer, processor = make_pipeline()
    with tracer.start_as_current_span("long") as span:
        for i in range(501):
            capture("step", {"i": i, "nested": {"i": i}})
        span.set_attribute("posthog.distinct_id", "u1")  # known only at the end: all get it
    assert processor.force_flush(10_000)
    events = server.wait_for_events(501, event="step")
    assert len({e["uuid"] for e in events}) == 501
    assert sorted(e["properties"]["i"] for e in events) == list(range(501))
    assert all(e["properties"]["nested"] == {"i": e["properties"]["i"]} for e in events)
    assert {e["distinct_id"] for e in events} == {"u1"}
    assert {e["properties"]["$otel_span_name"] for e in events} == {"long"}
    assert {e["properties"]["service.name"] for e in events} == {"shop"}
    stats = processor.stats()
    assert stats.events_sent == 501 and stats.dropped == {}
    assert_accounted(stats)
    assert not captured.HELD


def test_no_capture_is_lost_on_the_public_api_alone(server, make_pipeline):
    tracer, processor = make_pipeline()
    _otel.use_public_api()  # as if the SDK renamed its private names
    try:
        with tracer.start_as_current_span("long"):
            for i in range(300):
                capture("step", {"i": i})
    finally:
        _otel.use_public_api(False)
    assert processor.force_flush(10_000)
    events = server.wait_for_events(300, event="step")
    assert sorted(e["properties"]["i"] for e in events) == list(range(300))


def test_captures_past_the_held_bound_are_sent_at_once(server, make_pipeline, monkeypatch):
    monkeypatch.setattr(captured, "MAX_HELD_CAPTURES", 5)
    tracer, processor = make_pipeline()
    with tracer.start_as_current_span("long", attributes={"posthog.distinct_id": "u1"}):
        for i in range(128 + 5 + 3):
            capture("step", {"i": i})
    assert processor.force_flush(10_000)
    events = server.wait_for_events(136, event="step")
    assert sorted(e["properties"]["i"] for e in events) == list(range(136))
    assert {e["distinct_id"] for e in events} == {"u1"}  # the span's, known when sent
    assert processor.stats().events_sent == 136


def test_a_span_that_is_never_ended_holds_nothing_once_collected(make_pipeline):
    tracer, _ = make_pipeline()
    span = tracer.start_span("forgotten")
    for i in range(200):
        assert captured.hold(span, "step", {"posthog.event": "step", "i": i}) is True
    assert len(captured.HELD) == 1
    del span
    gc.collect()
    assert not captured.HELD


# -- 5: privacy_mode -----------------------------------------------------------------------

SECRET = "SECRET-PROMPT-TEXT"
CONTENT_ATTRIBUTES = {
    "gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": SECRET}]}]
    ),
    "gen_ai.output.messages": json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": SECRET}]}]
    ),
    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": SECRET}]),
    "gen_ai.tool.call.arguments": json.dumps({"q": SECRET}),
    "gen_ai.tool.call.result": json.dumps({"a": SECRET}),
    "gen_ai.prompt.0.role": "user",
    "gen_ai.prompt.0.content": SECRET,
    "gen_ai.completion.0.content": SECRET,
    "gen_ai.completion.0.tool_calls.0.arguments": SECRET,
    "gen_ai.prompt": SECRET,
    "gen_ai.completion": SECRET,
    "traceloop.entity.input": SECRET,
    "input.value": SECRET,
}


@pytest.mark.parametrize("operation", ["chat", "execute_tool", "invoke_agent"])
def test_privacy_mode_sends_no_content_in_any_event_of_a_genai_span(operation):
    mapper = SpanMapper(MappingOptions(privacy_mode=True, capture_exceptions=True))
    with recording() as (tracer, ended):
        attributes = {
            "posthog.event": "answered",
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": "m",
            "plan": "pro",
            **CONTENT_ATTRIBUTES,
        }
        with tracer.start_as_current_span("genai", attributes=attributes) as span:
            span.add_event(
                "gen_ai.user.message",
                {"posthog.event": "said", "content": SECRET, "gen_ai.event.content": SECRET},
            )
            span.add_event("gen_ai.choice", {"message": SECRET, "index": 0})  # untagged
            capture("clicked", {"button": "send"})
        events = mapper.map_span(ended()[0])
    names = sorted(e["event"] for e in events)
    assert "answered" in names and "said" in names and "clicked" in names
    assert any(n.startswith("$ai_") for n in names)
    assert SECRET not in json.dumps(events)
    answered = next(e for e in events if e["event"] == "answered")
    assert answered["properties"]["plan"] == "pro"  # only content is left out
    assert answered["properties"]["gen_ai.request.model"] == "m"


def test_privacy_mode_sends_no_body_or_content_of_a_genai_log_record():
    mapper = LogMapper(MappingOptions(privacy_mode=True))
    provider = LoggerProvider()
    kept = []

    class Keep:
        def on_emit(self, record):
            kept.append(record)

        emit = on_emit

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis=30000):
            return True

    provider.add_log_record_processor(Keep())
    provider.get_logger("genai").emit(
        event_name="gen_ai.client.inference.operation.details",
        body={"content": SECRET},
        severity_number=SeverityNumber.INFO,
        attributes={"posthog.event": "inference", **CONTENT_ATTRIBUTES},
    )
    (event,) = mapper.map_record(LogItem(kept[0]))
    assert event["event"] == "inference"
    assert SECRET not in json.dumps(event)


# -- 6: one bad attribute costs only itself ------------------------------------------------

BAD = {
    "semconv messages 5,000 deep": ({"gen_ai.input.messages": DEEP_JSON}, None),
    "a Traceloop index that int() refuses": ({"gen_ai.prompt.\u00b2.content": "hi"}, None),
    "a flag value 5,000 deep": (
        {},
        {"feature_flag.key": "f", "feature_flag.result.value": DEEP_JSON},
    ),
}


@pytest.mark.parametrize(("attributes", "flag_event"), BAD.values(), ids=BAD.keys())
def test_one_bad_attribute_costs_only_itself(server, make_pipeline, attributes, flag_event):
    tracer, processor = make_pipeline()
    log = logger_for(processor)
    base = {"posthog.event": "checkout", "gen_ai.operation.name": "chat", "plan": "pro"}
    with tracer.start_as_current_span("s", attributes={**base, **attributes}) as span:
        if flag_event is not None:
            span.add_event("feature_flag.evaluation", flag_event)
        span.add_event("clicked", {"posthog.event": "clicked"})
        capture("captured", {"n": 1})
        log.emit(body="logged", attributes={"posthog.event": "logged"})
    assert processor.force_flush(10_000)
    server.wait_for_events(5)
    names = sorted(e["event"] for e in server.events())
    assert names == ["$ai_generation", "captured", "checkout", "clicked", "logged"]
    assert server.events("checkout")[0]["properties"]["plan"] == "pro"
    stats = processor.stats()
    assert stats.dropped == {}
    assert sum(stats.trimmed.values()) >= 1, stats  # the bad value, counted by name
    assert set(stats.trimmed) <= {"depth", "invalid_property"}
    assert_accounted(stats)


def test_a_deep_log_attribute_and_body_are_cut_to_the_depth_bound():
    deep: dict = {}  # as deep as the SDK itself can hold (it recurses to clean values)
    node = deep
    for _ in range(300):
        node["d"] = {}
        node = node["d"]
    mapper = LogMapper(MappingOptions())
    provider = LoggerProvider()
    kept = []

    class Keep:
        def on_emit(self, record):
            kept.append(record)

        emit = on_emit

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis=30000):
            return True

    provider.add_log_record_processor(Keep())
    provider.get_logger("x").emit(
        body={"b": deep}, attributes={"posthog.event": "deep", "ok": 1, "extra": deep}
    )
    (event,) = mapper.map_record(LogItem(kept[0]), [])
    props = event["properties"]
    assert props["ok"] == 1
    for value in (props["extra"], props["$log_message"]):
        text = json.dumps(value)  # encodable: no level past the bound
        assert text.count('{"d": ') <= MAX_VALUE_DEPTH
        assert "nested deeper than" in text
    assert mapper.trims.take() == {"depth": 2}


def test_long_strings_and_lists_are_cut_and_counted(server, make_pipeline):
    tracer, processor = make_pipeline()
    attributes = {
        "posthog.event": "big",
        "long": "y" * (MAX_STRING_LENGTH * 3),
        "many": list(range(MAX_LIST_ITEMS * 5)),
    }
    with tracer.start_as_current_span("x" * (MAX_STRING_LENGTH + 10), attributes=attributes):
        pass
    assert processor.force_flush(10_000)
    (event,) = server.wait_for_events(1)
    props = event["properties"]
    assert props["long"].startswith("y" * MAX_STRING_LENGTH) and "cut" in props["long"]
    assert props["many"] == list(range(MAX_LIST_ITEMS))
    assert len(props["$otel_span_name"]) < MAX_STRING_LENGTH + 100
    stats = processor.stats()
    assert stats.trimmed == {"string_length": 2, "list_length": 1}
    assert stats.dropped == {}


def test_an_event_too_large_in_total_is_shortened_not_dropped(server, make_pipeline):
    tracer, processor = make_pipeline()
    attributes = {"posthog.event": "wide", "small": "kept"}
    attributes.update({f"a{i}": str(i) * (MAX_STRING_LENGTH - 1) for i in range(10)})
    attributes.update({f"b{i}": "z" * (MAX_STRING_LENGTH - 1) for i in range(10)})
    with tracer.start_as_current_span("s", attributes=attributes):
        pass
    assert processor.force_flush(10_000)
    (event,) = server.wait_for_events(1)
    assert event["properties"]["small"] == "kept"
    assert len(json.dumps(event)) < 1024 * 1024
    stats = processor.stats()
    assert stats.dropped == {} and stats.trimmed.get("event_size", 0) >= 1


# -- 7: an exception chain 10,000 long -----------------------------------------------------


def test_a_chain_of_10000_exceptions_is_shortened_not_dropped(server, make_pipeline):
    tracer, processor = make_pipeline(capture_exceptions=True)
    log = logger_for(processor, capture_exceptions=True)
    error = chained(10_000)
    with tracer.start_as_current_span("s") as span:
        span.record_exception(error)
        stacktrace = _otel_stacktrace(span)  # the same text, as a log handler writes it
        log.emit(
            body="boom",
            severity_number=SeverityNumber.ERROR,
            attributes={
                "exception.type": "ValueError",
                "exception.message": "step 9999",
                "exception.stacktrace": stacktrace,
                "posthog.event": "failed",
            },
        )
    assert processor.force_flush(30_000)
    server.wait_for_events(3)
    exceptions = server.events("$exception")
    assert len(exceptions) == 2  # the span's and the log record's
    assert server.events("failed")[0]["properties"]["$log_message"] == "boom"
    for event in exceptions:
        props = event["properties"]
        chain = props["$exception_list"]
        assert len(chain) == MAX_EXCEPTION_CHAIN
        assert chain[0]["value"] == "step 9999"  # the outermost first
        assert chain[1]["value"] == "step 9998"
        assert props["$exception_list_omitted"] == 10_000 - MAX_EXCEPTION_CHAIN
    stats = processor.stats()
    assert stats.dropped == {}
    assert stats.trimmed["exception_chain"] == 2
    assert_accounted(stats)


def _otel_stacktrace(span) -> str:
    (event,) = [e for e in span.events if e.name == "exception"]
    return str(event.attributes["exception.stacktrace"])


def test_frames_per_exception_are_capped_keeping_both_ends():
    def recurse(n):  # two functions in turn: Python folds a frame repeated in a row
        if n == 0:
            raise RuntimeError("bottom")
        again(n - 1)

    def again(n):
        recurse(n)

    mapper = SpanMapper(MappingOptions(capture_exceptions=True))
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("s") as span:
            try:
                recurse(400)
            except RuntimeError as exc:
                span.record_exception(exc)
        (event,) = mapper.map_span(ended()[0])
    frames = event["properties"]["$exception_list"][0]["stacktrace"]["frames"]
    assert len(frames) == MAX_EXCEPTION_FRAMES
    assert frames[0]["function"] == "test_frames_per_exception_are_capped_keeping_both_ends"
    assert frames[-1]["function"] == "recurse" and frames[-1]["context_line"].startswith("raise")
    assert mapper.trims.take() == {"exception_frames": 1}


def test_capture_inside_the_current_span_is_not_affected_by_another_tracer():
    # capture() reads the current span's own limit, not a global one
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("r"):
            for i in range(10):
                capture("e", {"i": i})
            assert len(get_current_span().events) == 10
    assert len(ended()[0].events) == 10
