"""``Connection.send_batch``'s contract with the worker: done by the deadline, and stop means now."""

from __future__ import annotations

import threading
import time

import pytest

from posthog_otel import Event, PostHogClient, TransportError
from posthog_otel._client.client import connection_of
from tests.support.server import API_KEY


@pytest.fixture
def connection(server):
    # A long per-attempt timeout and many retries: only the deadline or stop can end the call.
    with PostHogClient(API_KEY, server.url, timeout=30, retries=10, retry_delay=0.01) as client:
        yield connection_of(client)


def one_batch(connection):
    return next(connection.batches([Event("e", "u").encode()]))


def test_send_batch_returns_by_the_deadline_against_a_trickling_server(server, connection):
    server.faults.trickle(bytes_per_second=1, times=100, paths="/batch")
    started = time.monotonic()
    with pytest.raises(TransportError, match="timed out"):
        connection.send_batch(one_batch(connection), deadline=started + 1.5)
    elapsed = time.monotonic() - started
    # One trickled answer takes 13 s; 3 s is a hang guard for a loaded machine.
    assert 1.5 <= elapsed < 3.0, elapsed


def test_an_attempt_cut_off_by_its_timeout_is_retried_within_the_deadline(server):
    server.faults.trickle(bytes_per_second=1, times=1, paths="/batch")
    with PostHogClient(API_KEY, server.url, timeout=1.5, retries=3, retry_delay=0.01) as client:
        connection = connection_of(client)
        started = time.monotonic()
        result = connection.send_batch(one_batch(connection), deadline=started + 10)
    assert result.status == 200
    assert 1.5 <= time.monotonic() - started < 5  # one attempt cut off; a hang guard above
    assert len(server.requests.matching("/batch")) == 2
    # The server stored the event from the request we cut off too: the retry carried the
    # same uuid, so it is kept once (as PostHog keeps it) and counted as a repeat.
    (stored,) = server.events()
    assert server.repeats() == {stored["uuid"]: 1}


def test_stop_cuts_off_the_request_in_flight(server, connection):
    server.faults.trickle(bytes_per_second=1, times=100, paths="/batch")
    stop = threading.Event()
    stopped_at = []
    threading.Timer(0.3, lambda: (stopped_at.append(time.monotonic()), stop.set())).start()
    with pytest.raises(TransportError, match="stopping"):
        connection.send_batch(one_batch(connection), deadline=time.monotonic() + 30, stop=stop)
    late = time.monotonic() - stopped_at[0]
    assert late < 1.0, late  # about 0.05 s; 1 s guards against waiting out the 30 s deadline
    assert len(server.requests.matching("/batch")) == 1  # and no retry after a stop


def test_stop_ends_a_backoff(server, connection):
    server.faults.respond(503, times=100, paths="/batch")
    connection.policy = type(connection.policy)(retries=5, delay=20)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    result = connection.send_batch(one_batch(connection), deadline=started + 60, stop=stop)
    assert result.status == 503  # the last answer it had
    assert time.monotonic() - started < 5  # a hang guard: the backoff is 10 to 20 s


def test_nothing_is_sent_when_stop_is_already_set(server, connection):
    stop = threading.Event()
    stop.set()
    with pytest.raises(TransportError, match="stopping"):
        connection.send_batch(one_batch(connection), deadline=time.monotonic() + 5, stop=stop)
    assert server.requests.matching("/batch") == []
