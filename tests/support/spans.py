"""Real spans for tests: run code under a TracerProvider and keep what ended."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer


@contextmanager
def recording(
    service: str = "shop", **resource: str
) -> Iterator[tuple[Tracer, Callable[[], list[ReadableSpan]]]]:
    """A tracer, and a function returning the spans that have ended so far."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider.get_tracer("tests"), lambda: list(exporter.get_finished_spans())
    finally:
        provider.shutdown()


def one_span(name: str = "op", **attributes: object) -> ReadableSpan:
    with recording() as (tracer, ended):
        with tracer.start_as_current_span(name, attributes=attributes):  # type: ignore[arg-type]
            pass
        return ended()[0]
