"""Real OpenAI calls under OpenTelemetry's own OpenAI instrumentation, sent to PostHog.

Run as a subprocess by test_genai_openai.py (the instrumentation reads its
environment variables when it instruments, so each semantic-convention mode needs
its own process). Sends to POSTHOG_HOST; the model is our fake OpenAI server.
Prints one JSON line: what the calls returned, and the ids the test checks against.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import openai
from fake_openai import MISSING_MODEL, FakeOpenAI
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from posthog_otel import PostHogFlagProvider, PostHogSpanProcessor, identify

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def main() -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "assistant"}))
    processor = PostHogSpanProcessor(privacy_mode="--privacy" in sys.argv)
    provider.add_span_processor(processor)
    flags = PostHogFlagProvider(processor=processor)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("assistant")
    seen: dict[str, object] = {}
    with FakeOpenAI() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        with (
            identify("user-42"),
            tracer.start_as_current_span("POST /ask", kind=SpanKind.SERVER) as request,
        ):
            seen["request_span"] = f"{request.get_span_context().span_id:016x}"
            seen["variant"] = flags.get_flag("answer-style").enabled
            reply = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "Say hello to Ada"},
                ],
                temperature=0.2,
                max_tokens=50,
            )
            seen["reply"] = reply.choices[0].message.content
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "stream three words"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            seen["streamed"] = "".join(
                c.choices[0].delta.content or "" for c in stream if c.choices
            )
            client.embeddings.create(model="text-embedding-3-small", input=["one two", "three"])
            try:
                client.chat.completions.create(
                    model=MISSING_MODEL, messages=[{"role": "user", "content": "hi"}]
                )
            except openai.NotFoundError as exc:
                seen["error_status"] = exc.status_code
            agent(tracer, client, seen)
    provider.shutdown()
    flags.shutdown()
    print(json.dumps(seen))


def agent(tracer, client: openai.OpenAI, seen: dict[str, object]) -> None:
    """A tool-calling loop, spanned as agent frameworks do (invoke_agent, execute_tool)."""
    agent_attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "WeatherBot",
        "gen_ai.provider.name": "openai",
    }
    with tracer.start_as_current_span(
        "invoke_agent WeatherBot", attributes=agent_attributes
    ) as span:
        seen["agent_span"] = f"{span.get_span_context().span_id:016x}"
        messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
        first = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL]
        )
        call = first.choices[0].message.tool_calls[0]
        tool_attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.function.name,
            "gen_ai.tool.call.id": call.id,
            "gen_ai.tool.call.arguments": call.function.arguments,
        }
        with tracer.start_as_current_span(
            f"execute_tool {call.function.name}", attributes=tool_attributes
        ) as tool:
            seen["tool_span"] = f"{tool.get_span_context().span_id:016x}"
            with tracer.start_as_current_span("search forecasts"):  # not a GenAI span
                client.embeddings.create(model="text-embedding-3-small", input="Paris forecast")
            result = "sunny, 21C"
            tool.set_attribute("gen_ai.tool.call.result", result)
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        final = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL]
        )
        seen["final"] = final.choices[0].message.content
        span.set_attribute(
            "gen_ai.output.messages",
            json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": final.choices[0].message.content}],
                    }
                ]
            ),
        )


if __name__ == "__main__":
    main()
