"""capture() and identify(): argument checks and how events land on spans."""

from __future__ import annotations

import json

import pytest
from opentelemetry import baggage

from posthog_otel import capture, identify
from tests.support.spans import recording


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
    from opentelemetry.trace import SpanKind

    tracer, processor = make_pipeline()
    with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as request_span:
        request_span.set_attribute("posthog.event", "request_seen")
        with tracer.start_as_current_span("handler"):
            with identify("user-5"):
                trace.get_current_span().set_attribute("posthog.event", "handled")
    admin = {"posthog.distinct_id": "admin"}
    with tracer.start_as_current_span("GET /admin", kind=SpanKind.SERVER, attributes=admin):
        with identify("someone-else"):
            trace.get_current_span().set_attribute("posthog.event", "kept_its_own")
    assert processor.force_flush(5000)
    users = {e["event"]: e["distinct_id"] for e in server.events()}
    assert users == {"request_seen": "user-5", "handled": "user-5", "kept_its_own": "admin"}


def test_concurrent_requests_of_one_trace_each_name_their_own_root(server, make_pipeline):
    import threading

    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    tracer, processor = make_pipeline()
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    both_started = threading.Barrier(2)

    def request(user: str) -> None:
        with tracer.start_as_current_span("GET /", context=parent) as root:
            root.set_attribute("posthog.event", f"request_of_{user}")
            both_started.wait(5)  # both roots of trace 0xabc live at once
            with tracer.start_as_current_span("handler"), identify(user):
                pass

    threads = [threading.Thread(target=request, args=(u,)) for u in ("ann", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert processor.force_flush(5000)
    users = {e["event"]: e["distinct_id"] for e in server.events()}
    assert users == {"request_of_ann": "ann", "request_of_bob": "bob"}


@pytest.mark.parametrize("key", ["posthog.distinct_id", "posthog.event", "posthog.set.plan"])
def test_reserved_property_keys_are_refused_naming_the_key(key):
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("r"), pytest.raises(ValueError, match=key):
            capture("clicked", {"ok": 1, key: "x"})
    assert ended()[0].events == ()  # nothing half-recorded
