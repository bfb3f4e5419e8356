"""Requests cut off at their deadline, or when asked to stop: one watchdog thread per process.

urllib3's timeouts bound each socket operation, not a request: a server that sends
one byte a second keeps every read short and the request alive for as long as it
likes. So every request runs under a ``Cutoff`` (a deadline on ``time.monotonic()``,
and optionally a stop event), and the transport attaches to it the connection the
request is using. When the deadline passes or the event is set, the watchdog
interrupts that connection (the transport shuts its socket), so the read blocked in
the requesting thread returns at once, whatever phase it was in: TLS handshake,
headers or body.

Why a thread, rather than reads that check the clock: a read blocked on a trickling
or silent socket cannot check anything until it returns, status line and headers are
read inside ``http.client``, and a stop must end a read already in progress. The
thread sleeps while no request is in flight, wakes at the earliest deadline, and
polls every ``TICK`` seconds only while a request with a stop event is in flight
(an ``Event`` cannot be waited on together with a clock). Connecting itself is not
interrupted (there is no socket to shut until it connects): the transport bounds it
with the socket's connect timeout, which never exceeds the time left.

One lock guards every cutoff and attachment, so a late cutoff never interrupts a
connection that another request has since taken from the pool.

The thread starts with the first pipeline or exporter (``start``, called by their
``Delivery``) or else the first request, and again in a forked child whose parent had
it: never first at interpreter exit, where Python 3.12.0-3.12.2 refuse to start a
thread. A request that cannot have it (a first request at exit there) runs unwatched,
bounded by its socket timeouts only.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

from posthog_otel import _forksafe

__all__ = ["WATCHDOG", "Cutoff", "Interruptible", "Watchdog"]

logger = logging.getLogger(__name__)

TICK = 0.05  # how often stop events are checked while a stoppable request is in flight
Reason = Literal["deadline", "stop"]


class Interruptible(Protocol):
    """What a cutoff can end: a connection that knows which request it carries."""

    cutoff: Cutoff | None

    def interrupt(self) -> None:
        """Make the blocked I/O of the request in progress fail now."""


class Cutoff:
    """One request's limit; ``reason`` says why it was cut off (``None``: it was not)."""

    __slots__ = ("_target", "deadline", "reason", "stop")

    def __init__(self, deadline: float, stop: threading.Event | None) -> None:
        self.deadline = deadline
        self.stop = stop
        self.reason: Reason | None = None
        self._target: Interruptible | None = None


class Watchdog:
    """Interrupts each watched request's connection at its deadline or stop."""

    def __init__(self) -> None:
        self._reset()
        _forksafe.register(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._active: set[Cutoff] = set()
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None

    def _after_fork(self) -> None:
        # The parent's thread does not exist here, and none of its requests are in flight;
        # a child whose parent needed one gets its own now, not first at its exit.
        had_thread = self._thread is not None
        self._reset()
        if had_thread:
            self.start()

    def start(self) -> None:
        """Start the thread if it is not running (it runs until the process ends)."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._thread is not None:
            return
        thread = threading.Thread(target=self._run, name="posthog-otel-watchdog", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # at interpreter exit on Python 3.12.0-3.12.2
            logger.debug("the watchdog cannot start now; requests rely on socket timeouts")
            return
        self._thread = thread

    @contextmanager
    def watch(self, deadline: float, stop: threading.Event | None = None) -> Iterator[Cutoff]:
        """Watch one request from entry to exit of the ``with`` block."""
        cutoff = Cutoff(deadline, stop)
        with self._lock:
            self._active.add(cutoff)
            self._start()
            earliest = deadline if stop is None else min(deadline, time.monotonic() + TICK)
            if earliest < self._wake_at:
                self._changed.notify()
        try:
            yield cutoff
        finally:
            with self._lock:
                self._active.discard(cutoff)
                target, cutoff._target = cutoff._target, None
                if target is not None and target.cutoff is cutoff:
                    target.cutoff = None

    def attach(self, cutoff: Cutoff, target: Interruptible) -> None:
        """``target`` now carries ``cutoff``'s request; interrupted at once if it is cut off
        already (attach again once a socket exists, to catch a cutoff while connecting)."""
        with self._lock:
            previous = cutoff._target
            if previous is not None and previous is not target and previous.cutoff is cutoff:
                previous.cutoff = None
            cutoff._target = target
            target.cutoff = cutoff
            if cutoff.reason is not None:
                _interrupt(target)

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                wake = math.inf
                for cutoff in self._active:
                    if cutoff.reason is not None:
                        continue
                    if cutoff.stop is not None and cutoff.stop.is_set():
                        self._cut(cutoff, "stop")
                    elif now >= cutoff.deadline:
                        self._cut(cutoff, "deadline")
                    else:
                        wake = min(wake, cutoff.deadline)
                        if cutoff.stop is not None:
                            wake = min(wake, now + TICK)
                self._wake_at = wake
                self._changed.wait(None if wake == math.inf else wake - now)

    def _cut(self, cutoff: Cutoff, reason: Reason) -> None:
        cutoff.reason = reason
        target = cutoff._target
        if target is not None and target.cutoff is cutoff:
            _interrupt(target)


def _interrupt(target: Interruptible) -> None:
    try:
        target.interrupt()
    except Exception:  # the watchdog must outlive any one connection
        logger.debug("could not interrupt a request", exc_info=True)


WATCHDOG = Watchdog()
"""The process's watchdog: one thread for every transport."""
