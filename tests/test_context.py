"""capture() and identify(): argument checks and how events land on spans."""

from __future__ import annotations

import json

import pytest
from opentelemetry import baggage

from posthog_otel import capture, identify
from spans import recording


def test_capture_records_a_tagged_span_event():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("r"):
            capture(
                "clicked", {"button": "pay", "n": 2, "ids": [1, 2], "meta": {"a": 1}, "none": None}
            )
    (event,) = ended()[0].events
    attrs = dict(event.attributes)
    assert event.name == "clicked"
    assert attrs["posthog.event"] == "clicked"
    assert attrs["button"] == "pay" and attrs["n"] == 2 and attrs["ids"] == (1, 2)
    assert json.loads(attrs["posthog.properties"]) == {"meta": {"a": 1}, "none": None}


def test_capture_puts_awkward_values_in_the_json_attribute():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("r"):
            capture("e", {"mixed": [1, "a"], "empty": [], "$set": {"plan": "pro"}})
    attrs = dict(ended()[0].events[0].attributes)
    assert json.loads(attrs["posthog.properties"]) == {
        "mixed": [1, "a"],
        "empty": [],
        "$set": {"plan": "pro"},
    }


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("",), {}, ValueError),
        ((None,), {}, TypeError),
        (("e", ["not", "a", "dict"]), {}, TypeError),
        (("e", {"f": object()}), {}, TypeError),
        (("e",), {"distinct_id": 5}, TypeError),
        (("e",), {"distinct_id": ""}, ValueError),
    ],
)
def test_capture_rejects_bad_input(args, kwargs, error):
    with pytest.raises(error):
        capture(*args, **kwargs)


def test_identify_sets_and_restores_baggage():
    assert baggage.get_baggage("posthog.distinct_id") is None
    with identify("outer"):
        with identify("inner"):
            assert baggage.get_baggage("posthog.distinct_id") == "inner"
        assert baggage.get_baggage("posthog.distinct_id") == "outer"
    assert baggage.get_baggage("posthog.distinct_id") is None
    with pytest.raises(TypeError):
        with identify(42):  # type: ignore[arg-type]
            pass


def test_identify_names_the_span_already_started_and_its_request(server, make_pipeline):
    from opentelemetry import trace

    tracer, processor = make_pipeline()
    with tracer.start_as_current_span("GET /checkout") as request_span:
        request_span.set_attribute("posthog.event", "request_seen")
        with tracer.start_as_current_span("handler"):
            with identify("user-5"):
                trace.get_current_span().set_attribute("posthog.event", "handled")
    with tracer.start_as_current_span("GET /admin", attributes={"posthog.distinct_id": "admin"}):
        with identify("someone-else"):
            trace.get_current_span().set_attribute("posthog.event", "kept_its_own")
    assert processor.force_flush(5000)
    users = {e["event"]: e["distinct_id"] for e in server.events()}
    assert users == {"request_seen": "user-5", "handled": "user-5", "kept_its_own": "admin"}


def test_two_live_roots_of_one_trace_are_not_guessed_between():
    from posthog_otel._pipeline.roots import LocalRoots

    class FakeSpan:
        def __init__(self, trace_id):
            self.trace_id = trace_id

        def get_span_context(self):
            return self

    roots, first, second = LocalRoots(), FakeSpan(1), FakeSpan(1)
    roots.started(first)
    assert roots.root_of(1) is first
    roots.started(second)
    assert roots.root_of(1) is None  # two concurrent requests of one trace: ambiguous
    roots.ended(first)
    assert roots.root_of(1) is second
    roots.ended(second)
    assert roots.root_of(1) is None


@pytest.mark.parametrize("key", ["posthog.distinct_id", "posthog.event", "posthog.set.plan"])
def test_reserved_property_keys_are_refused_naming_the_key(key):
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("r"), pytest.raises(ValueError, match=key):
            capture("clicked", {"ok": 1, key: "x"})
    assert ended()[0].events == ()  # nothing half-recorded
