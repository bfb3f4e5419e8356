"""OpenInference spans (Arize's conventions, as Phoenix and its instrumentations write them)
to LLM analytics events: real SDK spans, attribute names taken from the
``openinference-semantic-conventions`` package itself, mapped with no server.

The real ``openinference-instrumentation-openai`` is driven in
tests/services/test_genai_openinference.py.
"""

from __future__ import annotations

import json

import pytest
from openinference.semconv.trace import (
    EmbeddingAttributes,
    ImageAttributes,
    MessageAttributes,
    MessageContentAttributes,
    OpenInferenceSpanKindValues,
    SpanAttributes,
    ToolAttributes,
    ToolCallAttributes,
)
from opentelemetry.trace import Status, StatusCode

from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern
from posthog_otel._mapping.spans import MappingOptions, SpanMapper
from tests.support.spans import one_span, recording

KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
ROLE, CONTENT = MessageAttributes.MESSAGE_ROLE, MessageAttributes.MESSAGE_CONTENT
CALLS = MessageAttributes.MESSAGE_TOOL_CALLS


def mapper(**options) -> SpanMapper:
    return SpanMapper(MappingOptions(denylist=denylist_pattern(DEFAULT_DENYLIST), **options))


def message(side: str, n: int, field: str) -> str:
    return f"{side}.{n}.{field}"


def call(side: str, n: int, m: int, field: str) -> str:
    return f"{side}.{n}.{CALLS}.{m}.{field}"


IN, OUT = SpanAttributes.LLM_INPUT_MESSAGES, SpanAttributes.LLM_OUTPUT_MESSAGES
# As openinference-instrumentation-openai 0.1.66 records a chat call that asked for a tool
LLM_CALL = {
    KIND: OpenInferenceSpanKindValues.LLM.value,
    SpanAttributes.LLM_SYSTEM: "openai",
    SpanAttributes.LLM_PROVIDER: "azure",
    SpanAttributes.LLM_MODEL_NAME: "gpt-4o-mini-0613",
    SpanAttributes.LLM_INVOCATION_PARAMETERS: json.dumps(
        {"model": "gpt-4o-mini", "temperature": 0.2, "max_completion_tokens": 50, "seed": 7}
    ),
    SpanAttributes.LLM_TOKEN_COUNT_PROMPT: 12,
    SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: 3,
    SpanAttributes.LLM_TOKEN_COUNT_TOTAL: 15,
    SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ: 8,
    SpanAttributes.LLM_TOKEN_COUNT_COMPLETION_DETAILS_REASONING: 2,
    SpanAttributes.LLM_FINISH_REASON: "tool_calls",
    f"{SpanAttributes.LLM_TOOLS}.0.{ToolAttributes.TOOL_JSON_SCHEMA}": json.dumps(
        {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    ),
    message(IN, 0, ROLE): "system",
    message(IN, 0, CONTENT): "You plan trips.",
    message(IN, 1, ROLE): "user",
    f"{IN}.1.{MessageAttributes.MESSAGE_CONTENTS}.0.{MessageContentAttributes.MESSAGE_CONTENT_TYPE}": "text",
    f"{IN}.1.{MessageAttributes.MESSAGE_CONTENTS}.0.{MessageContentAttributes.MESSAGE_CONTENT_TEXT}": "Weather here?",
    f"{IN}.1.{MessageAttributes.MESSAGE_CONTENTS}.1.{MessageContentAttributes.MESSAGE_CONTENT_TYPE}": "image",
    f"{IN}.1.{MessageAttributes.MESSAGE_CONTENTS}.1.{MessageContentAttributes.MESSAGE_CONTENT_IMAGE}.{ImageAttributes.IMAGE_URL}": "https://x/sky.png",
    message(IN, 2, ROLE): "assistant",
    call(IN, 2, 0, ToolCallAttributes.TOOL_CALL_ID): "call_0",
    call(IN, 2, 0, ToolCallAttributes.TOOL_CALL_FUNCTION_NAME): "locate",
    call(IN, 2, 0, ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON): "{}",
    message(IN, 3, ROLE): "tool",
    message(IN, 3, MessageAttributes.MESSAGE_TOOL_CALL_ID): "call_0",
    message(IN, 3, CONTENT): "Paris",
    message(OUT, 0, ROLE): "assistant",
    call(OUT, 0, 0, ToolCallAttributes.TOOL_CALL_ID): "call_1",
    call(OUT, 0, 0, ToolCallAttributes.TOOL_CALL_FUNCTION_NAME): "get_weather",
    call(OUT, 0, 0, ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON): '{"city": "Paris"}',
    SpanAttributes.INPUT_VALUE: '{"model": "gpt-4o-mini", "messages": "..."}',
    SpanAttributes.INPUT_MIME_TYPE: "application/json",
    SpanAttributes.OUTPUT_VALUE: '{"id": "chatcmpl-1"}',
    SpanAttributes.METADATA: '{"tier": "pro"}',
    "app.route": "/plan",
}


def only(events, name):
    found = [e for e in events if e["event"] == name]
    assert len(found) == 1, events
    return found[0]


def test_an_llm_span_becomes_a_generation_with_everything_it_recorded():
    span = one_span("ChatCompletion", **LLM_CALL)
    props = only(mapper().map_span(span), "$ai_generation")["properties"]
    assert {k: v for k, v in props.items() if k.startswith("$ai_") and k != "$ai_latency"} == {
        "$ai_trace_id": props["$trace_id"],
        "$ai_span_id": props["$span_id"],
        "$ai_parent_id": props["$trace_id"],
        "$ai_span_name": "ChatCompletion",
        "$ai_model": "gpt-4o-mini-0613",
        "$ai_provider": "azure",  # llm.provider (who served it) before llm.system
        "$ai_input_tokens": 12,
        "$ai_output_tokens": 3,
        "$ai_cache_read_input_tokens": 8,
        "$ai_reasoning_tokens": 2,
        "$ai_temperature": 0.2,
        "$ai_max_tokens": 50,
        "$ai_model_parameters": {"temperature": 0.2, "max_tokens": 50, "seed": 7},
        "$ai_stop_reason": "tool_calls",
        "$ai_tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        "$ai_input": [
            {"role": "system", "content": "You plan trips."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image", "image": "https://x/sky.png"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "function",
                        "id": "call_0",
                        "function": {"name": "locate", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "content": "Paris", "tool_call_id": "call_0"},
        ],
        "$ai_output_choices": [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "function",
                        "id": "call_1",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            }
        ],
    }
    assert props["$ai_latency"] == (span.end_time - span.start_time) / 1e9
    assert props["app.route"] == "/plan" and props["metadata"] == '{"tier": "pro"}'
    assert not any(k.startswith(("llm.", "input.", "output.", "openinference.")) for k in props)


