"""GenAI spans to LLM analytics events: recorded attributes from each generation of
conventions (Traceloop's too), message conversion, nesting, switches and size limits.

The official OpenAI instrumentation itself is exercised in test_genai_openai.py.
"""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from posthog_otel import PostHogClient, PostHogSpanExporter, PostHogSpanProcessor, identify
from posthog_otel._client.events import MAX_EVENT_BYTES
from posthog_otel._json import dumps
from posthog_otel._mapping.bounds import MAX_CONTENT_BYTES, bounded
from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern
from posthog_otel._mapping.spans import MappingOptions, SpanMapper
from posthog_otel.errors import ConfigurationError
from tests.support.server import API_KEY
from tests.support.spans import one_span, recording

MAPPER = SpanMapper(MappingOptions(denylist=denylist_pattern(DEFAULT_DENYLIST)))
PRIVATE = SpanMapper(MappingOptions(privacy_mode=True))

# Recorded from OpenLLMetry's OpenAI instrumentation: a chat call that asked for a tool.
TRACELOOP_CHAT = {
    "llm.request.type": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.openai.api_base": "https://api.openai.com/v1/",
    "llm.is_streaming": False,
    "gen_ai.request.temperature": 0.7,
    "gen_ai.usage.prompt_tokens": 57,
    "gen_ai.usage.completion_tokens": 17,
    "llm.usage.total_tokens": 74,
    "gen_ai.usage.cache_read_input_tokens": 32,
    "llm.request.functions.0.name": "get_weather",
    "llm.request.functions.0.description": "The weather in a city",
    "llm.request.functions.0.parameters": '{"type": "object", "properties": {"city": {"type": "string"}}}',
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "You plan trips.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": "Weather in Paris?",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.finish_reason": "tool_calls",
    "gen_ai.completion.0.tool_calls.0.id": "call_9",
    "gen_ai.completion.0.tool_calls.0.name": "get_weather",
    "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Paris"}',
    "traceloop.association.properties.customer_tier": "pro",
    "traceloop.workflow.name": "plan_trip",
}


def only(events, name):
    found = [e for e in events if e["event"] == name]
    assert len(found) == 1, events
    return found[0]


def test_a_traceloop_chat_span_becomes_a_generation():
    span = one_span("openai.chat", **TRACELOOP_CHAT)
    event = only(MAPPER.map_span(span), "$ai_generation")
    props = event["properties"]
    assert {k: v for k, v in props.items() if k.startswith("$ai_") and k != "$ai_latency"} == {
        "$ai_trace_id": props["$trace_id"],
        "$ai_span_id": props["$span_id"],
        "$ai_parent_id": props["$trace_id"],  # top level: no GenAI span around it
        "$ai_span_name": "openai.chat",
        "$ai_model": "gpt-4o-2024-08-06",
        "$ai_provider": "openai",
        "$ai_input_tokens": 57,
        "$ai_output_tokens": 17,
        "$ai_cache_read_input_tokens": 32,
        "$ai_temperature": 0.7,
        "$ai_stream": False,
        "$ai_base_url": "https://api.openai.com/v1/",
        "$ai_model_parameters": {"temperature": 0.7, "stream": False},
        "$ai_stop_reason": "tool_calls",
        "$ai_tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "$ai_input": [
            {"role": "system", "content": "You plan trips."},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        "$ai_output_choices": [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "function",
                        "id": "call_9",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            }
        ],
    }
    assert props["$ai_latency"] == (span.end_time - span.start_time) / 1e9
    assert props["customer_tier"] == "pro"  # Traceloop's association properties, as properties
    assert not any(k.startswith(("gen_ai.", "llm.", "traceloop.")) for k in props)
    assert event["distinct_id"] == props["$trace_id"]  # nobody known: personless
    assert props["$process_person_profile"] is False
    micros = span.start_time // 1000  # AI events are stamped when the call began
    assert event["timestamp"].endswith(f".{micros % 1_000_000:06d}+00:00")


