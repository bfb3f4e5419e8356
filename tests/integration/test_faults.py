"""Fault injection and load: a sick or absent PostHog, bursts, threads, bad input.

Every test counts what the server stored by uuid: delivered, or dropped and counted,
never lost in silence. Delivery is at least once: a batch whose answer is lost (cut
by a timeout or by the server going away) is sent again with the same uuids, and
PostHog, like the devserver, keeps each event once. So the tests check that every
event arrived and was stored once, and read the repeats the devserver counted: none
where every answer arrives (``assert_exactly_once``), and counted, never hidden,
where an answer may be lost (``assert_delivered``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request

import pytest

from posthog_otel import capture, identify
from posthog_otel._pipeline.spans import pipeline_of
from tests.support.server import assert_accounted, wait_until


def produce(tracer, n: int, name: str = "tick", start: int = 0) -> None:
    for i in range(start, start + n):
        with tracer.start_as_current_span("s", attributes={"posthog.event": name, "n": i}):
            pass


def assert_delivered(server, name: str, expected: int) -> dict[str, int]:
    """At least once: events ``n`` = 0 .. expected-1 all arrived, each stored once.
    Returns the repeats (uuid: times sent again), as ``/api/requests`` also shows them."""
    events = server.events(name)
    assert sorted(e["properties"]["n"] for e in events) == list(range(expected))
    assert len({e["uuid"] for e in events}) == expected  # one uuid per event
    repeats = server.repeats()
    assert set(repeats) <= {e["uuid"] for e in server.events()}
    with urllib.request.urlopen(f"{server.url}/api/requests", timeout=10) as answer:
        assert json.load(answer)["repeated_events"] == sum(repeats.values())
    return repeats


def assert_exactly_once(server, name: str, expected: int) -> None:
    """Delivered, and never sent again: for tests where every answer arrives."""
    assert assert_delivered(server, name, expected) == {}, "sent again after it was stored"


def test_503_three_times_then_200_delivers_every_event_once(server, make_pipeline):
    server.faults.respond(503, times=3, paths="/batch")
    tracer, processor = make_pipeline(client_options={"retries": 3})
    produce(tracer, 300)
    assert processor.force_flush(20_000)
    assert_accounted(processor.stats())
    assert_exactly_once(server, "tick", 300)
    assert [r.status for r in server.requests.matching("/batch")][:4] == [503, 503, 503, 200]
    assert processor.stats().retries == 3


def test_429_retry_after_is_honoured_by_the_pipeline(server, make_pipeline):
    server.faults.respond(429, retry_after=1, paths="/batch")
    tracer, processor = make_pipeline()
    produce(tracer, 50)
    assert processor.force_flush(20_000)
    assert_accounted(processor.stats())
    first, second = server.requests.matching("/batch")[:2]
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0
    assert_exactly_once(server, "tick", 50)


@pytest.mark.parametrize("status", [400, 401, 403])
def test_client_errors_are_not_retried_but_counted_with_the_reason(server, make_pipeline, status):
    server.faults.respond(status, paths="/batch")
    tracer, processor = make_pipeline()
    produce(tracer, 20)
    assert processor.force_flush(10_000)
    assert_accounted(processor.stats())
    assert len(server.requests.matching("/batch")) == 1
    assert processor.stats().dropped == {f"http_{status}": 20}
    assert server.events() == []


def test_a_batch_refused_as_too_large_is_split_and_the_rest_goes_through(server, make_pipeline):
    server.max_request_bytes = 200_000  # like a proxy with a small body limit in front of PostHog
    try:
        tracer, processor = make_pipeline(flush_interval=30)
        pad = "p" * 20_000
        for i in range(40):
            attributes = {"posthog.event": "tick", "n": i, "pad": pad}
            if i == 17:
                # 300 KB in attributes each under the string bound (64 Ki), so none is cut
                wide = {f"pad{j}": pad * 3 for j in range(5)}
                attributes = {"posthog.event": "too_big_for_the_proxy", **wide}
            with tracer.start_as_current_span("s", attributes=attributes):
                pass
        assert processor.force_flush(10_000)
        assert_accounted(processor.stats())
    finally:
        server.max_request_bytes = None
    statuses = [r.status for r in server.requests.matching("/batch")]
    assert statuses[0] == 413
    assert statuses.count(200) > 1  # the halves that fit went through
    events = server.events("tick")
    assert sorted(e["properties"]["n"] for e in events) == [i for i in range(40) if i != 17]
    assert len({e["uuid"] for e in events}) == 39
    assert processor.stats().dropped == {"too_large": 1}


def test_server_down_for_two_seconds_mid_stream_loses_nothing(server, make_pipeline):
    tracer, processor = make_pipeline(
        client_options={"retries": 6, "retry_delay": 0.2}, flush_interval=0.05
    )
    produced = 0

    def stream(seconds: float) -> None:
        nonlocal produced
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            produce(tracer, 20, start=produced)
            produced += 20
            time.sleep(0.01)  # a steady stream, not a burst

    stream(0.5)
    server.stop()
    stream(2.0)  # the server is down for these two seconds
    server.start()
    stream(0.5)
    assert processor.force_flush(30_000)
    assert_accounted(processor.stats())
    # The stop may cut a request the server had already stored: its batch is sent
    # again when the server is back, stored once, and counted as repeats.
    repeats = assert_delivered(server, "tick", produced)
    assert all(times == 1 for times in repeats.values()), repeats
    assert processor.stats().dropped == {}
    assert processor.stats().retries > 0


def test_a_batch_whose_answer_is_lost_is_sent_again_and_stored_once(server, make_pipeline):
    """The server stores the batch, then its answer trickles past the client's timeout:
    the pipeline cannot know it arrived, so it sends the same uuids again. PostHog (and
    the devserver) keep one copy; the repeats are counted where a test can read them."""
    server.faults.trickle(bytes_per_second=1, times=1, paths="/batch")
    tracer, processor = make_pipeline(
        flush_interval=30, client_options={"timeout": 3.0, "retries": 2}
    )
    produce(tracer, 30)
    assert processor.force_flush(20_000)  # one batch of 30: flush_interval never came
    assert_accounted(processor.stats())
    repeats = assert_delivered(server, "tick", 30)
    assert repeats == {e["uuid"]: 1 for e in server.events("tick")}
    assert [r.status for r in server.requests.matching("/batch")] == [200, 200]
    stats = processor.stats()
    assert (stats.events_sent, stats.retries, stats.dropped) == (30, 1, {})


def test_server_down_for_good_every_event_is_counted_as_dropped(make_pipeline, unused_port):
    # What the application feels while PostHog is down is measured in benchmarks/.
    tracer, dead = make_pipeline(
        f"http://127.0.0.1:{unused_port}", client_options={"retries": 2, "retry_delay": 0.05}
    )
    produce(tracer, 6000)
    started = time.monotonic()
    dead.shutdown(timeout_millis=2000)
    assert time.monotonic() - started < 3.5  # a guard against hanging, generous for slow CI
    stats = dead.stats()
    wait_until(lambda: dead.stats().in_flight == 0)  # the sender counts at the deadline
    stats = dead.stats()
    assert_accounted(stats, offered=6000)
    assert stats.events_sent == 0
    assert stats.dropped_total == stats.events_queued + stats.dropped.get("queue_full", 0) == 6000


@pytest.mark.parametrize("fault", ["stall_body", "hang", "reset", "garbage"])
def test_sick_servers_never_leave_a_thread_stuck(server, make_pipeline, fault):
    arm = getattr(server.faults, fault)
    if fault in ("stall_body", "hang"):
        arm(30, times=2, paths="/batch")
    else:
        arm(times=2, paths="/batch")
    tracer, processor = make_pipeline(
        client_options={"timeout": 0.5, "retries": 3, "retry_delay": 0.05}
    )
    produce(tracer, 100)
    started = time.monotonic()
    assert processor.force_flush(20_000)
    assert_accounted(processor.stats())
    # A hang guard: two failed attempts of at most 0.5 s each, then success; the faults
    # last 30 s, so only a timeout that does not work could come near the bound.
    assert time.monotonic() - started < 15
    # At least once: on a loaded machine a healthy answer may also outlast the 0.5 s
    # timeout, and that batch is sent again (the faults themselves store nothing).
    assert_delivered(server, "tick", 100)
    processor.shutdown(timeout_millis=2000)
    assert pipeline_of(processor).worker.state == "stopped"  # both threads have finished


def test_eight_threads_ten_thousand_events_each_exactly_once_for_the_right_user(
    server, make_pipeline
):
    # The devserver shares this process's GIL with eight producers, so the queue is sized
    # for the whole burst and requests may take long to answer: this test is about
    # concurrency (nothing lost, doubled or misattributed), not capacity or latency.
    tracer, processor = make_pipeline(max_queue_size=80_000, client_options={"timeout": 60})

    def worker(thread: int) -> None:
        with identify(f"thread-{thread}"):
            for i in range(10_000):
                with tracer.start_as_current_span(
                    "s", attributes={"posthog.event": "load", "n": thread * 10_000 + i}
                ):
                    pass

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert processor.force_flush(120_000)
    assert_accounted(processor.stats())
    assert server.store.count(event="load") == 80_000
    assert_exactly_once(server, "load", 80_000)
    for event in server.events("load"):
        assert event["distinct_id"] == f"thread-{event['properties']['n'] // 10_000}"
    assert processor.stats().events_sent == 80_000


def test_bad_input_gets_clear_errors_or_counted_drops(server, make_pipeline, caplog):
    tracer, processor = make_pipeline()
    with tracer.start_as_current_span("request"):
        with pytest.raises(TypeError, match="'callback'"):
            capture("bad_props", {"callback": print})
        with pytest.raises(TypeError, match="distinct_id"):
            capture("bad_user", distinct_id=42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="empty"):
            capture("")
        capture("good", {"n": 0})
    with caplog.at_level(logging.WARNING, logger="posthog_otel"):
        for attributes in (
            {"posthog.event": "good", "n": 1},
            {"posthog.event": "huge", "blob": "x" * (2 * 1024 * 1024)},
            {"posthog.event": "broken", "posthog.properties": "{not json"},
            {"posthog.event": "numeric_user", "posthog.distinct_id": 7},
            {"posthog.event": "", "n": 99},
            {"posthog.event": "good", "n": 2},
        ):
            with tracer.start_as_current_span("s", attributes=attributes):
                pass
        assert processor.force_flush(10_000)
        assert_accounted(processor.stats())
    assert_exactly_once(server, "good", 3)
    (huge,) = server.events("huge")  # its 2 MB attribute cut to the string bound
    assert huge["properties"]["blob"].endswith("characters]")
    assert processor.stats().dropped == {"invalid": 3}
    assert processor.stats().trimmed == {"string_length": 1}
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1  # once per reason


def test_the_queue_bound_holds_while_posthog_is_away(server, make_pipeline):
    server.faults.hang(30, times=100, paths="/batch")
    tracer, processor = make_pipeline(
        client_options={"timeout": 5, "retries": 0},
        max_queue_size=100,
        max_buffer_bytes=5 * 1024 * 1024,
    )
    blob = "y" * 50_000  # big events fill the encoded buffer quickly
    for i in range(400):
        with tracer.start_as_current_span(
            "s", attributes={"posthog.event": "big", "n": i, "blob": blob}
        ):
            pass
    wait_until(lambda: processor.stats().dropped.get("queue_full", 0) > 0, timeout=10)
    stats = processor.stats()
    assert stats.buffered_bytes <= 5 * 1024 * 1024 + 2 * 1024 * 1024  # the limit, plus one batch
    assert stats.queue_size <= 100
    server.faults.clear()
    processor.shutdown(timeout_millis=1000)


def test_events_wait_compressed_while_a_send_hangs(server, make_pipeline):
    """The outbox's bound counts what batches hold: while the first send hangs, the
    batches behind it are compressed, so 5 MiB keeps far more than 5 MiB of events."""
    server.faults.hang(8, times=1, paths="/batch")
    tracer, processor = make_pipeline(
        client_options={"timeout": 10}, max_queue_size=100, max_buffer_bytes=5 * 1024 * 1024
    )
    blob = "z" * 300_000  # compresses about 1,000 times
    for i in range(60):  # 18 MB of JSON: more than three times the buffer
        with tracer.start_as_current_span(
            "s", attributes={"posthog.event": "big", "n": i, "blob": blob}
        ):
            pass
    # All encoded and waiting while the first send still hangs (it ends after 8 s): left
    # uncompressed, 5 MiB would have held 17 of them and the encoder would be waiting.
    wait_until(lambda: processor.stats().queue_size == 0, timeout=5)
    assert processor.stats().buffered_bytes <= 5 * 1024 * 1024 + 2 * 1024 * 1024  # + 1 batch
    assert processor.force_flush(30_000)
    assert processor.stats().dropped == {}
    assert_accounted(processor.stats())
    assert_exactly_once(server, "big", 60)