def test_an_embedding_span_becomes_an_embedding_without_its_vectors():
    texts = SpanAttributes.EMBEDDING_EMBEDDINGS
    span = one_span(
        "CreateEmbeddings",
        **{
            KIND: "EMBEDDING",
            SpanAttributes.LLM_SYSTEM: "openai",
            SpanAttributes.EMBEDDING_MODEL_NAME: "text-embedding-3-small",
            SpanAttributes.EMBEDDING_INVOCATION_PARAMETERS: '{"model": "x", "encoding_format": "base64"}',
            SpanAttributes.LLM_TOKEN_COUNT_PROMPT: 3,
            f"{texts}.0.{EmbeddingAttributes.EMBEDDING_TEXT}": "one two",
            f"{texts}.1.{EmbeddingAttributes.EMBEDDING_TEXT}": "three",
            f"{texts}.0.{EmbeddingAttributes.EMBEDDING_VECTOR}": (0.125, 0.25),
            f"{texts}.1.{EmbeddingAttributes.EMBEDDING_VECTOR}": (0.5, 0.75),
        },
    )
    props = only(mapper().map_span(span), "$ai_embedding")["properties"]
    assert props["$ai_model"] == "text-embedding-3-small"
    assert props["$ai_provider"] == "openai" and props["$ai_input_tokens"] == 3
    assert props["$ai_input"] == [
        {"role": "user", "content": "one two"},
        {"role": "user", "content": "three"},
    ]
    assert "$ai_output_choices" not in props
    assert "0.125" not in json.dumps(props)  # the vectors never go


@pytest.mark.parametrize(
    "kind",
    [
        "CHAIN",
        "TOOL",
        "AGENT",
        "RETRIEVER",
        "RERANKER",
        "GUARDRAIL",
        "EVALUATOR",
        "PROMPT",
        "DECISION",
    ],
)
def test_every_step_kind_is_a_trace_at_the_top_and_a_span_inside(kind):
    assert kind in {k.value for k in OpenInferenceSpanKindValues}  # the package's own names
    step = {
        KIND: kind,
        SpanAttributes.INPUT_VALUE: '{"city": "Paris"}',
        SpanAttributes.INPUT_MIME_TYPE: "application/json",
        SpanAttributes.OUTPUT_VALUE: "sunny",
        SpanAttributes.TOOL_NAME: "get_weather",
    }
    top = only(mapper().map_span(one_span(kind.lower(), **step)), "$ai_trace")["properties"]
    assert "$ai_parent_id" not in top
    assert top["$ai_input_state"] == {"city": "Paris"}
    assert top["$ai_output_state"] == "sunny"
    assert "tool.name" not in top
    inner = one_span(kind.lower(), **step, **{"posthog.ai.parent_id": "00000000000000aa"})
    props = only(mapper().map_span(inner), "$ai_span")["properties"]
    assert props["$ai_parent_id"] == "00000000000000aa"


