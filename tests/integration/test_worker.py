"""The worker's promises, against a real server misbehaving on purpose.

Every test checks the books: each accepted event is counted exactly once, as sent or as
dropped with a reason (``assert_accounted``), whatever the server did.
"""

from __future__ import annotations

import threading
import time

import pytest

from posthog_otel._pipeline import worker as worker_module
from posthog_otel._pipeline.spans import pipeline_of
from tests.support.server import assert_accounted, wait_until


def produce(tracer, n: int, name: str = "tick", **extra) -> None:
    for i in range(n):
        with tracer.start_as_current_span("s", attributes={"posthog.event": name, "n": i, **extra}):
            pass


def stored_once(server, name: str) -> int:
    """How many ``name`` events the server stored, none of them sent again after it was
    stored (the devserver keeps a repeat once, as PostHog does, and counts it)."""
    events = server.events(name)
    repeated = set(server.repeats()) & {e["uuid"] for e in events}
    assert not repeated, "an event was sent again after it was stored"
    return len(events)


@pytest.mark.parametrize("fault", ["hang", "slow", "reset"])
def test_shutdown_returns_within_its_timeout_and_every_event_is_accounted(
    server, make_pipeline, fault
):
    if fault == "hang":
        server.faults.hang(30, times=1000, paths="/batch")
    elif fault == "slow":
        server.faults.delay(0.2, times=1000, paths="/batch")
    else:
        server.faults.reset(times=1000, paths="/batch")
    tracer, processor = make_pipeline(
        max_batch_size=50, client_options={"timeout": 10, "retries": 5, "retry_delay": 0.05}
    )
    name = f"tick_{fault}"  # a slow server may still store a batch after the test ends
    produce(tracer, 500, name)
    started = time.monotonic()
    processor.shutdown(timeout_millis=1500)
    overshoot = time.monotonic() - started - 1.5
    # A hang guard with generous slack for a loaded machine: shutdown only signals and
    # waits, so it should overshoot by scheduling jitter alone.
    assert overshoot < 2.0, overshoot
    wait_until(lambda: processor.stats().in_flight == 0, timeout=20)
    stats = processor.stats()
    assert_accounted(stats, offered=500)
    # A batch whose answer came too late is counted as dropped, though the server may
    # have stored it: at least once, never twice.
    assert stored_once(server, name) >= stats.events_sent
    if fault == "hang":
        assert stats.events_sent == 0 and stats.dropped.get("shutdown", 0) > 0
    if fault == "reset":
        assert stats.events_sent == 0


def test_a_slow_but_healthy_server_gets_everything_before_the_deadline(server, make_pipeline):
    server.faults.delay(0.1, times=1000, paths="/batch")
    tracer, processor = make_pipeline(max_batch_size=100)
    produce(tracer, 1000)
    processor.shutdown(timeout_millis=20_000)
    stats = processor.stats()
    assert_accounted(stats, offered=1000)
    assert stats.events_sent == 1000 == stored_once(server, "tick")


def test_shutdown_racing_eight_producers_counts_every_event_once(server, make_pipeline):
    tracer, processor = make_pipeline(max_queue_size=100_000)
    started = threading.Barrier(9)

    def producer() -> None:
        started.wait()
        produce(tracer, 2000)

    threads = [threading.Thread(target=producer) for _ in range(8)]
    for thread in threads:
        thread.start()
    started.wait()
    wait_until(lambda: processor.stats().events_queued > 2000)
    processor.shutdown(timeout_millis=20_000)
    for thread in threads:
        thread.join()
    stats = processor.stats()
    assert set(stats.dropped) <= {"closed"}  # only refusals after the door closed
    assert_accounted(stats, offered=16_000)
    assert stored_once(server, "tick") == stats.events_sent == stats.events_queued


def test_shutdown_during_a_send_cuts_it_off_and_counts_it(server, make_pipeline):
    server.faults.hang(30, paths="/batch")
    tracer, processor = make_pipeline(client_options={"timeout": 20})
    produce(tracer, 10)
    assert processor.force_flush(100) is False  # the send is now hanging
    wait_until(lambda: server.requests.matching("/batch"))
    processor.shutdown(timeout_millis=500)
    wait_until(lambda: processor.stats().in_flight == 0, timeout=25)
    assert processor.stats().dropped == {"shutdown": 10}


