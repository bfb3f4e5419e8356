"""PostHogSpanProcessor with a real TracerProvider and the devserver over HTTP."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from posthog_otel import capture, identify
from tests.support.server import API_KEY, wait_until


def test_tags_become_events(server, make_pipeline):
    tracer, processor = make_pipeline()
    with tracer.start_as_current_span(
        "checkout",
        attributes={
            "posthog.event": "checkout_completed",
            "posthog.distinct_id": "u1",
            "total": 59.9,
        },
    ) as span:
        span.add_event("coupon", {"posthog.event": "coupon_applied", "code": "SPRING"})
    assert processor.force_flush(10_000)
    coupon = server.wait_for_events(1, event="coupon_applied")[0]
    checkout = server.wait_for_events(1, event="checkout_completed")[0]
    assert checkout["distinct_id"] == coupon["distinct_id"] == "u1"
    assert checkout["properties"]["total"] == 59.9
    assert checkout["properties"]["service.name"] == "shop"
    assert coupon["properties"]["code"] == "SPRING"
    assert coupon["properties"]["$trace_id"] == checkout["properties"]["$trace_id"]


def test_identity_set_on_a_parent_after_it_started_reaches_children(server, make_pipeline):
    tracer, processor = make_pipeline()
    with tracer.start_as_current_span("request") as request:
        request.set_attribute("posthog.distinct_id", "user-7")  # e.g. after authentication
        with tracer.start_as_current_span("service"):
            with tracer.start_as_current_span("db", attributes={"posthog.event": "order_saved"}):
                pass
    processor.force_flush(10_000)
    assert server.wait_for_events(1, event="order_saved")[0]["distinct_id"] == "user-7"


def test_identify_puts_the_user_in_baggage(server, make_pipeline):
    tracer, processor = make_pipeline()
    with tracer.start_as_current_span("request"):
        with identify("user-42"):
            assert baggage.get_baggage("posthog.distinct_id") == "user-42"
            capture("searched", {"query": "shoes"})  # on a span started before identify()
            with tracer.start_as_current_span("inner", attributes={"posthog.event": "viewed"}):
                pass
        assert baggage.get_baggage("posthog.distinct_id") is None
    processor.force_flush(10_000)
    events = server.wait_for_events(2)
    assert {(e["event"], e["distinct_id"]) for e in events} == {
        ("searched", "user-42"),
        ("viewed", "user-42"),
    }


def test_identity_follows_the_request_through_propagated_headers(server, make_pipeline):
    tracer, processor = make_pipeline()
    headers: dict[str, str] = {}
    with identify("edge-user"), tracer.start_as_current_span("edge"):
        propagate.inject(headers)  # what an instrumented HTTP client does
    assert "posthog.distinct_id=edge-user" in headers["baggage"]
    downstream = propagate.extract(headers)  # what an instrumented server does
    with tracer.start_as_current_span(
        "handler", context=downstream, attributes={"posthog.event": "paid"}
    ):
        pass
    processor.force_flush(10_000)
    event = server.wait_for_events(1, event="paid")[0]
    assert event["distinct_id"] == "edge-user"
    assert event["properties"]["$trace_id"] == headers["traceparent"].split("-")[1]


def test_personless_fallback(server, make_pipeline):
    tracer, processor = make_pipeline()
    with tracer.start_as_current_span("anon", attributes={"posthog.event": "landing_viewed"}):
        pass
    processor.force_flush(10_000)
    event = server.wait_for_events(1)[0]
    assert event["properties"]["$process_person_profile"] is False
    assert event["distinct_id"] == event["properties"]["$trace_id"]


def test_capture_keeps_nested_properties(server, make_pipeline):
    tracer, processor = make_pipeline()
    with tracer.start_as_current_span("r") as span:
        capture(
            "cart_updated",
            {"items": [{"sku": "A", "qty": 2}], "total": 10, "tags": ["x", "y"]},
            distinct_id="u1",
        )
        event_attrs = dict(span.events[-1].attributes)
    assert event_attrs["tags"] == ("x", "y")  # plain values stay span attributes
    processor.force_flush(10_000)
    props = server.wait_for_events(1)[0]["properties"]
    assert props["items"] == [{"sku": "A", "qty": 2}]
    assert props["total"] == 10
    assert props["tags"] == ["x", "y"]


def test_capture_on_a_sampled_out_trace_still_goes_out(server, make_pipeline):
    tracer, processor = make_pipeline(sampler=ALWAYS_OFF)
    with tracer.start_as_current_span("unsampled") as span:
        assert not span.is_recording()
        with identify("u9"):
            capture("upgraded", {"plan": "pro"})
        capture("anonymous_thing")
        trace_hex = trace.format_trace_id(span.get_span_context().trace_id)
    processor.force_flush(10_000)
    upgraded = server.wait_for_events(1, event="upgraded")[0]
    assert upgraded["distinct_id"] == "u9"
    assert upgraded["properties"]["plan"] == "pro"
    assert upgraded["properties"]["$trace_id"] == trace_hex
    anonymous = server.wait_for_events(1, event="anonymous_thing")[0]
    assert anonymous["distinct_id"] == trace_hex
    assert anonymous["properties"]["$process_person_profile"] is False


def test_capture_with_no_processor_is_dropped_with_one_warning(caplog):
    import posthog_otel._context as helpers

    helpers._warned.clear()
    with caplog.at_level(logging.WARNING, logger="posthog_otel"):
        capture("lost_one")
        capture("lost_two")
    warnings = [r for r in caplog.records if "no PostHogSpanProcessor" in r.getMessage()]
    assert len(warnings) == 1


def test_flush_delivers_everything_queued(server, make_pipeline):
    tracer, processor = make_pipeline(flush_interval=60)
    for i in range(500):
        with tracer.start_as_current_span("s", attributes={"posthog.event": "tick", "i": i}):
            pass
    assert processor.force_flush(30_000)
    assert len(server.events("tick")) == 500
    stats = processor.stats()
    assert (stats.spans_seen, stats.events_queued, stats.events_sent) == (500, 500, 500)
    assert stats.dropped == {}
    assert stats.queue_size == 0


def test_shutdown_delivers_and_is_idempotent(server, make_pipeline):
    tracer, processor = make_pipeline(flush_interval=60)
    for _ in range(50):
        with tracer.start_as_current_span("s", attributes={"posthog.event": "before_shutdown"}):
            pass
    processor.shutdown()
    assert len(server.events("before_shutdown")) == 50
    processor.shutdown()
    with tracer.start_as_current_span("s", attributes={"posthog.event": "after_shutdown"}):
        pass
    assert processor.stats().dropped == {"closed": 1}  # refused at the door
    assert processor.force_flush(100) is True  # nothing left to deliver


def test_a_dead_server_never_hurts_the_app(make_pipeline, unused_port):
    tracer, processor = make_pipeline(
        f"http://127.0.0.1:{unused_port}", client_options={"retries": 1}, flush_interval=0.05
    )
    for _ in range(200):
        with tracer.start_as_current_span("s", attributes={"posthog.event": "lost"}):
            pass
    assert processor.force_flush(10_000)
    started = time.monotonic()
    processor.shutdown(timeout_millis=3000)
    assert time.monotonic() - started < 8  # a hang guard, generous for a loaded CI machine
    stats = processor.stats()
    assert stats.events_sent == 0
    assert stats.dropped == {"network": 200}


def test_shutdown_returns_within_its_timeout_while_retrying(server, make_pipeline):
    server.faults.respond(503, times=1000)
    tracer, processor = make_pipeline(
        client_options={"retry_delay": 10, "retries": 5}, flush_interval=0.05
    )
    with tracer.start_as_current_span("s", attributes={"posthog.event": "stuck"}):
        pass
    wait_until(lambda: server.requests.matching("/batch"))  # the sender is now in its backoff
    started = time.monotonic()
    processor.shutdown(timeout_millis=1000)
    assert time.monotonic() - started < 6  # a hang guard: the backoff alone is 10 s
    # shutdown() only waits; the sender, cut off at the deadline, counts the event.
    wait_until(lambda: processor.stats().dropped == {"shutdown": 1}, timeout=5)
    assert processor.stats().in_flight == 0


def test_a_full_queue_drops_and_counts_without_blocking(server, make_pipeline):
    server.faults.hang(5, times=50)
    tracer, processor = make_pipeline(
        client_options={"timeout": 5, "retries": 0},
        max_queue_size=20,
        max_batch_size=5,
        flush_interval=0.01,
    )
    for _ in range(300):
        with tracer.start_as_current_span("s", attributes={"posthog.event": "burst"}):
            pass
    stats = processor.stats()
    assert stats.dropped.get("queue_full", 0) > 0
    assert stats.events_queued + stats.dropped["queue_full"] == 300
    server.faults.clear()


def test_before_send_can_edit_drop_or_fail(server, make_pipeline, caplog):
    def before_send(event):
        if event["event"] == "drop_me":
            return None
        if event["event"] == "explode":
            raise RuntimeError("bug in before_send")
        event["properties"]["edited"] = True
        return event

    tracer, processor = make_pipeline(before_send=before_send)
    for name in ("keep_me", "drop_me", "explode"):
        with tracer.start_as_current_span("s", attributes={"posthog.event": name}):
            pass
    processor.force_flush(10_000)
    (kept,) = server.wait_for_events(1)
    assert kept["event"] == "keep_me" and kept["properties"]["edited"] is True
    assert processor.stats().dropped == {"before_send": 1, "invalid": 1}
    assert any("before_send raised RuntimeError" in r.getMessage() for r in caplog.records)


def test_bad_tags_are_counted_and_neighbours_delivered(server, make_pipeline, caplog, json_backend):
    tracer, processor = make_pipeline()
    with caplog.at_level(logging.WARNING, logger="posthog_otel"):
        for attributes in (
            {"posthog.event": "good_1"},
            {"posthog.event": "bad", "posthog.properties": "{broken"},
            {"posthog.event": "bad", "posthog.distinct_id": 12345},
            {"posthog.event": ""},
            {"posthog.event": "huge", "blob": "x" * (2 * 1024 * 1024)},
            {"posthog.event": "good_2", "ratio": float("nan")},
        ):
            with tracer.start_as_current_span("s", attributes=attributes):
                pass
        processor.force_flush(10_000)
    assert sorted(e["event"] for e in server.events()) == ["good_1", "good_2", "huge"]
    assert server.events("good_2")[0]["properties"]["ratio"] is None
    blob = server.events("huge")[0]["properties"]["blob"]  # cut to the bound, not lost
    assert blob.startswith("x" * 1000) and blob.endswith("characters]")
    assert processor.stats().dropped == {"invalid": 3}
    assert processor.stats().trimmed == {"string_length": 1}
    drop_logs = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drop_logs) == 1  # once per reason


def test_disabled_capture_queues_nothing(server, make_pipeline):
    tracer, processor = make_pipeline(client_options={"enabled_capture": False})
    with tracer.start_as_current_span("s", attributes={"posthog.event": "nope"}):
        capture("nope_either")
    processor.force_flush(1000)
    assert processor.stats().events_queued == 0
    assert server.requests.matching("/") == []


def test_our_own_http_makes_no_spans(server, make_pipeline):
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    observer = TracerProvider()
    observer.add_span_processor(SimpleSpanProcessor(spans))
    URLLib3Instrumentor().instrument(tracer_provider=observer)
    try:
        import urllib3

        urllib3.PoolManager().request("GET", server.url + "/api/events")
        assert len(spans.get_finished_spans()) == 1  # the instrumentation works
        tracer, processor = make_pipeline(
            before_send=lambda e: (
                urllib3.PoolManager().request("GET", server.url + "/api/events"),
                e,
            )[1]
        )
        with tracer.start_as_current_span("s", attributes={"posthog.event": "quiet"}):
            pass
        processor.force_flush(10_000)
        server.wait_for_events(1)
    finally:
        URLLib3Instrumentor().uninstrument()
    assert len(spans.get_finished_spans()) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_after_fork_parent_and_child_each_deliver_their_own(server, make_pipeline):
    tracer, processor = make_pipeline(flush_interval=60)
    with tracer.start_as_current_span("s", attributes={"posthog.event": "queued_before_fork"}):
        pass
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        code = 1
        try:
            stats = processor.stats()  # the child counts from zero: the parent's are its own
            if (stats.events_queued, stats.spans_seen, stats.events_sent) != (0, 0, 0):
                os._exit(3)
            with tracer.start_as_current_span("s", attributes={"posthog.event": "from_child"}):
                pass
            code = 0 if processor.force_flush(10_000) else 2
            if processor.stats().events_sent != 1:
                code = 4
        finally:
            os._exit(code)
    with tracer.start_as_current_span("s", attributes={"posthog.event": "from_parent"}):
        pass
    assert processor.force_flush(10_000)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    events = server.events()
    assert sorted(e["event"] for e in events) == ["from_child", "from_parent", "queued_before_fork"]
    assert len({e["uuid"] for e in events}) == 3
    assert server.repeats() == {}  # the child did not resend the parent's queue


def test_exit_without_shutdown_still_delivers(server):
    script = textwrap.dedent(
        f"""
        from opentelemetry.sdk.trace import TracerProvider
        from posthog_otel import PostHogSpanProcessor
        provider = TracerProvider()
        provider.add_span_processor(PostHogSpanProcessor(api_key="{API_KEY}", host="{server.url}", flush_interval=60))
        tracer = provider.get_tracer("x")
        for i in range(25):
            with tracer.start_as_current_span("s", attributes={{"posthog.event": "at_exit"}}):
                pass
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert len(server.events("at_exit")) == 25


def test_repr_hides_the_key(make_pipeline):
    _, processor = make_pipeline()
    assert API_KEY not in repr(processor)