def test_a_stream_an_error_and_messages_only_in_input_value():
    with recording() as (tracer, ended):
        attrs = {
            KIND: "LLM",
            SpanAttributes.LLM_INVOCATION_PARAMETERS: '{"model": "m", "stream": true}',
            SpanAttributes.INPUT_VALUE: "hi there",
            SpanAttributes.INPUT_MIME_TYPE: "text/plain",
        }
        with tracer.start_as_current_span("ChatCompletion", attributes=attrs) as span:
            span.add_event("First Token Stream Event")
            span.record_exception(RuntimeError("boom"))
            span.set_status(Status(StatusCode.ERROR, "Error code: 404 - no such model"))
        (span,) = ended()
    props = only(mapper().map_span(span), "$ai_generation")["properties"]
    assert props["$ai_stream"] is True
    assert props["$ai_model_parameters"] == {"stream": True}
    first = next(e for e in span.events if e.name == "First Token Stream Event")
    assert props["$ai_time_to_first_token"] == (first.timestamp - span.start_time) / 1e9
    assert props["$ai_is_error"] is True and props["$ai_http_status"] == 404
    assert props["$ai_error"] == "Error code: 404 - no such model"
    assert props["$ai_input"] == [{"role": "user", "content": "hi there"}]


def test_openinference_user_and_session_name_the_event():
    attrs = {
        **LLM_CALL,
        SpanAttributes.USER_ID: "oi-user",
        SpanAttributes.SESSION_ID: "conversation-9",
        "posthog.distinct_id": "ours",  # what identify() copied onto the span
    }
    event = only(mapper().map_span(one_span("ChatCompletion", **attrs)), "$ai_generation")
    assert event["distinct_id"] == "oi-user"
    assert event["properties"]["$ai_session_id"] == "conversation-9"
    assert "user.id" not in event["properties"] and "session.id" not in event["properties"]
    ours = {**LLM_CALL, "posthog.distinct_id": "ours"}
    event = only(mapper().map_span(one_span("ChatCompletion", **ours)), "$ai_generation")
    assert event["distinct_id"] == "ours"


def test_privacy_mode_sends_no_openinference_content_in_any_event():
    secrets = {
        **LLM_CALL,
        SpanAttributes.INPUT_VALUE: "secret prompt",
        SpanAttributes.OUTPUT_VALUE: "secret answer",
        f"{SpanAttributes.RETRIEVAL_DOCUMENTS}.0.document.content": "secret document",
        f"{SpanAttributes.EMBEDDING_EMBEDDINGS}.0.{EmbeddingAttributes.EMBEDDING_TEXT}": "secret text",
        SpanAttributes.LLM_PROMPT_TEMPLATE_VARIABLES: '{"secret": "variable"}',
        "posthog.event": "planned",  # the span's own tagged event too
    }
    events = mapper(privacy_mode=True).map_span(one_span("ChatCompletion", **secrets))
    assert sorted(e["event"] for e in events) == ["$ai_generation", "planned"]
    generation = only(events, "$ai_generation")["properties"]
    assert "$ai_input" not in generation and "$ai_output_choices" not in generation
    assert generation["$ai_input_tokens"] == 12 and generation["$ai_stop_reason"] == "tool_calls"
    stored = json.dumps(events)
    for secret in ("secret", "Paris", "You plan trips", "Weather here"):
        assert secret not in stored
    step = {KIND: "TOOL", SpanAttributes.INPUT_VALUE: "Paris?", SpanAttributes.OUTPUT_VALUE: "rain"}
    props = mapper(privacy_mode=True).map_span(one_span("tool", **step))[0]["properties"]
    assert "$ai_input_state" not in props and "$ai_output_state" not in props


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({KIND: "UNKNOWN", SpanAttributes.INPUT_VALUE: "x"}, "genai_unknown_kind"),
        ({KIND: "SOMETHING_NEW"}, "genai_unknown_kind"),
        ({KIND: 3}, "genai_unknown_kind"),
        ({SpanAttributes.LLM_MODEL_NAME: "gpt-4o"}, "genai_no_operation"),
        ({"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}, "genai_no_operation"),
        ({SpanAttributes.EMBEDDING_MODEL_NAME: "e5"}, "genai_no_operation"),
    ],
)
def test_a_span_that_looks_like_genai_but_cannot_be_mapped_is_counted(attrs, reason):
    counted = mapper()
    assert counted.map_span(one_span("llm?", **attrs)) == []
    assert counted.unmapped.take() == {reason: 1}
    assert mapper(llm_analytics=False).map_span(one_span("llm?", **attrs)) == []


def test_spans_of_other_conventions_are_not_counted_as_unmapped():
    counted = mapper()
    assert counted.map_span(one_span("GET /", **{"http.route": "/"})) == []
    assert counted.map_span(one_span("chat", **{"gen_ai.operation.name": "chat"}))
    assert counted.map_span(one_span("llm", **{"llm.request.type": "chat"}))
    assert counted.unmapped.take() == {}
