"""The bounded queue and the two background threads that empty it.

Application threads only append to a deque: never blocking, and a full queue
drops and counts. An *encoder* thread wakes every ``WAKE_AT`` items (or each
flush interval) and maps and encodes them at once into a compact batch buffer,
so ended spans are not kept alive while the network is slow (a long queue of
span objects costs the whole process memory and garbage-collection time). Full
or due batches go to an outbox that a *sender* thread delivers, so encoding
never waits on HTTP. Queued items plus events in the outbox stay under
``max_queue_size``.

Our own HTTP runs with instrumentation suppressed, so it makes no spans. After
``os.fork()`` the child starts empty with threads of its own; at interpreter
exit, whatever is queued is sent.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import weakref

from posthog_otel import _forksafe, _otel
from posthog_otel._client.batch import MAX_BATCH_BYTES, SealedBatch
from posthog_otel._pipeline.delivery import Delivery, Item
from posthog_otel._pipeline.stats import Counter, Stats

logger = logging.getLogger(__name__)

EXIT_TIMEOUT = 30.0
WAKE_AT = 64  # queued items that wake the encoder before the flush interval
MAX_BUFFER_BYTES = 16 * 1024 * 1024  # encoded events waiting to be sent


class BatchWorker:
    """Queue, encoder and sender; ``put`` is the only call on the application's hot path."""

    def __init__(
        self,
        delivery: Delivery,
        stats: Stats,
        *,
        max_queue_size: int = 10_000,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
        flush_interval: float = 1.0,
        export_timeout: float = 30.0,
        name: str = "posthog-otel",
    ) -> None:
        if max_queue_size < 1:
            raise ValueError("max_queue_size must be at least 1")
        if max_buffer_bytes < MAX_BATCH_BYTES:
            raise ValueError(f"max_buffer_bytes must be at least {MAX_BATCH_BYTES} (one request)")
        if flush_interval <= 0 or export_timeout <= 0:
            raise ValueError("flush_interval and export_timeout must be positive")
        self._delivery = delivery
        self._stats = stats
        self._max_queue_size = max_queue_size
        self._max_buffer_bytes = max_buffer_bytes
        self._batch_size = delivery.max_batch_events
        self._interval = flush_interval
        self._export_timeout = export_timeout
        self._name = name
        self._wake_at = min(WAKE_AT, self._batch_size)
        self._closed = False
        self._start()
        _LIVE.add(self)
        _forksafe.register(self)

    def _start(self) -> None:
        self._queue: collections.deque[Item] = collections.deque()
        self._accepted = Counter()
        self._processed = 0  # items whose events were all sent or dropped
        self._batch = self._delivery.open_batch()
        self._batched = 0  # items whose events are in the batch being filled
        self._batch_started = 0.0
        # Sealed batches and how many items each completes, for the sender.
        self._outbox: collections.deque[tuple[SealedBatch, int]] = collections.deque()
        self._outbox_events = 0
        self._outbox_bytes = 0
        self._room = threading.Event()  # the sender freed outbox space
        self._waiters: list[tuple[int, threading.Event]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._outbox_ready = threading.Event()
        self._stop = threading.Event()
        self._encoder_done = threading.Event()
        self._deadline: float | None = None
        self._encoder = threading.Thread(target=self._encode_loop, name=self._name, daemon=True)
        self._sender = threading.Thread(
            target=self._send_loop, name=self._name + "-sender", daemon=True
        )
        self._encoder.start()
        self._sender.start()

    # -- application threads ---------------------------------------------------------

    def put(self, item: Item) -> bool:
        """Queue ``item``; never blocks. ``False`` (and counted) when full or shut down."""
        queue = self._queue
        if self._closed:
            self._stats.drop("shutdown")
            return False
        if len(queue) >= self._max_queue_size:
            self._stats.drop("queue_full")
            return False
        queue.append(item)
        self._accepted.add_one()
        self._stats.events_queued.add_one()
        if len(queue) >= self._wake_at and not self._wake.is_set():
            self._wake.set()
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued before this call is sent or dropped."""
        target = self._accepted.value
        if self._processed >= target:
            return True
        if not self._sender.is_alive():
            return False
        done = threading.Event()
        with self._lock:
            self._waiters.append((target, done))
        if self._processed >= target:
            return True
        self._wake.set()
        return done.wait(timeout)

    def shutdown(self, timeout: float) -> bool:
        """Send what is queued within ``timeout`` seconds, then stop; idempotent."""
        if self._closed:
            return not self._sender.is_alive()
        self._closed = True
        self._deadline = time.monotonic() + timeout
        self._wake.set()
        self._sender.join(timeout)
        if self._sender.is_alive() or self._encoder.is_alive():
            self._stop.set()  # cut short any backoff; requests are bounded by the deadline
            self._outbox_ready.set()
            self._room.set()
            self._encoder.join(1.0)
            self._sender.join(1.0)
        with self._lock:
            left = len(self._queue) + len(self._batch) + self._outbox_events
            self._queue.clear()
            self._outbox.clear()
            self._outbox_events = self._outbox_bytes = 0
        self._stats.drop("shutdown", left, f"{left} still queued after {timeout:g} s")
        return not self._sender.is_alive()

    @property
    def queue_size(self) -> int:
        return len(self._queue) + self._outbox_events

    # -- the encoder thread --------------------------------------------------------------

    def _encode_loop(self) -> None:
        try:
            with _otel.suppressed():  # before_send may do I/O
                self._encode_forever()
        except Exception:  # pragma: no cover - a bug here must not pass silently
            logger.exception("posthog-otel's encoder stopped unexpectedly")
        finally:
            self._encoder_done.set()
            self._outbox_ready.set()

    def _encode_forever(self) -> None:
        while True:
            timed_out = not self._wake.wait(self._wait_time())
            self._wake.clear()
            self._encode_queued()
            sender_idle = not self._outbox
            full = len(self._batch) >= self._batch_size and sender_idle
            if full or self._waiters or self._closed or timed_out or self._due():
                self._finish_batch()
            if self._closed and (self._out_of_time() or not self._queue):
                return

    def _wait_time(self) -> float:
        if not self._batch:
            return self._interval
        return max(0.0, self._batch_started + self._interval - time.monotonic())

    def _due(self) -> bool:
        return bool(self._batch) and time.monotonic() - self._batch_started >= self._interval

    def _encode_queued(self) -> None:
        queue = self._queue
        delivery = self._delivery
        while queue:
            while self._outbox_bytes >= self._max_buffer_bytes and not self._out_of_time():
                self._room.wait(0.1)  # back-pressure: the sender is behind
                self._room.clear()
            if self._out_of_time():
                return
            encoded = delivery.encode_item(queue.popleft())
            for data in encoded:
                grown = len(self._batch) >= self._batch_size and not self._outbox
                if self._batch and (grown or not delivery.fits(self._batch, data)):
                    self._finish_batch()
                if not self._batch:
                    self._batch_started = time.monotonic()
                self._batch.add(data)
            self._batched += 1

    def _finish_batch(self) -> None:
        """Seal the batch and hand it (and the items it completes) to the sender."""
        if not self._batch and not self._batched:
            return
        sealed = self._batch.seal()
        with self._lock:
            self._outbox.append((sealed, self._batched))
            self._outbox_events += len(sealed)
            self._outbox_bytes += sealed.nbytes
        self._batch, self._batched = self._delivery.open_batch(), 0
        self._outbox_ready.set()

    # -- the sender thread ---------------------------------------------------------------

    def _send_loop(self) -> None:
        try:
            with _otel.suppressed():
                self._send_forever()
        except Exception:  # pragma: no cover - a bug here must not pass silently
            logger.exception("posthog-otel's sender stopped unexpectedly")

    def _send_forever(self) -> None:
        while True:
            self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox and not self._out_of_time():
                sealed, items = self._outbox[0]
                if sealed:
                    self._delivery.send(sealed, deadline=self._send_deadline(), stop=self._stop)
                with self._lock:
                    self._outbox.popleft()
                    self._outbox_events -= len(sealed)
                    self._outbox_bytes -= sealed.nbytes
                    self._processed += items
                    self._notify()
                self._room.set()
            self._wake.set()  # idle now: the encoder may send a batch it let grow
            if self._encoder_done.is_set() and (not self._outbox or self._out_of_time()):
                return

    def _send_deadline(self) -> float:
        deadline = time.monotonic() + self._export_timeout
        return deadline if self._deadline is None else min(deadline, self._deadline)

    def _out_of_time(self) -> bool:
        if self._stop.is_set():
            return True
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _notify(self) -> None:
        """Release flushes whose items are all done (called with the lock held)."""
        if not self._waiters:
            return
        waiting = []
        for target, done in self._waiters:
            if self._processed >= target:
                done.set()
            else:
                waiting.append((target, done))
        self._waiters = waiting

    def _after_fork(self) -> None:
        # The parent's queued items are the parent's to send; its locks and threads are gone.
        self._stats.after_fork()
        if not self._closed:
            self._start()


_LIVE: weakref.WeakSet[BatchWorker] = weakref.WeakSet()


def _send_at_exit() -> None:
    for worker in list(_LIVE):
        worker.shutdown(EXIT_TIMEOUT)


atexit.register(_send_at_exit)