def test_current_conventions_messages_convert_part_by_part():
    messages_in = [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "Describe"},
                {"type": "uri", "modality": "image", "uri": "https://x/cat.png"},
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "a cat"},
                {"type": "tool_call", "id": "c1", "name": "zoom", "arguments": {"x": 2}},
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "c1", "response": {"zoomed": True}}],
        },
        {
            "role": "user",
            "parts": [
                {
                    "type": "blob",
                    "modality": "audio",
                    "mime_type": "audio/wav",
                    "content": "UklGRg==",
                }
            ],
        },
    ]
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be kind."}]),
        "gen_ai.input.messages": json.dumps(messages_in),
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "A cat."}],
                    "finish_reason": "stop",
                }
            ]
        ),
    }
    props = only(MAPPER.map_span(one_span("chat m", **attrs)), "$ai_generation")["properties"]
    assert props["$ai_input"] == [
        {"role": "system", "content": "Be kind."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image", "image": "https://x/cat.png"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "text": "a cat"},
                {
                    "type": "function",
                    "id": "c1",
                    "function": {"name": "zoom", "arguments": {"x": 2}},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"zoomed": true}'},
        {
            "role": "user",
            "content": [
                {
                    "type": "blob",
                    "modality": "audio",
                    "mime_type": "audio/wav",
                    "content": "UklGRg==",
                }
            ],
        },
    ]
    assert props["$ai_output_choices"] == [{"role": "assistant", "content": "A cat."}]
    assert props["$ai_stop_reason"] == "stop"  # from the messages, when no attribute says


def test_the_older_message_span_events_are_read():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span(
            "chat gpt-4", attributes={"gen_ai.operation.name": "chat"}
        ) as span:
            span.add_event("gen_ai.system.message", {"content": "Be brief."})
            span.add_event(
                "gen_ai.user.message", {"gen_ai.event.content": json.dumps({"content": "Hi"})}
            )
            span.add_event("gen_ai.tool.message", {"content": "42", "id": "call_1"})
            body = {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Hello"},
            }
            span.add_event("gen_ai.choice", {"gen_ai.event.content": json.dumps(body)})
        (span,) = ended()
    props = only(MAPPER.map_span(span), "$ai_generation")["properties"]
    assert props["$ai_input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
    ]
    assert props["$ai_output_choices"] == [{"role": "assistant", "content": "Hello"}]
    assert props["$ai_stop_reason"] == "stop"


def test_prompt_and_completion_as_single_attributes_or_content_events():
    text = one_span(
        "c",
        **{
            "gen_ai.operation.name": "text_completion",
            "gen_ai.prompt": "Once",
            "gen_ai.completion": "upon",
        },
    )
    props = only(MAPPER.map_span(text), "$ai_generation")["properties"]
    assert props["$ai_input"] == [{"role": "user", "content": "Once"}]
    assert props["$ai_output_choices"] == [{"role": "assistant", "content": "upon"}]
    with recording() as (tracer, ended):
        with tracer.start_as_current_span(
            "c", attributes={"gen_ai.operation.name": "chat"}
        ) as span:
            span.add_event(
                "gen_ai.content.prompt",
                {"gen_ai.prompt": json.dumps([{"role": "user", "content": "Q"}])},
            )
            span.add_event("gen_ai.content.completion", {"gen_ai.completion": "A"})
        (span,) = ended()
    props = only(MAPPER.map_span(span), "$ai_generation")["properties"]
    assert props["$ai_input"] == [{"role": "user", "content": "Q"}]
    assert props["$ai_output_choices"] == [{"role": "assistant", "content": "A"}]


@pytest.mark.parametrize(
    ("attrs", "name"),
    [
        ({"gen_ai.operation.name": "chat"}, "$ai_generation"),
        ({"gen_ai.operation.name": "generate_content"}, "$ai_generation"),
        ({"gen_ai.operation.name": "text_completion"}, "$ai_generation"),
        ({"llm.request.type": "completion"}, "$ai_generation"),
        ({"gen_ai.operation.name": "embeddings"}, "$ai_embedding"),
        ({"llm.request.type": "embedding"}, "$ai_embedding"),
        ({"gen_ai.operation.name": "invoke_agent"}, "$ai_trace"),
        ({"gen_ai.operation.name": "create_agent"}, "$ai_trace"),
        ({"gen_ai.operation.name": "execute_tool", "posthog.ai.parent_id": "ab" * 8}, "$ai_span"),
    ],
)
def test_operations_to_event_names(attrs, name):
    (event,) = MAPPER.map_span(one_span("op", **attrs))
    assert event["event"] == name


def test_an_error_is_reported_from_status_error_type_or_exception():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span(
            "chat m", attributes={"gen_ai.operation.name": "chat"}
        ) as span:
            span.record_exception(TimeoutError("model too slow"))
            span.set_attribute("error.type", "TimeoutError")
        with tracer.start_as_current_span(
            "chat m", attributes={"gen_ai.operation.name": "chat"}
        ) as span:
            span.set_status(Status(StatusCode.ERROR, "Error code: 429 - rate limited"))
        by_exception, by_status = ended()
    props = MAPPER.map_span(by_exception)[0]["properties"]
    assert props["$ai_is_error"] is True
    assert props["$ai_error"] == "TimeoutError: model too slow"
    assert "$ai_http_status" not in props
    props = MAPPER.map_span(by_status)[0]["properties"]
    assert props["$ai_error"] == "Error code: 429 - rate limited"
    assert props["$ai_http_status"] == 429


def test_privacy_mode_keeps_the_measurements_and_drops_the_words():
    attrs = {**TRACELOOP_CHAT, "input.value": "secret prompt", "app.route": "/plan"}
    props = only(PRIVATE.map_span(one_span("openai.chat", **attrs)), "$ai_generation")["properties"]
    assert "$ai_input" not in props and "$ai_output_choices" not in props
    assert props["$ai_input_tokens"] == 57 and props["$ai_stop_reason"] == "tool_calls"
    assert props["$ai_tools"][0]["function"]["name"] == "get_weather"  # definitions are not content
    assert props["app.route"] == "/plan"
    assert "Paris" not in json.dumps(props) and "secret prompt" not in json.dumps(props)
    tool = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.call.arguments": '{"city": "Paris"}',
        "gen_ai.tool.call.result": "rain",
    }
    props = PRIVATE.map_span(one_span("execute_tool", **tool))[0]["properties"]
    assert "$ai_input_state" not in props and "$ai_output_state" not in props


