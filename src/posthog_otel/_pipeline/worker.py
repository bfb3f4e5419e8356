"""The bounded queue and the two background threads that empty it.

One lock and one condition guard all shared state; every change happens under
the lock and every wait re-checks what it waits for::

    RUNNING ──shutdown(timeout)──> DRAINING ──everything sent, or the deadline──> STOPPED

- ``put`` (application threads) queues an item while RUNNING, else refuses and
  counts it (``closed``, or ``queue_full`` past ``max_queue_size`` items, or, at the
  default, past ``MAX_QUEUE_BYTES`` of the items' estimated size: see ``item_bytes``).
  It never waits for more than the lock.
- The *encoder* takes queued items in chunks and, outside the lock, maps and
  encodes them into an open batch. A full or due batch goes to the outbox as it
  is. When the outbox holds ``max_buffer_bytes`` the encoder waits, the queue
  fills and ``put`` refuses: memory stays bounded however slow PostHog is.
- The *sender*, outside the lock, seals the batches waiting (see the outbox below: who
  compresses, and why not the encoder) and sends the oldest; then it marks its
  items done, waking ``flush`` waiters.
- ``shutdown`` moves to DRAINING (the encoder hands over what is left, the sender
  sends it) and waits, at most its timeout, for STOPPED. The thread waiting there
  enforces the deadline itself (no timer thread): at the deadline it cuts off the
  request in flight and any backoff (``stop``), flushes waiting for the rest
  return ``False``, and it waits up to ``SETTLE`` more while whoever holds items
  counts them as ``shutdown`` (the encoder its queue and batch, the sender the
  outbox). So the counters are settled when ``shutdown`` returns, and once both
  threads have ended nothing of ours refers to the worker.

The lock is re-entrant so that a signal handler interrupting ``put`` can still
flush (see ``signals``). Our own HTTP runs with instrumentation suppressed. A
forked child starts empty, with threads and counters of its own.

The outbox holds batches on their way to the sender: in order, the bytes they hold,
compressed once. A batch joins open, as the encoder filled it, and is sealed (compressed to about a
tenth) by whichever thread reaches it first: the sender before each send, or the
encoder when the outbox is full and it would wait anyway. Compressing releases the
GIL, and a thread winning it back from a busy application can wait tens of
milliseconds: an encoder sealing every batch itself let a burst overflow the queue
(``benchmarks/e2e.py``). Guarded by the worker's lock.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol, cast

from posthog_otel import _forksafe, _otel
from posthog_otel._client.batch import PIPELINE_BATCH_BYTES
from posthog_otel._limits import MAX_QUEUE_BYTES, MAX_QUEUE_ITEMS
from posthog_otel._mapping.logs import LogItem
from posthog_otel._mapping.otlp import LogRecordItem
from posthog_otel._pipeline import metrics
from posthog_otel._pipeline.stats import Stats

logger = logging.getLogger(__name__)

EXIT_TIMEOUT = 30.0  # at interpreter exit, what is queued gets this long to be sent
WAKE_AT = 64  # queued items that wake the encoder before the flush interval
CHUNK = 256  # items the encoder takes from the queue at a time
MAX_BUFFER_BYTES = 16 * 1024 * 1024  # encoded events waiting to be sent
SETTLE = 1.0  # after the deadline's cut-off, how long shutdown waits for the count to settle

RUNNING, DRAINING, STOPPED = "running", "draining", "stopped"

# What a queued item holds, in bytes, as measured with tracemalloc (CPython 3.11, values
# of a few dozen characters each): a captured event's dict about 545 plus 83 per property;
# an SDK span about 2,800 plus 82 per attribute; each of its span events about as much as
# a captured event. Rounded up; a string value adds its length.
_EVENT_BYTES = 576
_SPAN_BYTES = 2_816
_VALUE_BYTES = 96
_SPAN_EVENT_BYTES = _EVENT_BYTES + 8 * _VALUE_BYTES


def item_bytes(item: Any) -> int:
    """About how many bytes ``item`` holds while queued: from its counts of values, plus
    the length of its string values (one long string must not pass as a short one), so
    cheap enough for ``put`` (no walk into nested values)."""
    kind = type(item)
    held: Any = item  # one of the Item shapes, told apart by its exact type
    if kind is dict:
        props = held.get("properties")
        return _EVENT_BYTES + (_values_bytes(props) if type(props) is dict else 0)
    if kind is LogItem:
        return _SPAN_BYTES + _values_bytes(held.span_attributes or {})
    if kind is LogRecordItem:  # send_logs: a record as the SDK holds it
        return _SPAN_BYTES + _values_bytes(held.record.log_record.attributes or {})
    extra = 0
    span = held
    if kind is tuple:
        span = held[0]
        extra = _VALUE_BYTES * len(held[1] or ())
        if len(held) > 2:
            extra += _SPAN_EVENT_BYTES * len(held[2])
    access = _otel.ACCESS
    try:  # C-implemented readers: no Python frame on the caller's thread
        attributes, events = access.fast_attributes(span), access.fast_events(span)
    except AttributeError:
        attributes, events = access.attributes(span), access.events(span)
    return _SPAN_BYTES + extra + _values_bytes(attributes) + _SPAN_EVENT_BYTES * len(events)


def _values_bytes(values: Any) -> int:
    """``_VALUE_BYTES`` a value, and a string's length beyond that."""
    size = _VALUE_BYTES * len(values)
    for value in values.values():
        if type(value) is str:
            size += len(value)
    return size


