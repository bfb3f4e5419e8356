"""A LangChain chain (prompt, chat model, a step that runs the model's tool call) under
OpenInference's or Traceloop's LangChain instrumentation, sent to PostHog.

Run as a subprocess by test_genai_langchain.py, with ``openinference`` or ``traceloop``:
each instrumentation patches LangChain for the whole process. The chat model is
LangChain's own fake (no network); it asks for the tool once.
"""

from __future__ import annotations

import json
import sys

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from posthog_otel import PostHogSpanProcessor, identify


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny, 21C" if city == "Paris" else "unknown"


def run_tools(message: AIMessage) -> list[str]:
    return [get_weather.invoke(call["args"]) for call in message.tool_calls]


def main() -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "planner"}))
    processor = PostHogSpanProcessor()
    provider.add_span_processor(processor)
    if sys.argv[1] == "openinference":
        from openinference.instrumentation.langchain import LangChainInstrumentor

        LangChainInstrumentor().instrument(tracer_provider=provider)
    else:
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        LangchainInstrumentor().instrument(tracer_provider=provider)
    asks = AIMessage(
        content="",
        tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}],
    )
    model = GenericFakeChatModel(messages=iter([asks]))
    prompt = ChatPromptTemplate.from_messages([("system", "You plan trips."), ("user", "{q}")])
    chain = prompt | model | RunnableLambda(run_tools)
    tracer = provider.get_tracer("planner")
    with identify("user-42"), tracer.start_as_current_span("POST /plan", kind=SpanKind.SERVER):
        answer = chain.invoke({"q": "Weather in Paris?"})
    provider.shutdown()
    print(json.dumps({"answer": answer}))


if __name__ == "__main__":
    main()
