"""OpenAI calls under Arize's OpenInference instrumentation (openinference-instrumentation-openai)
become PostHog's LLM analytics events, checked field by field in what the devserver stored.

The calls run in a subprocess (openinference_calls.py), as test_genai_openai.py runs
OpenTelemetry's own instrumentation; the model is our fake OpenAI server (token counts
are word counts).
"""

from __future__ import annotations

import json
from typing import Any

from tests.support import genai_runs

VOLATILE = ("$ai_latency", "$ai_span_id", "$ai_trace_id", "$ai_time_to_first_token")


def run_calls(server, *args: str) -> tuple[dict[str, Any], list[dict]]:
    return genai_runs.run_calls(server, "openinference_calls.py", {}, *args)


def ai_properties(event: dict) -> dict[str, Any]:
    return genai_runs.ai_properties(event, VOLATILE)


TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {
    "type": "function",
    "id": "call_1",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
CONTENT = ("$ai_input", "$ai_output_choices")


def expected_events(seen: dict[str, Any], trace: str) -> list[tuple[str, str, dict]]:
    """(event, distinct id, $ai_* properties) of each call, in call order."""
    chat = {
        "$ai_span_name": "ChatCompletion",
        "$ai_parent_id": trace,
        "$ai_provider": "openai",
        "$ai_model": "gpt-4o-mini-0613",
    }
    question = {"role": "user", "content": "Weather in Paris?"}

    def answer(content: Any) -> list[dict]:
        return [{"role": "assistant", "content": content}]

    return [
        (
            "$ai_generation",
            "user-42",
            {
                **chat,
                "$ai_input_tokens": 6,
                "$ai_output_tokens": 5,
                "$ai_stop_reason": "stop",
                "$ai_temperature": 0.2,
                "$ai_max_tokens": 50,
                "$ai_model_parameters": {"temperature": 0.2, "max_tokens": 50},
                "$ai_input": [
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "Say hello to Ada"},
                ],
                "$ai_output_choices": answer(seen["reply"]),
            },
        ),
        (
            "$ai_generation",
            "user-42",
            {
                **chat,
                "$ai_input_tokens": 3,
                "$ai_output_tokens": 4,
                "$ai_stop_reason": "stop",
                "$ai_stream": True,
                "$ai_model_parameters": {"stream": True},
                "$ai_input": [{"role": "user", "content": "stream three words"}],
                "$ai_output_choices": answer(seen["streamed"]),
            },
        ),
        (
            "$ai_embedding",
            "user-42",
            {
                "$ai_span_name": "CreateEmbeddings",
                "$ai_parent_id": trace,
                "$ai_provider": "openai",
                "$ai_model": "text-embedding-3-small",
                "$ai_input_tokens": 3,
                "$ai_input": [
                    {"role": "user", "content": "one two"},
                    {"role": "user", "content": "three"},
                ],
            },
        ),
        (
            "$ai_generation",
            "user-42",
            {
                **chat,
                "$ai_model": "missing-model",  # the request's: no answer named one
                "$ai_is_error": True,
                "$ai_error": "NotFoundError: Error code: 404 - The model `missing-model` does not exist",
                "$ai_http_status": 404,
                "$ai_input": [{"role": "user", "content": "hi"}],
            },
        ),
        (
            "$ai_generation",
            "user-42",
            {
                **chat,
                "$ai_input_tokens": 3,
                "$ai_output_tokens": 1,
                "$ai_stop_reason": "tool_calls",
                "$ai_tools": [TOOL],
                "$ai_input": [question],
                "$ai_output_choices": answer([CALL]),
            },
        ),
        (
            "$ai_generation",
            "user-42",
            {
                **chat,
                "$ai_input_tokens": 5,
                "$ai_output_tokens": 3,
                "$ai_stop_reason": "stop",
                "$ai_tools": [TOOL],
                "$ai_input": [
                    question,
                    {"role": "assistant", "content": [CALL]},
                    {"role": "tool", "content": "sunny, 21C", "tool_call_id": "call_1"},
                ],
                "$ai_output_choices": answer(seen["final"]),
            },
        ),
        (
            "$ai_generation",
            "oi-user",  # OpenInference's using_attributes(user_id=...) before identify()'s
            {
                **chat,
                "$ai_session_id": "conversation-9",
                "$ai_input_tokens": 3,
                "$ai_output_tokens": 4,
                "$ai_stop_reason": "stop",
                "$ai_input": [{"role": "user", "content": "who am I"}],
                "$ai_output_choices": answer("echo: who am I"),
            },
        ),
    ]


def test_openinference_instrumented_calls_become_llm_analytics_events(server):
    seen, events = run_calls(server)
    assert seen["error_status"] == 404 and seen["reply"] == "echo: Say hello to Ada"
    trace = events[0]["properties"]["$ai_trace_id"]
    expected = expected_events(seen, trace)
    assert [e["event"] for e in events] == [name for name, _, _ in expected]
    for event, (_, user, props) in zip(events, expected, strict=True):
        assert ai_properties(event) == props, event["properties"]["$ai_span_name"]
        assert event["distinct_id"] == user
    for event in events:
        props = event["properties"]
        assert props["$feature/answer-style"] == seen["variant"]  # evaluated on the request span
        assert props["$ai_trace_id"] == props["$trace_id"] == trace
        assert props["$ai_span_id"] == props["$span_id"]
        assert 0 < props["$ai_latency"] < 60
        assert props["service.name"] == "assistant"
        assert not any(k.startswith(("llm.", "input.", "output.", "embedding.")) for k in props)
    assert 0 < events[1]["properties"]["$ai_time_to_first_token"] < 60  # the stream's


def test_privacy_mode_sends_no_prompts_or_outputs(server):
    seen, events = run_calls(server, "--privacy")
    trace = events[0]["properties"]["$ai_trace_id"]
    for event, (name, user, props) in zip(events, expected_events(seen, trace), strict=True):
        assert (event["event"], event["distinct_id"]) == (name, user)
        assert ai_properties(event) == {k: v for k, v in props.items() if k not in CONTENT}
    stored = json.dumps(events)
    for secret in ("Say hello to Ada", "Paris", "sunny", "echo:", "one two", "who am I"):
        assert secret not in stored