def test_a_waiting_flush_is_released_when_shutdown_gives_up(server, make_pipeline):
    server.faults.hang(30, times=10, paths="/batch")
    tracer, processor = make_pipeline(client_options={"timeout": 20})
    produce(tracer, 10)
    results: list[tuple[bool, float]] = []

    def flush() -> None:
        began = time.monotonic()
        results.append((processor.force_flush(60_000), time.monotonic() - began))

    flusher = threading.Thread(target=flush)
    flusher.start()
    wait_until(lambda: server.requests.matching("/batch"))
    processor.shutdown(timeout_millis=500)
    flusher.join(timeout=25)
    assert not flusher.is_alive()
    ((ok, waited),) = results
    assert ok is False
    assert waited < 20  # released by shutdown, not by the server or its own timeout


def test_nothing_an_event_does_can_stop_the_threads(server, make_pipeline, json_backend):
    def deep(levels: int) -> dict:
        value: dict = {}
        for _ in range(levels):
            value = {"v": value}
        return value

    def before_send(event):
        name = event["event"]
        if name == "nested_too_deep":
            event["properties"]["deep"] = deep(100_000)
        elif name == "raises_recursion":
            raise RecursionError("maximum recursion depth exceeded")
        elif name == "raises_memory":
            raise MemoryError
        return event

    tracer, processor = make_pipeline(before_send=before_send)
    for name in ("ok", "nested_too_deep", "raises_recursion", "raises_memory", "ok"):
        produce(tracer, 1, name)
    assert processor.force_flush(10_000)
    produce(tracer, 3, "still_alive")
    assert processor.force_flush(10_000)
    assert stored_once(server, "ok") == 2
    assert stored_once(server, "still_alive") == 3
    (kept,) = server.events("nested_too_deep")  # kept, with the nesting cut short
    assert str(kept["properties"]["deep"]).count("{") < 100
    stats = processor.stats()
    assert stats.dropped == {"invalid": 2}
    assert_accounted(stats)


def test_one_bad_tag_spoils_only_its_own_event(server, make_pipeline):
    tracer, processor = make_pipeline()
    with tracer.start_as_current_span("s", attributes={"posthog.event": "span_event"}) as span:
        span.add_event("e", {"posthog.event": ""})
        span.add_event("e", {"posthog.event": "sibling"})
        span.add_event("e", {"posthog.event": "bad_user", "posthog.distinct_id": 7})
    with tracer.start_as_current_span("s", attributes={"posthog.distinct_id": ""}) as span:
        span.add_event("e", {"posthog.event": "has_own_user", "posthog.distinct_id": "u1"})
        span.add_event("e", {"posthog.event": "inherits_the_bad_user"})
    assert processor.force_flush(10_000)
    assert sorted(e["event"] for e in server.events()) == ["has_own_user", "sibling", "span_event"]
    stats = processor.stats()
    assert stats.dropped == {"invalid": 3}
    assert stats.events_queued == 6  # two spans, corrected to the six events they held
    assert_accounted(stats)


def test_max_batch_size_is_a_maximum(server, make_pipeline):
    tracer, processor = make_pipeline(max_batch_size=10, flush_interval=30)
    server.faults.delay(0.2, times=3, paths="/batch")  # a busy sender must not make batches grow
    produce(tracer, 95)
    assert processor.force_flush(10_000)
    sizes = [len(r.json()["batch"]) for r in server.requests.matching("/batch")]
    assert sum(sizes) == 95 and max(sizes) == 10


def test_queue_size_never_passes_max_queue_size(server, make_pipeline):
    server.faults.hang(30, times=100, paths="/batch")
    tracer, processor = make_pipeline(max_queue_size=50, max_batch_size=10)
    seen = []
    for i in range(2000):
        with tracer.start_as_current_span("s", attributes={"posthog.event": "tick", "n": i}):
            pass
        seen.append(processor.stats().queue_size)
    assert max(seen) <= 50
    assert processor.stats().dropped["queue_full"] > 0
    processor.shutdown(timeout_millis=200)
    wait_until(lambda: processor.stats().in_flight == 0, timeout=20)
    assert_accounted(processor.stats(), offered=2000)


