"""Counters: exact from many threads, bounded however many threads come and go; drops
logged once per episode, timed by an injected clock."""

from __future__ import annotations

import logging
import threading

import pytest

from posthog_otel._pipeline.stats import Counter, Stats, ThreadCounter
from tests.support.server import FakeClock


def test_counters_are_exact_from_many_threads():
    for counter in (Counter(), ThreadCounter()):
        threads = [
            threading.Thread(target=lambda c=counter: [c.add() for _ in range(10_000)])
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert counter.value == 80_000


def test_a_thread_per_request_leaves_few_cells_and_no_count_behind():
    counter = ThreadCounter()
    for _ in range(200):  # as a server that starts a thread per request
        thread = threading.Thread(target=counter.add, args=(3,))
        thread.start()
        thread.join()
    assert counter.value == 600
    assert len(counter._cells) <= 2  # finished threads' cells are folded into the total


# -- drops are logged once per episode ---------------------------------------------------

DAY = 24 * 3600.0


def _drop_lines(caplog):
    lines = [r for r in caplog.records if r.name == "posthog_otel._pipeline.stats"]
    caplog.clear()
    return lines


@pytest.fixture
def episodes(caplog):
    caplog.set_level(logging.INFO, logger="posthog_otel")
    clock = FakeClock()
    return Stats(clock=clock), clock


def test_an_outage_on_day_3_is_logged_after_a_blip_on_day_1(episodes, caplog):
    stats, clock = episodes
    stats.drop("network", 5, "connection refused")
    (first,) = _drop_lines(caplog)
    assert first.levelno == logging.WARNING
    assert "dropped 5 event(s) because PostHog could not be reached" in first.getMessage()
    clock.now += 2 * DAY
    stats.drop("network", 7)
    (again,) = _drop_lines(caplog)
    assert "dropped 7 event(s) because PostHog could not be reached" in again.getMessage()


def test_an_episode_logs_its_first_drop_then_one_count_when_it_ends(episodes, caplog):
    stats, clock = episodes
    stats.drop("network", 1)
    for _ in range(5):  # a drop every 10 s: the same episode, nothing logged
        clock.now += 10
        stats.drop("network", 2)
    assert len(_drop_lines(caplog)) == 1
    clock.now += 61  # quiet for a minute: the episode is over
    stats.drop("http_500", 1)  # the next log line says so first
    summary, first = _drop_lines(caplog)
    assert (
        summary.getMessage() == "posthog-otel: 10 more event(s) dropped (network) in the last 111 s"
    )
    assert summary.levelno == logging.WARNING
    assert "because PostHog refused them with HTTP 500" in first.getMessage()


def test_a_long_episode_is_counted_once_a_minute_not_once_per_drop(episodes, caplog):
    stats, clock = episodes
    for _ in range(181):  # three minutes of drops, one a second
        stats.drop("queue_full")
        clock.now += 1
    lines = [r.getMessage() for r in _drop_lines(caplog)]
    assert len(lines) == 4, lines  # the first drop, then a count per minute
    assert lines[1] == "posthog-otel: 60 more event(s) dropped (queue_full) in the last 60 s"
    assert stats.snapshot().dropped == {"queue_full": 181}


def test_a_flush_reports_an_episode_gone_quiet_and_shutdown_reports_any(episodes, caplog):
    stats, clock = episodes
    stats.drop("network")
    stats.drop("network", 3)
    stats.drop("before_send", 2)
    stats.drop("before_send", 4)
    _drop_lines(caplog)
    stats.report()  # a flush while both episodes go on: nothing to say yet
    assert _drop_lines(caplog) == []
    clock.now += 30
    stats.drop("before_send")  # before_send's episode goes on; network's goes quiet
    clock.now += 30
    stats.report()
    (network,) = _drop_lines(caplog)
    assert (
        network.getMessage() == "posthog-otel: 3 more event(s) dropped (network) in the last 60 s"
    )
    stats.close()  # shutdown: before_send's episode ends too, at INFO (it is no loss)
    (chosen,) = _drop_lines(caplog)
    assert chosen.levelno == logging.INFO
    assert (
        chosen.getMessage()
        == "posthog-otel: 5 more event(s) dropped (before_send) in the last 60 s"
    )
    stats.close()
    assert _drop_lines(caplog) == []


def test_the_metric_exporters_drops_are_logged_once_per_episode(caplog):
    """The first drop of a reason is logged; the rest of its run is one count, at the next
    drop after a quiet spell (which starts a new episode, logged again) or at shutdown."""
    import logging

    from posthog_otel._pipeline.metric_exporter import _counts
    from posthog_otel._pipeline.stats import QUIET
    from tests.support.server import FakeClock

    caplog.set_level(logging.WARNING, "posthog_otel")
    clock = FakeClock()
    counts = _counts(clock)
    counts.events_queued.add(10)
    for _ in range(3):
        counts.drop("network", 2)
        clock.now += 1
    clock.now += QUIET
    counts.drop("network", 1)
    counts.drop("http_503", 1)
    counts.drop("http_503", 1)
    counts.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5, lines
    assert "dropped 2 metric data point(s) because PostHog could not be reached" in lines[0]
    assert "4 more metric data point(s) dropped (network)" in lines[1]
    assert "dropped 1 metric data point(s) because PostHog could not be reached" in lines[2]
    assert "PostHog refused them with HTTP 503" in lines[3]
    assert "1 more metric data point(s) dropped (http_503)" in lines[4]  # at shutdown
    stats = counts.snapshot()
    assert dict(stats.dropped) == {"network": 7, "http_503": 2}
    assert stats.events_queued == 10
