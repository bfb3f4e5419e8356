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
from opentelemetry.sdk.trace import TracerProvider

from posthog_otel import PostHogClient, PostHogSpanProcessor, identify
from tests.support.server import API_KEY

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


def test_spans_that_say_their_kind_only_as_they_end_still_nest(server):
    """OpenInference's LangChain tracer sets every attribute as a span ends, so nesting
    follows its instrumentation scope (and the kind decides the event at the end)."""
    processor = PostHogSpanProcessor(PostHogClient(API_KEY, server.url))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("openinference.instrumentation.langchain")
    try:
        with identify("user-7"), tracer.start_as_current_span("RunnableSequence") as chain:
            with tracer.start_as_current_span("run_tools") as step:
                with tracer.start_as_current_span("get_weather") as tool:
                    tool.set_attribute(KIND, "TOOL")
                step.set_attribute(KIND, "CHAIN")
            with tracer.start_as_current_span("FakeChatModel") as model:
                model.set_attribute(KIND, "LLM")
            chain.set_attribute(KIND, "CHAIN")
        assert processor.force_flush(10)
        events = {e["properties"]["$ai_span_name"]: e for e in server.wait_for_events(4)}
    finally:
        provider.shutdown()
    trace = events["RunnableSequence"]["properties"]["$ai_trace_id"]
    assert {name: e["event"] for name, e in events.items()} == {
        "RunnableSequence": "$ai_trace",
        "run_tools": "$ai_span",
        "get_weather": "$ai_span",
        "FakeChatModel": "$ai_generation",
    }
    assert events["run_tools"]["properties"]["$ai_parent_id"] == trace
    assert events["FakeChatModel"]["properties"]["$ai_parent_id"] == trace
    step_id = f"{step.get_span_context().span_id:016x}"
    assert events["get_weather"]["properties"]["$ai_parent_id"] == step_id