def test_a_tagged_genai_span_makes_both_events_with_their_own_uuids():
    span = one_span(
        "chat m",
        **{
            "gen_ai.operation.name": "chat",
            "posthog.event": "answer_shown",
            "posthog.distinct_id": "u1",
        },
    )
    events = MAPPER.map_span(span)
    assert sorted(e["event"] for e in events) == ["$ai_generation", "answer_shown"]
    assert len({e["uuid"] for e in events}) == 2
    assert all(e["distinct_id"] == "u1" for e in events)
    assert MAPPER.map_span(span) == events  # deterministic: a re-export dedupes


def test_switched_off_genai_spans_make_no_events():
    off = SpanMapper(MappingOptions(llm_analytics=False))
    assert off.map_span(one_span("chat m", **{"gen_ai.operation.name": "chat"})) == []


# -- size --------------------------------------------------------------------------------


def test_small_content_is_left_alone():
    messages = [{"role": "user", "content": "hi"}]
    assert bounded(messages) is messages


def test_long_strings_are_cut_with_a_marker_and_the_structure_kept():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "é" * 400_000},  # 800 KB of UTF-8
        {"role": "user", "content": "x" * 300_000},
    ]
    cut = bounded(messages)
    assert len(dumps(cut)) <= MAX_CONTENT_BYTES
    assert cut[0] == messages[0]  # short strings untouched
    assert [m["role"] for m in cut] == ["system", "user", "user"]
    assert cut[1]["content"].startswith("éé") and cut[1]["content"].endswith("characters]")
    assert "posthog-otel cut" in cut[2]["content"]


def test_content_with_no_long_string_still_fits():
    messages = [{"role": "user", "content": "word " * 20} for _ in range(10_000)]
    cut = bounded(messages)
    assert isinstance(cut, str) and len(cut.encode()) <= MAX_CONTENT_BYTES
    assert cut.endswith("bytes of JSON]")


def test_a_huge_prompt_is_shortened_never_dropped(server, make_pipeline):
    tracer, processor = make_pipeline()
    prompt = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "q" * 3_000_000}]}])
    answer = json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": "a" * 3_000_000}]}]
    )
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": prompt,
        "gen_ai.output.messages": answer,
    }
    with tracer.start_as_current_span("chat m", attributes=attrs):
        pass
    processor.force_flush()
    (event,) = server.wait_for_events(1)
    assert len(dumps(event)) < MAX_EVENT_BYTES
    assert event["properties"]["$ai_input"][0]["content"].endswith("characters]")
    assert processor.stats().dropped == {}


