"""The span hooks' fast readers (private names) agree with the public API they fall back
to, on real SDK spans and contexts."""

from __future__ import annotations

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from posthog_otel import _otel
from posthog_otel._mapping.genai import GENAI_KEYS, is_genai

FAST, PUBLIC = _otel.FAST, _otel.PUBLIC


def _tracer(scope: object = "shop") -> trace.Tracer:
    return TracerProvider().get_tracer(scope)  # type: ignore[arg-type]


def test_an_ended_spans_fields_are_read_alike():
    span = _tracer().start_span("s", attributes={"posthog.event": "e", "n": 1})
    span.add_event("evt", {"k": "v"})
    span.end()
    fast_attrs, fast_events = FAST.fast_fields(span)
    public_attrs, public_events = PUBLIC.fast_fields(span)
    assert dict(fast_attrs) == dict(public_attrs) == {"posthog.event": "e", "n": 1}
    assert [e.name for e in fast_events] == [e.name for e in public_events] == ["evt"]


def test_a_span_without_events_reads_as_empty_on_both_paths():
    span = _tracer().start_span("s")
    span.end()
    assert not FAST.fast_fields(span)[1] and not PUBLIC.fast_fields(span)[1]


@pytest.mark.parametrize("kind", [SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CONSUMER])
def test_a_spans_kind_is_read_alike(kind):
    span = _tracer().start_span("s", kind=kind)
    assert FAST.fast_kind(span) is PUBLIC.fast_kind(span) is kind


@pytest.mark.parametrize(
    ("scope", "expected"), [("openinference.instrumentation.x", "openinference.instrumentation.x")]
)
def test_a_spans_scope_name_is_read_alike(scope, expected):
    span = _tracer(scope).start_span("s")
    assert FAST.fast_scope_name(span) == PUBLIC.fast_scope_name(span) == expected


def test_a_scope_name_that_is_no_string_reads_as_none():
    span = _tracer().start_span("s")
    span._instrumentation_scope._name = ["not", "hashable"]  # a tracer given anything
    assert FAST.fast_scope_name(span) is None
    assert FAST.fast_scope_name(object()) is None  # no scope at all


def test_a_contexts_span_and_baggage_are_read_alike():
    span = _tracer().start_span("s")
    ctx = baggage.set_baggage("posthog.distinct_id", "u1", trace.set_span_in_context(span))
    assert FAST.fast_parent(ctx) == PUBLIC.fast_parent(ctx)
    assert FAST.fast_parent(ctx)[0] is span
    assert dict(FAST.fast_parent(ctx)[1] or {}) == {"posthog.distinct_id": "u1"}
    empty = context.Context()
    assert FAST.fast_parent(empty)[0] is None and not FAST.fast_parent(empty)[1]
    assert PUBLIC.fast_parent(empty)[0] is None and not PUBLIC.fast_parent(empty)[1]


@pytest.mark.parametrize("key", sorted(GENAI_KEYS))
def test_every_genai_key_alone_marks_a_genai_span(key):
    assert is_genai({"http.method": "GET", key: "x"})
    assert not is_genai({"http.method": "GET", "posthog.event": "e"})
