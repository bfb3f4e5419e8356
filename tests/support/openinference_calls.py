"""OpenAI calls under Arize's OpenInference instrumentation, sent to PostHog.

Run as a subprocess by test_genai_openinference.py (as genai_calls.py is for OpenTelemetry's
own instrumentation): a plain call, a stream, an embedding, an error and a tool-calling
loop, then one call naming its user and session in OpenInference's way. Sends to
POSTHOG_HOST; the model is our fake OpenAI server. Prints one JSON line: what the calls
returned, and the ids the test checks against.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import openai
from fake_openai import MISSING_MODEL, FakeOpenAI
from openinference.instrumentation import using_attributes
from openinference.instrumentation.openai import OpenAIInstrumentor
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
            tracer.start_as_current_span("POST /ask", kind=SpanKind.SERVER),
        ):
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
            messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
            first = client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL]
            )
            call = first.choices[0].message.tool_calls[0]
            messages.append(first.choices[0].message.model_dump(exclude_none=True))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
            final = client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL]
            )
            seen["final"] = final.choices[0].message.content
            with using_attributes(user_id="oi-user", session_id="conversation-9"):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "who am I"}]
                )
    provider.shutdown()
    flags.shutdown()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