# -- through the processor: nesting, identity, flags, switches --------------------------


def test_an_agent_its_tool_and_a_traceloop_call_nest_into_one_trace(server, make_pipeline):
    tracer, processor = make_pipeline()
    agent = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "Trip?"}]}]
        ),
    }
    with identify("user-7"), tracer.start_as_current_span("invoke_agent Planner", attributes=agent):
        tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": '["Paris"]'}
        with tracer.start_as_current_span("execute_tool forecast", attributes=tool) as tool_span:
            with tracer.start_as_current_span("openai.chat", attributes=TRACELOOP_CHAT):
                pass
    processor.force_flush()
    events = {e["event"]: e for e in server.wait_for_events(3)}
    root = events["$ai_trace"]["properties"]
    assert root["$ai_span_name"] == "invoke_agent Planner"
    assert root["$ai_input_state"] == [{"role": "user", "content": "Trip?"}]
    assert "$ai_parent_id" not in root
    tool_event = events["$ai_span"]["properties"]
    assert tool_event["$ai_parent_id"] == root["$ai_trace_id"]  # its parent is the trace
    assert tool_event["$ai_input_state"] == ["Paris"]
    tool_hex = f"{tool_span.get_span_context().span_id:016x}"
    assert events["$ai_generation"]["properties"]["$ai_parent_id"] == tool_hex
    assert {e["distinct_id"] for e in events.values()} == {"user-7"}


def test_a_flag_evaluated_on_the_genai_span_itself_is_carried(server, make_pipeline):
    tracer, processor = make_pipeline()
    with tracer.start_as_current_span(
        "chat m", attributes={"gen_ai.operation.name": "chat"}
    ) as span:
        span.add_event(
            "feature_flag.evaluation",
            {"feature_flag.key": "model-choice", "feature_flag.result.variant": "large"},
        )
    processor.force_flush()
    (event,) = server.wait_for_events(1)
    assert event["properties"]["$feature/model-choice"] == "large"


def test_untagged_spans_around_genai_spans_stay_out(server, make_pipeline):
    tracer, processor = make_pipeline()
    with tracer.start_as_current_span("GET /", attributes={"http.route": "/"}):
        with tracer.start_as_current_span("chat m", attributes={"gen_ai.operation.name": "chat"}):
            with tracer.start_as_current_span("POST", attributes={"http.method": "POST"}):
                pass
    processor.force_flush()
    assert [e["event"] for e in server.wait_for_events(1)] == ["$ai_generation"]
    assert processor.stats().events_queued == 1


@pytest.mark.parametrize(("value", "events"), [("false", 0), ("0", 0), ("true", 1), ("", 1)])
def test_the_environment_switches_llm_analytics(server, monkeypatch, value, events):
    monkeypatch.setenv("POSTHOG_LLM_ANALYTICS", value)
    with PostHogClient(API_KEY, server.url) as client:
        provider = TracerProvider()
        provider.add_span_processor(PostHogSpanProcessor(client))
        with provider.get_tracer("t").start_as_current_span(
            "chat", attributes={"gen_ai.operation.name": "chat"}
        ):
            pass
        provider.shutdown()
    assert len(server.events()) == events


def test_a_bad_switch_names_the_variable(server, monkeypatch):
    monkeypatch.setenv("POSTHOG_LLM_ANALYTICS", "maybe")
    with (
        PostHogClient(API_KEY, server.url) as client,
        pytest.raises(ConfigurationError, match="POSTHOG_LLM_ANALYTICS"),
    ):
        PostHogSpanExporter(client)


def test_the_exporter_sends_genai_spans_unnested(server):
    with PostHogClient(API_KEY, server.url) as client:
        provider = TracerProvider()
        exporter = PostHogSpanExporter(client, attach_processor=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span(
            "invoke_agent", attributes={"gen_ai.operation.name": "invoke_agent"}
        ):
            with tracer.start_as_current_span(
                "chat m", attributes={"gen_ai.operation.name": "chat"}
            ):
                pass
        provider.shutdown()
    events = {e["event"]: e["properties"] for e in server.events()}
    assert set(events) == {"$ai_trace", "$ai_generation"}
    assert events["$ai_generation"]["$ai_parent_id"] == events["$ai_trace"]["$ai_trace_id"]
