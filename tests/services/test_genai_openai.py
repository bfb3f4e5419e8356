"""OpenAI calls under OpenTelemetry's own OpenAI instrumentation become PostHog's LLM
analytics events, checked field by field in what the devserver stored.

Each run is a subprocess (genai_calls.py): the instrumentation reads its
semantic-convention switches when it instruments. The model is our fake OpenAI
server (examples/fake_openai.py), whose token counts are word counts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import genai_runs

LATEST = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only",
}
VOLATILE = ("$ai_latency", "$ai_span_id", "$ai_trace_id")


def run_calls(server, env: dict[str, str], *args: str) -> tuple[dict[str, Any], list[dict]]:
    return genai_runs.run_calls(server, "genai_calls.py", env, *args)


def ai_properties(event: dict) -> dict[str, Any]:
    return genai_runs.ai_properties(event, VOLATILE)


def expected_events(seen: dict[str, Any], trace: str, *, content: bool) -> list[tuple[str, dict]]:
    """What each call should have become, in call order; ``content``: messages recorded."""
    chat = {"$ai_provider": "openai", "$ai_response_id": "chatcmpl-1", "$ai_parent_id": trace}
    calls: list[tuple[str, dict]] = [
        (
            "$ai_generation",
            {
                **chat,
                "$ai_span_name": "chat gpt-4o-mini",
                "$ai_model": "gpt-4o-mini-0613",  # the response's model wins over the request's
                "$ai_input_tokens": 6,
                "$ai_output_tokens": 5,
                "$ai_temperature": 0.2,
                "$ai_max_tokens": 50,
                "$ai_model_parameters": {"temperature": 0.2, "max_tokens": 50},
                "$ai_stop_reason": "stop",
            },
        ),
        (
            "$ai_generation",
            {
                **chat,
                "$ai_span_name": "chat gpt-4o-mini",
                "$ai_model": "gpt-4o-mini-0613",
                "$ai_input_tokens": 3,
                "$ai_output_tokens": 4,
            },
        ),
        (
            "$ai_embedding",
            {
                "$ai_span_name": "embeddings text-embedding-3-small",
                "$ai_parent_id": trace,
                "$ai_provider": "openai",
                "$ai_model": "text-embedding-3-small",
                "$ai_input_tokens": 3,
            },
        ),
        (
            "$ai_generation",
            {
                "$ai_span_name": "chat missing-model",
                "$ai_parent_id": trace,
                "$ai_provider": "openai",
                "$ai_model": "missing-model",
                "$ai_is_error": True,
                "$ai_error": "Error code: 404 - The model `missing-model` does not exist",
                "$ai_http_status": 404,
            },
        ),
        (
            "$ai_trace",
            {
                "$ai_span_name": "invoke_agent WeatherBot",
                "$ai_provider": "openai",
                "$ai_output_state": [{"role": "assistant", "content": seen["final"]}],
            },
        ),
        (
            "$ai_generation",
            {
                **chat,
                "$ai_span_name": "chat gpt-4o-mini",
                "$ai_model": "gpt-4o-mini-0613",
                "$ai_input_tokens": 3,
                "$ai_output_tokens": 1,
                "$ai_stop_reason": "tool_calls",
            },
        ),
        (
            "$ai_span",
            {
                "$ai_span_name": "execute_tool get_weather",
                "$ai_parent_id": trace,  # its GenAI parent is the $ai_trace itself
                "$ai_input_state": {"city": "Paris"},
                "$ai_output_state": "sunny, 21C",
            },
        ),
        (
            "$ai_embedding",
            {
                "$ai_span_name": "embeddings text-embedding-3-small",
                "$ai_parent_id": seen["tool_span"],  # through a span that is not GenAI
                "$ai_provider": "openai",
                "$ai_model": "text-embedding-3-small",
                "$ai_input_tokens": 2,
            },
        ),
        (
            "$ai_generation",
            {
                **chat,
                "$ai_span_name": "chat gpt-4o-mini",
                "$ai_model": "gpt-4o-mini-0613",
                "$ai_input_tokens": 5,
                "$ai_output_tokens": 3,
                "$ai_stop_reason": "stop",
            },
        ),
    ]
    if content:
        tool_call = {
            "type": "function",
            "id": "call_1",
            "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
        }
        question = {"role": "user", "content": "Weather in Paris?"}
        for (_, props), given, answer in zip(
            [calls[i] for i in (0, 1, 3, 5, 8)],
            [
                [
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "Say hello to Ada"},
                ],
                [{"role": "user", "content": "stream three words"}],
                [{"role": "user", "content": "hi"}],
                [question],
                [
                    question,
                    {"role": "assistant", "content": [tool_call]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
                ],
            ],
            [seen["reply"], seen["streamed"], None, [tool_call], seen["final"]],
            strict=True,
        ):
            props["$ai_input"] = given
            if answer is not None:
                props["$ai_output_choices"] = [{"role": "assistant", "content": answer}]
        calls[1][1]["$ai_stop_reason"] = "stop"  # a stream's reason is only in its messages
    return calls


@pytest.mark.parametrize(
    ("mode", "env"), [("default", {}), ("gen_ai_latest_experimental", LATEST)], ids=str
)
def test_instrumented_openai_calls_become_llm_analytics_events(server, mode, env):
    seen, events = run_calls(server, env)
    assert seen["error_status"] == 404 and seen["reply"] == "echo: Say hello to Ada"
    trace = events[0]["properties"]["$ai_trace_id"]
    expected = expected_events(seen, trace, content=mode != "default")
    assert [e["event"] for e in events] == [name for name, _ in expected]
    for event, (_, props) in zip(events, expected, strict=True):
        assert ai_properties(event) == props, event["properties"]["$ai_span_name"]
    for event in events:
        props = event["properties"]
        assert event["distinct_id"] == "user-42"  # from identify()'s baggage
        assert props["$feature/answer-style"] == seen["variant"]  # evaluated on the request span
        assert props["$ai_trace_id"] == props["$trace_id"] == trace
        assert props["$ai_span_id"] == props["$span_id"]
        assert 0 < props["$ai_latency"] < 60
        assert props["service.name"] == "assistant"
        assert not any(k.startswith(("gen_ai.", "server.", "error.")) for k in props)
    assert len({e["uuid"] for e in events}) == len(events)


def test_privacy_mode_sends_no_prompts_outputs_or_tool_arguments(server):
    seen, events = run_calls(server, LATEST, "--privacy")
    trace = events[0]["properties"]["$ai_trace_id"]
    content = ("$ai_input", "$ai_output_choices", "$ai_input_state", "$ai_output_state")
    for event, (name, props) in zip(
        events, expected_events(seen, trace, content=True), strict=True
    ):
        assert event["event"] == name
        expected = {k: v for k, v in props.items() if k not in content}
        assert ai_properties(event) == expected
    stored = json.dumps(events)
    for secret in ("Say hello to Ada", "Paris", "sunny", "echo:"):
        assert secret not in stored
