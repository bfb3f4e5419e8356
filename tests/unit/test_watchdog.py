"""The watchdog: which connection it interrupts, when, and which it must leave alone."""

from __future__ import annotations

import contextlib
import threading
import time

from posthog_otel._client.watchdog import Cutoff, Watchdog
from tests.support.server import wait_until


class Target:
    """A stand-in connection that records interruptions."""

    def __init__(self) -> None:
        self.cutoff: Cutoff | None = None
        self.interrupted = threading.Event()

    def interrupt(self) -> None:
        self.interrupted.set()


def test_a_request_past_its_deadline_is_interrupted():
    watchdog, target = Watchdog(), Target()
    with watchdog.watch(time.monotonic() + 0.2) as cutoff:
        watchdog.attach(cutoff, target)
        assert target.interrupted.wait(5.0)  # a hang guard; the deadline is 0.2 s away
    assert cutoff.reason == "deadline"
    assert target.cutoff is None  # released when the request ended


def test_a_stop_event_interrupts_long_before_the_deadline():
    watchdog, target, stop = Watchdog(), Target(), threading.Event()
    with watchdog.watch(time.monotonic() + 60, stop) as cutoff:
        watchdog.attach(cutoff, target)
        stop.set()
        assert target.interrupted.wait(5.0)  # checked every 50 ms; the deadline is 60 s away
    assert cutoff.reason == "stop"


def test_a_finished_request_is_never_interrupted():
    watchdog, target = Watchdog(), Target()
    with watchdog.watch(time.monotonic() + 0.05) as cutoff:
        watchdog.attach(cutoff, target)
    time.sleep(0.3)  # past the deadline: the watchdog must have nothing to do
    assert not target.interrupted.is_set()
    assert cutoff.reason is None


def test_a_connection_taken_over_by_another_request_is_left_alone():
    # Request A's connection went back to the pool and request B now uses it: A's
    # deadline must not cut B off.
    watchdog, connection = Watchdog(), Target()
    with (
        watchdog.watch(time.monotonic() + 0.1) as first,
        watchdog.watch(time.monotonic() + 60) as second,
    ):
        watchdog.attach(first, connection)
        watchdog.attach(second, connection)
        wait_until(lambda: first.reason == "deadline", timeout=5.0)
        assert not connection.interrupted.is_set()
        assert connection.cutoff is second


def test_attaching_after_the_cutoff_interrupts_at_once():
    # A deadline that passed while the socket was still connecting: the new socket is shut
    # as soon as it is attached.
    watchdog, target = Watchdog(), Target()
    with watchdog.watch(time.monotonic() + 0.05) as cutoff:
        wait_until(lambda: cutoff.reason is not None, timeout=5.0)
        watchdog.attach(cutoff, target)
        assert target.interrupted.is_set()


def test_many_concurrent_requests_each_get_their_own_deadline():
    watchdog = Watchdog()
    targets = [Target() for _ in range(20)]
    started = time.monotonic()
    with contextlib.ExitStack() as requests:
        never = requests.enter_context(watchdog.watch(started + 60))
        watchdog.attach(never, targets[0])
        for i, target in enumerate(targets[1:], start=1):
            watchdog.attach(requests.enter_context(watchdog.watch(started + 0.02 * i)), target)
        for target in targets[1:]:
            assert target.interrupted.wait(5.0)  # a hang guard; the last deadline is 0.4 s
        assert not targets[0].interrupted.is_set()


def test_a_request_runs_unwatched_where_no_thread_can_start(monkeypatch):
    # Python 3.12.0-3.12.2 at interpreter exit: Thread.start raises RuntimeError.
    def refuse(self):
        raise RuntimeError("can't create new thread at interpreter shutdown")

    watchdog, target = Watchdog(), Target()
    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        with watchdog.watch(time.monotonic() + 60) as cutoff:  # no exception: unwatched
            watchdog.attach(cutoff, target)
    assert cutoff.reason is None and not target.interrupted.is_set()
    watchdog.start()  # once threads can start again, it does
    with watchdog.watch(time.monotonic() + 0.1) as cutoff:
        watchdog.attach(cutoff, target)
        assert target.interrupted.wait(5.0)
