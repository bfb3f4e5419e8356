"""Batches on their way to the sender: in order, the bytes they hold, compressed once.

A batch joins open, as the encoder filled it, and is sealed (compressed to about a
tenth) by whichever thread reaches it first: the sender before each send, or the
encoder when the outbox is full and it would wait anyway. Compressing releases the
GIL, and a thread winning it back from a busy application can wait tens of
milliseconds: an encoder sealing every batch itself let a burst overflow the queue
(``benchmarks/e2e.py``). Guarded by the worker's lock.
"""

from __future__ import annotations

import collections
import dataclasses
import threading

from posthog_otel._client.batch import OpenBatch, SealedBatch


@dataclasses.dataclass(slots=True)
class Outgoing:
    batch: OpenBatch | SealedBatch
    items: int  # queued items whose events it completes
    sealing: bool = False  # a thread has claimed it and is compressing it


class Outbox:
    """The batches, oldest first; ``nbytes`` is what they hold now (``max_buffer_bytes``)."""

    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond
        self._entries: collections.deque[Outgoing] = collections.deque()
        self.nbytes = 0

    def __bool__(self) -> bool:
        return bool(self._entries)

    def append(self, batch: OpenBatch, items: int) -> None:
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
                    (entry, entry.batch)
                    for entry in self._entries
                    if isinstance(entry.batch, OpenBatch) and not entry.sealing
                ]
                if not waiting:
                    return
                entry, batch = waiting[0]
                entry.sealing = True
            sealed = batch.seal()
            with self._cond:
                self.nbytes += sealed.nbytes - batch.nbytes
                entry.batch, entry.sealing = sealed, False
                self._cond.notify_all()

    def sealed(self, entry: Outgoing) -> SealedBatch | OpenBatch:
        """With the lock held: ``entry``'s batch once no other thread is sealing it."""
        self._cond.wait_for(lambda: not entry.sealing)
        return entry.batch
