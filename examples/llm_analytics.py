"""LLM analytics: OpenAI calls under OpenTelemetry's OpenAI instrumentation become
``$ai_generation`` events for the right user, with no tags and no PostHog SDK.

Runs with no API key and no network: the model is a fake OpenAI-compatible server
(fake_openai.py) and PostHog is the bundled devserver, both on 127.0.0.1.

    python examples/llm_analytics.py
"""

from __future__ import annotations

import os

# The instrumentation reads these when it instruments: record prompts and answers on
# the spans themselves (by default it sends them as separate log records).
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")

from fake_openai import FakeOpenAI
from openai import OpenAI
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from posthog_otel import PostHogClient, PostHogSpanProcessor, identify
from posthog_otel.devserver import DevServer


def suggest_gift(tracer, llm: OpenAI, user_id: str, hobby: str) -> str:
    """A request handler that asks a model; the user comes from identify()'s baggage."""
    with (
        identify(user_id),
        tracer.start_as_current_span("POST /gift-ideas", kind=SpanKind.SERVER),
    ):
        reply = llm.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You suggest one gift."},
                {"role": "user", "content": f"A gift for someone who likes {hobby}"},
            ],
            temperature=0.3,
        )
        return reply.choices[0].message.content or ""


def main() -> None:
    with DevServer() as posthog, FakeOpenAI() as model:
        provider = TracerProvider(resource=Resource.create({"service.name": "gifts"}))
        processor = PostHogSpanProcessor(PostHogClient("phc_example", posthog.url))
        provider.add_span_processor(processor)
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        llm = OpenAI(base_url=model.base_url, api_key="sk-no-key-needed")

        tracer = provider.get_tracer("gifts")
        for user_id, hobby in (("user-42", "climbing"), ("user-7", "chess")):
            print(f"{user_id} asked, the model said: {suggest_gift(tracer, llm, user_id, hobby)}")
        provider.shutdown()  # delivers everything queued

        print("\nWhat PostHog stored:")
        for event in reversed(posthog.events()):
            props = event["properties"]
            print(
                f"{event['event']:<15} {event['distinct_id']:<8} {props['$ai_model']:<17}"
                f" tokens={props['$ai_input_tokens']}->{props['$ai_output_tokens']}"
                f" latency={props['$ai_latency']:.3f}s"
            )
            print(f"{'':<16}input:  {props['$ai_input']}")
            print(f"{'':<16}output: {props['$ai_output_choices']}")


if __name__ == "__main__":
    main()