class Sealed(Protocol):
    """A batch ready to send: its items' count and the bytes it holds."""

    def __len__(self) -> int: ...

    @property
    def nbytes(self) -> int: ...


class Batch(Sealed, Protocol):
    """A batch being filled by the encoder (events' JSON, or spans and log records)."""

    def add(self, encoded: Any) -> None: ...

    def append(self, encoded: Any, max_events: int, limit: int) -> bool:
        """Add ``encoded`` unless the batch is full (``max_events``, or ``limit`` bytes
        where the batch knows its bytes); ``False``: not added."""
        ...

    def seal(self) -> Sealed: ...


class Deliverer(Protocol):
    """What the worker asks of its delivery (``Delivery`` for events, ``OtlpDelivery``
    for spans and log records): batches, an item's encoded parts, one send."""

    max_batch_events: int

    def open_batch(self) -> Batch: ...

    def encode_item(self, item: Any) -> list[Any]: ...

    def send(self, batch: Any, *, deadline: float, stop: threading.Event) -> bool: ...


class BatchWorker:
    """Queue, encoder and sender; ``put`` is the only call on the application's hot path."""

    def __init__(
        self,
        delivery: Deliverer,
        stats: Stats,
        *,
        max_queue_size: int | None = None,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
        flush_interval: float = 1.0,
        export_timeout: float = 30.0,
        name: str = "posthog-otel",
        clock: Callable[[], float] = time.monotonic,
        wake_at: int = WAKE_AT,
    ) -> None:
        self._delivery = delivery
        self._stats = stats
        # At the default, the queue is bounded by bytes (estimated), within a generous
        # count; a size given is a count, as it always was.
        self._max_queue_size = MAX_QUEUE_ITEMS if max_queue_size is None else max_queue_size
        self._max_queue_bytes = MAX_QUEUE_BYTES if max_queue_size is None else None
        self._max_buffer_bytes = max_buffer_bytes
        self._batch_size = delivery.max_batch_events
        self._interval = flush_interval
        self._export_timeout = export_timeout
        self._name = name
        self._clock = clock
        self._wake_at = min(wake_at, self._batch_size, self._max_queue_size)
        self._start(RUNNING)
        _LIVE.add(self)
        metrics.watch(self)  # its queue in posthog_otel.queue.size
        _forksafe.register(self)

    def _start(self, state: str) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._state = state
        self._deadline: float | None = None
        self._stop = threading.Event()  # set at the deadline: cuts off backoff and requests
        # Shared, under the lock. Items are counted from put() to done.
        self._queue: collections.deque[Any] = collections.deque()
        # Items in the chunk the encoder is encoding (they still count as queued).
        self._items_encoding = 0
        self._queued_bytes = 0  # item_bytes of the queue and that chunk (bounded by bytes)
        self._accepted = 0  # items put() accepted
        self._items_to_sender_total = 0  # items handed to the sender (in the outbox, or done)
        self._done = 0  # items whose events were all sent or dropped
        self._given_up_at: int | None = None  # _done when shutdown first gave up on items
        self._flush_wanted = 0  # the highest item count a flush waits for
        self._outbox = Outbox(self._cond)
        self._encoder_done = state != RUNNING
        # The encoder's own, never touched by another thread.
        self._batch: Batch = self._delivery.open_batch()
        self._batched = 0  # items whose events are in the open batch
        self._batch_started = 0.0
        self._backlog = False  # the last chunk left items queued: take more without waiting
        if state == RUNNING:
            for step, suffix in ((self._encode_once, ""), (self._send_once, "-sender")):
                name = self._name + suffix
                threading.Thread(target=self._run, args=(step,), name=name, daemon=True).start()

    # -- application threads ---------------------------------------------------------

    def put(self, item: Any) -> bool:
        """Queue ``item``; never blocks. ``False`` (and counted) when full or shut down."""
        limit = self._max_queue_bytes
        size = 0 if limit is None else item_bytes(item)
        with self._lock:
            if self._state != RUNNING:
                refused = "closed"
            elif len(self._queue) + self._items_encoding >= self._max_queue_size or (
                limit is not None and self._queued_bytes + size > limit
            ):
                refused = "queue_full"
            else:
                self._queue.append(item)
                self._queued_bytes += size
                self._accepted += 1
                if len(self._queue) == self._wake_at:
                    self._cond.notify_all()
                refused = ""
        if refused:
            self._stats.drop(refused)
            return False
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until everything accepted before this call is sent or dropped; ``False``
        if ``timeout`` ran out first or shutdown gave up on some of it."""
        with self._cond:
            target = self._accepted
            if self._done < target and self._given_up_at is None:
                self._flush_wanted = max(self._flush_wanted, target)
                self._cond.notify_all()
                self._cond.wait_for(
                    lambda: self._done >= target or self._given_up_at is not None, timeout
                )
            return self._done >= target and (
                self._given_up_at is None or self._given_up_at >= target
            )

    def shutdown(self, timeout: float) -> bool:
        """Send what is queued within ``timeout`` seconds, then stop; ``True`` if every item
        was sent or dropped in time. Returns within ``timeout`` (plus at most ``SETTLE``
        for the cut-off to be counted) whatever PostHog does; idempotent."""
        self.begin_shutdown(self._clock() + timeout)
        return self.wait_stopped()

    def begin_shutdown(self, deadline: float) -> None:
        """Refuse new items and drain until ``deadline`` (``clock`` scale); returns at once.
        Whoever then calls ``wait_stopped`` enforces the deadline."""
        with self._cond:
            if self._state == STOPPED:
                return
            if self._deadline is not None and self._deadline <= deadline:
                return
            self._state = DRAINING
            self._deadline = deadline
            self._cond.notify_all()

    def wait_stopped(self, settle: float = SETTLE) -> bool:
        """Wait for STOPPED until the shutdown deadline; there, cut off what is left and
        wait up to ``settle`` seconds more for the threads to count it. ``True`` if every
        item was settled before the deadline. Ends the drop episodes (their counts logged)."""
        with self._cond:
            while self._state != STOPPED and self._deadline is not None:
                left = self._deadline - self._clock()
                if left <= 0:
                    self._cut_off()
                    self._cond.wait_for(lambda: self._state == STOPPED, settle)
                    break
                self._cond.wait(left)
            settled = self._state == STOPPED and self._given_up_at is None
        if self._deadline is not None:
            self._stats.close()
        return settled

    def _cut_off(self) -> None:
        """At the deadline (lock held): shutdown gives up on whatever is not done (flushes
        waiting for it return ``False`` now); the request in flight and backoff end."""
        if self._done < self._accepted and self._given_up_at is None:
            self._given_up_at = self._done
        self._stop.set()
        self._cond.notify_all()

    @property
    def state(self) -> str:
        """``running``, ``draining`` or ``stopped`` (both threads have finished)."""
        return self._state

    @property
    def accepted(self) -> int:
        """Items ``put`` accepted: each counts as one queued event until it is mapped."""
        return self._accepted

    @property
    def queue_size(self) -> int:
        """Items waiting to be encoded (at most ``max_queue_size``)."""
        return len(self._queue) + self._items_encoding

    @property
    def queued_bytes(self) -> int:
        """The estimated bytes of the items waiting to be encoded (counted only when the
        queue is bounded by bytes, at the default ``max_queue_size``)."""
        return self._queued_bytes

    @property
    def buffered_bytes(self) -> int:
        """Encoded events waiting to be sent."""
        return self._outbox.nbytes

    # -- the background threads: their loop, the encoder -------------------------------

    def _run(self, step: Callable[[], bool]) -> None:
        """A thread's loop: ``step`` until it says done. Our HTTP and ``before_send``'s
        I/O are not traced."""
        with _otel.suppressed():
            while True:
                try:
                    if step():
                        return
                except Exception:  # a bug of ours: say so, never die
                    logger.exception("%s hit an unexpected error", threading.current_thread().name)
                    with self._cond:
                        self._cond.wait(0.1)

    def _encode_once(self) -> bool:
        """Wait for work, encode a chunk, hand the batch over if due; ``True`` when done."""
        with self._cond:
            woke = self._backlog or self._cond.wait_for(self._encoder_has_work, self._wait_time())
            draining = self._state != RUNNING
            if draining and self._out_of_time():
                self._give_up_encoding()
                return True
            chunk = [self._queue.popleft() for _ in range(min(CHUNK, len(self._queue)))]
            self._items_encoding = len(chunk)
            flushing = self._flush_wanted > self._items_to_sender_total
        # The chunk's bytes leave the count once it is encoded, as its items do.
        chunk_bytes = 0 if self._max_queue_bytes is None else sum(map(item_bytes, chunk))
        outbox, room = self._outbox, self._max_buffer_bytes
        for index, item in enumerate(chunk):
            if draining and self._out_of_time():
                self._give_up_encoding(len(chunk) - index)
                return True
            if outbox.nbytes >= room:  # read without the lock: a stale read lets in one more
                self._wait_for_room()
            self._add(item)
        with self._cond:
            self._items_encoding = 0
            more = self._backlog = bool(self._queue)
            # Never below zero, and zero once the queue is empty, should an item's
            # estimate have changed while it waited.
            self._queued_bytes = max(0, self._queued_bytes - chunk_bytes) if more else 0
        full = len(self._batch) >= self._batch_size
        if full or (not more and (flushing or draining or not woke or self._due())):
            self._hand_over()
        if draining and not more:
            with self._cond:
                self._encoder_done = True
                self._cond.notify_all()
            return True
        return False

    def _encoder_has_work(self) -> bool:
        return (
            self._state != RUNNING
            or len(self._queue) >= self._wake_at
            or self._flush_wanted > self._items_to_sender_total
        )

    def _wait_time(self) -> float:
        if not self._batched:
            return self._interval
        return max(0.0, self._batch_started + self._interval - self._clock())

    def _due(self) -> bool:
        return bool(self._batched) and self._clock() - self._batch_started >= self._interval

    def _add(self, item: Any) -> None:
        """Map and encode one item into the open batch, handing it over first if it is full."""
        for data in self._delivery.encode_item(item):
            if not self._batch.append(data, self._batch_size, PIPELINE_BATCH_BYTES):
                self._hand_over()
                self._batch.add(data)
        if not self._batched:
            self._batch_started = self._clock()
        self._batched += 1

    def _wait_for_room(self) -> None:
        """Back-pressure: while the outbox is full, wait for the sender (or the deadline)."""
        if self._outbox.nbytes < self._max_buffer_bytes:
            return  # the usual case, read without the lock: a stale read lets in one more item
        self._outbox.seal_waiting()  # about to wait anyway: releasing the GIL costs nothing
        with self._cond:
            while self._outbox.nbytes >= self._max_buffer_bytes and not self._out_of_time():
                self._cond.wait(self._time_left(0.1))

    def _hand_over(self) -> None:
        """Hand the open batch (and the items it completes) to the sender."""
        if not self._batched:
            return
        with self._cond:
            self._outbox.append(self._batch, self._batched)
            self._items_to_sender_total += self._batched
            self._cond.notify_all()
        self._batch, self._batched = self._delivery.open_batch(), 0

    def _give_up_encoding(self, unencoded: int = 0) -> None:
        """At the deadline: count what the encoder holds or could still take as ``shutdown``."""
        with self._cond:
            queued = len(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            items = unencoded + queued + self._batched
            events = unencoded + queued + len(self._batch)
            self._items_encoding = 0
            self._settle(items, given_up=True)
            self._encoder_done = True
            self._cond.notify_all()
        self._stats.drop("shutdown", events, "still waiting to be encoded or sent")
        self._batch, self._batched = self._delivery.open_batch(), 0

    # -- the sender thread ---------------------------------------------------------------

    def _send_once(self) -> bool:
        """Compress what waits, send the oldest; ``True`` (and STOPPED) once nothing is left."""
        with self._cond:
            self._cond.wait_for(lambda: self._outbox or self._encoder_done)
            if not self._outbox:
                self._state = STOPPED
                self._cond.notify_all()
                return True
            oldest = self._outbox.oldest()
            late = self._out_of_time()
            deadline = self._clock() + self._export_timeout
            if self._deadline is not None:
                deadline = min(deadline, self._deadline)
        if not late:
            self._outbox.seal_waiting()
        with self._cond:
            batch = self._outbox.sealed(oldest)
        if late:
            self._stats.drop("shutdown", len(batch), "still waiting to be sent")
        elif batch:
            assert not oldest.open
            self._delivery.send(batch, deadline=deadline, stop=self._stop)
        with self._cond:
            self._outbox.remove_oldest()
            self._settle(oldest.items, given_up=late or self._stop.is_set())
            self._cond.notify_all()
        return False

    # -- shared helpers (called with the lock held) -----------------------------------

    def _settle(self, items: int, *, given_up: bool) -> None:
        if given_up and self._given_up_at is None:
            self._given_up_at = self._done
        self._done += items

    def _out_of_time(self) -> bool:
        if self._stop.is_set():
            return True
        return self._deadline is not None and self._clock() >= self._deadline

    def _time_left(self, at_most: float) -> float:
        if self._deadline is None:
            return at_most
        return max(0.0, min(at_most, self._deadline - self._clock()))

    def _after_fork(self) -> None:
        # The parent's items are the parent's to send; its lock and threads are gone here.
        self._stats.after_fork()
        self._start(RUNNING if self._state == RUNNING else STOPPED)


_LIVE: weakref.WeakSet[BatchWorker] = weakref.WeakSet()


def shutdown_all(timeout: float) -> None:
    """Drain every live worker at once, all within ``timeout`` seconds (then each is cut
    off, and all get one ``SETTLE`` together to count what they gave up)."""
    workers = list(_LIVE)
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.begin_shutdown(deadline)
    for worker in workers:
        worker.wait_stopped(settle=0.0)  # until stopped, or the deadline cut it off
    settled_by = time.monotonic() + SETTLE
    for worker in workers:
        worker.wait_stopped(settle=max(0.0, settled_by - time.monotonic()))


atexit.register(lambda: shutdown_all(EXIT_TIMEOUT))


@dataclasses.dataclass(slots=True)
class Outgoing:
    batch: Batch | Sealed
    items: int  # queued items whose events it completes
    sealing: bool = False  # a thread has claimed it and is compressing it
    open: bool = True  # as the encoder filled it: not sealed yet


class Outbox:
    """The batches, oldest first; ``nbytes`` is what they hold now (``max_buffer_bytes``)."""

    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond
        self._entries: collections.deque[Outgoing] = collections.deque()
        self.nbytes = 0

    def __bool__(self) -> bool:
        return bool(self._entries)

    def append(self, batch: Batch, items: int) -> None:
        """With the lock held."""
        self._entries.append(Outgoing(batch, items))
        self.nbytes += batch.nbytes

    def oldest(self) -> Outgoing:
        """With the lock held."""
        return self._entries[0]

    def remove_oldest(self) -> None:
        """With the lock held, once it was sent (or given up)."""
        self.nbytes -= self._entries.popleft().batch.nbytes

    def seal_waiting(self) -> None:
        """Without the lock: seal every open batch, each claimed first so none is sealed
        twice; waking the encoder as room frees."""
        while True:
            with self._cond:
                waiting = [
                    (entry, cast(Batch, entry.batch))  # open: a Batch
                    for entry in self._entries
                    if entry.open and not entry.sealing
                ]
                if not waiting:
                    return
                entry, batch = waiting[0]
                entry.sealing = True
            sealed = batch.seal()
            with self._cond:
                self.nbytes += sealed.nbytes - batch.nbytes
                entry.batch, entry.sealing, entry.open = sealed, False, False
                self._cond.notify_all()

    def sealed(self, entry: Outgoing) -> Batch | Sealed:
        """With the lock held: ``entry``'s batch once no other thread is sealing it."""
        self._cond.wait_for(lambda: not entry.sealing)
        return entry.batch
