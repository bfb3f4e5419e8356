"""OpenInference spans through the span processor to the devserver: a chain, its tool and
the model call nest into one ``$ai_trace``; spans that look like GenAI but map to nothing
are counted and logged once per reason.

The spans come from OpenInference's own tracer (``OITracer``, what its instrumentations
use), which sets the span kind when the span starts.
"""

from __future__ import annotations

import logging

from openinference.instrumentation import OITracer, TraceConfig, using_attributes
from openinference.semconv.trace import SpanAttributes

from posthog_otel import identify

KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND


def test_a_chain_its_tool_and_the_model_call_nest_into_one_trace(server, make_pipeline):
    tracer, processor = make_pipeline()
    oi = OITracer(tracer, config=TraceConfig())
    with (
        identify("ours"),
        tracer.start_as_current_span("POST /plan"),
        using_attributes(user_id="oi-user", session_id="conversation-9"),
    ):
        with oi.start_as_current_span("RunnableSequence", openinference_span_kind="chain") as chain:
            chain.set_input("Trip to Paris?")
            with oi.start_as_current_span("get_weather", openinference_span_kind="tool") as tool:
                tool.set_input({"city": "Paris"})
                with tracer.start_as_current_span("lookup"):  # not a GenAI span
                    with oi.start_as_current_span(
                        "ChatOpenAI",
                        openinference_span_kind="llm",
                        attributes={SpanAttributes.LLM_MODEL_NAME: "gpt-4o-mini"},
                    ):
                        pass
                tool.set_output("sunny")
            chain.set_output("Pack sunglasses.")
    assert processor.force_flush(10)
    events = {e["event"]: e for e in server.wait_for_events(3)}
    assert sorted(events) == ["$ai_generation", "$ai_span", "$ai_trace"]
    root = events["$ai_trace"]["properties"]
    trace_id = root["$ai_trace_id"]
    assert root["$ai_span_name"] == "RunnableSequence" and "$ai_parent_id" not in root
    assert root["$ai_input_state"] == "Trip to Paris?"
    assert root["$ai_output_state"] == "Pack sunglasses."
    tool_event = events["$ai_span"]["properties"]
    assert tool_event["$ai_parent_id"] == trace_id  # its GenAI parent is the $ai_trace
    assert tool_event["$ai_input_state"] == {"city": "Paris"}
    generation = events["$ai_generation"]["properties"]
    assert generation["$ai_parent_id"] == f"{tool.get_span_context().span_id:016x}"
    assert generation["$ai_model"] == "gpt-4o-mini"
    for event in events.values():
        assert event["properties"]["$ai_trace_id"] == trace_id
        assert event["distinct_id"] == "oi-user"  # OpenInference's user.id before ours
        assert event["properties"]["$ai_session_id"] == "conversation-9"


def test_unmapped_genai_spans_are_counted_and_logged_once_per_reason(server, make_pipeline, caplog):
    tracer, processor = make_pipeline()
    caplog.set_level(logging.INFO, logger="posthog_otel")
    for _ in range(3):
        with tracer.start_as_current_span("mystery", attributes={KIND: "UNKNOWN"}):
            pass
    with tracer.start_as_current_span("legacy", attributes={"gen_ai.system": "openai"}):
        pass
    with tracer.start_as_current_span("chat", attributes={KIND: "LLM"}):
        pass
    assert processor.force_flush(10)
    assert [e["event"] for e in server.wait_for_events(1)] == ["$ai_generation"]
    stats = processor.stats()
    assert stats.unmapped == {"genai_unknown_kind": 3, "genai_no_operation": 1}
    assert stats.dropped == {} and stats.events_sent == 1
    said = [r for r in caplog.records if "looks like GenAI" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.INFO, logging.INFO]
    assert sorted(r.args[0] for r in said) == ["genai_no_operation", "genai_unknown_kind"]
