"""LLM analytics: the background cost of turning one GenAI span into its event, next to
a tagged span's, and next to the model call it describes.

Spans carry the attributes the instrumentations record: OpenTelemetry's OpenAI
instrumentation in its default mode (no messages) and with
``gen_ai_latest_experimental`` (messages as JSON), Traceloop's indexed attributes,
and a call whose 1 MB prompt is cut to 256 KiB. Measured in the encoder thread's
terms: the mapping alone, then mapping + JSON (orjson).

    python benchmarks/genai.py [--spans 5000]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from _common import alternate, median_spread, table
from e2e import PROPERTIES
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from posthog_otel._json import dumps
from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern
from posthog_otel._mapping.spans import MappingOptions, SpanMapper

CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 300,
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "chatcmpl-AbCdEf123",
    "gen_ai.usage.input_tokens": 412,
    "gen_ai.usage.output_tokens": 96,
    "server.address": "api.openai.com",
    "posthog.distinct_id": "user-1",
}
QUESTION = "Plan a three-day trip to Lisbon for two people who like food and old trams. " * 4
ANSWER = "Day one: start in Alfama with a ride on tram 28, then lunch at a tasca. " * 12


def parts(role: str, text: str) -> dict[str, object]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


WITH_MESSAGES = {
    **CHAT,
    "gen_ai.input.messages": json.dumps(
        [parts("system", "You plan trips."), parts("user", QUESTION)]
    ),
    "gen_ai.output.messages": json.dumps([{**parts("assistant", ANSWER), "finish_reason": "stop"}]),
}
TRACELOOP = {
    "llm.request.type": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.usage.prompt_tokens": 412,
    "gen_ai.usage.completion_tokens": 96,
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "You plan trips.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": QUESTION,
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.content": ANSWER,
    "gen_ai.completion.0.finish_reason": "stop",
    "posthog.distinct_id": "user-1",
}
HUGE = {
    **CHAT,
    "gen_ai.input.messages": json.dumps([parts("user", "x" * 1_000_000)]),
}
SPANS = {
    "tagged span, 8 properties (the reference)": (
        "choose_plan",
        {"posthog.event": "plan_chosen", "posthog.distinct_id": "user-1", **PROPERTIES},
    ),
    "GenAI chat span, no messages (OpenAI instrumentation default)": ("chat gpt-4o-mini", CHAT),
    "GenAI chat span, 1.3 KB of messages (gen_ai_latest_experimental)": (
        "chat gpt-4o-mini",
        WITH_MESSAGES,
    ),
    "Traceloop chat span, same messages as indexed attributes": ("openai.chat", TRACELOOP),
    "GenAI chat span, 1 MB prompt cut to 256 KiB": ("chat gpt-4o-mini", HUGE),
}


class Keep(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def spans(name: str, attributes: dict[str, object], count: int) -> list[ReadableSpan]:
    keep = Keep()
    provider = TracerProvider()
    provider.add_span_processor(keep)
    tracer = provider.get_tracer("bench")
    for _ in range(count):
        with tracer.start_as_current_span(name, attributes=attributes):  # type: ignore[arg-type]
            pass
    return keep.spans


def timed(
    work: Callable[[list[ReadableSpan]], None], made: list[ReadableSpan]
) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        work(made)
        return (time.perf_counter() - start) / len(made) * 1e6

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=5_000)
    parser.add_argument("--repetitions", type=int, default=7)
    args = parser.parse_args()
    mapper = SpanMapper(MappingOptions(denylist=denylist_pattern(DEFAULT_DENYLIST)))

    def mapping(made: list[ReadableSpan]) -> None:
        for span in made:
            mapper.map_span(span)

    def mapping_and_json(made: list[ReadableSpan]) -> None:
        for span in made:
            for event in mapper.map_span(span):
                dumps(event)

    scenarios: dict[str, Callable[[], float]] = {}
    sizes = {}
    for label, (name, attributes) in SPANS.items():
        count = args.spans if "1 MB" not in label else max(args.spans // 50, 20)
        made = spans(name, attributes, count)
        (event,) = mapper.map_span(made[0])
        sizes[label] = len(dumps(event))
        scenarios[label] = timed(mapping, made)
        scenarios[label + " +json"] = timed(mapping_and_json, made)
    results = alternate(scenarios, args.repetitions)  # rounds interleaved: drift hits all alike
    reference = median_spread(results[next(iter(SPANS)) + " +json"])[0]
    rows = []
    for label in SPANS:
        mapped, _ = median_spread(results[label])
        encoded, spread = median_spread(results[label + " +json"])
        rows.append(
            [
                label,
                f"{mapped:.1f}",
                f"{encoded:.1f} ({spread:.0%})",
                f"{encoded / reference:.1f}x",
                f"{sizes[label]:,}",
            ]
        )
    print(f"Mapping cost per span, median of {args.repetitions} interleaved rounds\n")
    header = ["span", "µs: mapping", "µs: mapping + JSON (spread)", "x tagged span", "event bytes"]
    print(table(header, rows))
    largest = max(median_spread(results[label + " +json"])[0] for label in SPANS)
    print(
        "\nA model call takes hundreds of milliseconds; the largest cost above is "
        f"{largest / 1000:.2f} ms, on the encoder thread, not the caller's."
    )


if __name__ == "__main__":
    main()