def test_the_pipeline_is_what_processors_share(make_pipeline):
    _, processor = make_pipeline()
    pipeline = pipeline_of(processor)
    assert pipeline.worker.state == "running"
    processor.shutdown()
    assert pipeline.worker.state == "stopped"


def test_the_default_queue_holds_a_burst_of_fifty_thousand_captures(server, make_pipeline):
    # The encoder is held in before_send, as a busy application starving it of the GIL
    # would hold it: the queue alone must take the burst (10,000 items did not).
    from posthog_otel import capture

    release = threading.Event()

    def held(event):  # then None: dropped as before_send, no 50,000 events to store
        release.wait(60)

    _, processor = make_pipeline(before_send=held)
    properties = {"plan": "pro", "region": "eu-west", "seats": 12, "step": 3, "price": 49.5,
                  "ratio": 0.75, "trial": False, "cart": {"items": 2, "sku": "TEE-1"}}  # fmt: skip
    for _ in range(50_000):
        capture("plan_chosen", properties, distinct_id="user-1")
    worker = pipeline_of(processor).worker
    assert processor.stats().dropped.get("queue_full", 0) == 0
    assert worker.queued_bytes <= worker_module.MAX_QUEUE_BYTES
    release.set()
    assert processor.force_flush(60_000)
    stats = processor.stats()
    assert stats.dropped == {"before_send": 50_000}
    assert_accounted(stats, offered=50_000)


def test_the_default_queue_is_bounded_by_bytes(server, make_pipeline, monkeypatch):
    from posthog_otel import capture

    monkeypatch.setattr(worker_module, "MAX_QUEUE_BYTES", 200_000)
    release = threading.Event()
    _, processor = make_pipeline(before_send=lambda event: release.wait(60) and None)
    big = {f"key_{i}": i for i in range(100)}  # 100 properties: about 10 KB each
    small = {"plan": "pro"}
    for _ in range(100):
        capture("big", big, distinct_id="user-1")
    worker = pipeline_of(processor).worker
    refused = processor.stats().dropped.get("queue_full", 0)
    assert 70 <= refused < 100  # 200 KB holds about twenty of them, not a hundred items
    assert worker.queued_bytes <= 200_000
    for _ in range(100):
        capture("small", small, distinct_id="user-1")  # what room is left takes small ones
    assert processor.stats().dropped["queue_full"] - refused < 100
    release.set()
    assert processor.force_flush(30_000)
    assert worker.queued_bytes == 0
    assert_accounted(processor.stats(), offered=200)


def test_item_bytes_grow_with_what_an_item_holds(make_pipeline):
    from opentelemetry.trace import INVALID_SPAN_CONTEXT

    from posthog_otel._context import event_from_code

    def event(n: int) -> dict:
        return event_from_code("e", {f"k{i}": i for i in range(n)}, "u", INVALID_SPAN_CONTEXT, None)

    assert worker_module.item_bytes(event(100)) > 5 * worker_module.item_bytes(event(1))
    # One long string is not one short value: a megabyte counts as a megabyte.
    blob = event_from_code("e", {"blob": "x" * 1_000_000}, "u", INVALID_SPAN_CONTEXT, None)
    assert worker_module.item_bytes(blob) > 1_000_000
    tracer, _ = make_pipeline()
    spans = []
    for n in (1, 100):
        with tracer.start_as_current_span("s", attributes={f"a{i}": i for i in range(n)}) as span:
            for _ in range(n // 10):
                span.add_event("x", {"posthog.event": "x"})
        spans.append(span)
    small, large = map(worker_module.item_bytes, spans)
    assert large > 3 * small
    assert worker_module.item_bytes((spans[1], {"flag": True}, (object(),) * 5)) > large
    with tracer.start_as_current_span("s", attributes={"body": "y" * 500_000}) as span:
        pass
    assert worker_module.item_bytes(span) > 500_000
