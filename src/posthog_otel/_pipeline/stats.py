"""Counters for the pipeline, and the one warning per drop reason.

Each count has one owner. Whoever accepts an item counts it queued (the worker's
``put``, the exporter's ``export``), and the encoder corrects that once the item
is mapped into its events; the encoder counts what mapping, ``before_send`` and
encoding drop; the sender counts what PostHog accepts or refuses; whoever holds
events when shutdown's time runs out counts them as ``shutdown``. So every
accepted event is counted once, as sent or dropped, and ``in_flight`` is the rest.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

logger = logging.getLogger(__name__)

# Refused at the door: these were never queued, so they are not part of events_queued.
REFUSED = frozenset({"queue_full", "closed"})
DROP_REASONS = {
    "queue_full": "the queue was full (raise max_queue_size, or PostHog is too slow or down)",
    "closed": "they arrived after shutdown",
    "shutdown": "they were still waiting to be sent when shutdown's timeout ran out",
    "too_large": "they were too large for PostHog",
    "invalid": "an event could not be built or encoded (an unusable posthog.* tag, or "
    "before_send raised or returned something other than an event)",
    "network": "PostHog could not be reached after all retries",
    "before_send": "before_send returned None for them",
}


class Counter:
    """A counter any thread may add to; a lock keeps it exact on free-threaded Python too."""

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self._value += n

    @property
    def value(self) -> int:
        return self._value


class ThreadCounter:
    """A counter for the hooks every span and record passes through: each thread adds to
    a cell of its own, so no lock is shared on the hot path (and no update is lost on
    free-threaded Python). Reading sums the cells; a finished thread's cell is folded
    into the total, so a server that starts a thread per request keeps few cells."""

    def __init__(self) -> None:
        self.mine = threading.local()
        """A hook may bump ``mine.cell[0]`` itself; on ``AttributeError``, call ``add``."""
        self._lock = threading.Lock()
        self._cells: list[tuple[weakref.ref[threading.Thread], list[int]]] = []
        self._folded = 0

    def add(self, n: int = 1) -> None:
        try:
            self.mine.cell[0] += n
        except AttributeError:
            self.mine.cell = self._new_cell(n)

    def _new_cell(self, n: int) -> list[int]:
        cell = [n]
        with self._lock:
            live = []
            for thread, counted in self._cells:
                alive = thread()
                if alive is not None and alive.is_alive():
                    live.append((thread, counted))
                else:
                    self._folded += counted[0]
            live.append((weakref.ref(threading.current_thread()), cell))
            self._cells = live
        return cell

    @property
    def value(self) -> int:
        with self._lock:
            return self._folded + sum(counted[0] for _, counted in self._cells)


@dataclass(frozen=True)
class PipelineStats:
    """A snapshot of what a span processor or exporter has done since it started.

    Attributes:
        spans_seen: spans that ended while the processor was registered.
        logs_seen: log records emitted while a log processor was registered (or
            passed to a log exporter).
        events_queued: events accepted into the pipeline. A tagged span is counted
            once when it is queued, and corrected to the number of events it holds
            once it is mapped.
        events_sent: events PostHog accepted.
        retries: HTTP requests that were retried.
        dropped: events lost, by reason: ``queue_full`` and ``closed`` (refused
            at the door, never queued), ``shutdown``, ``too_large``, ``invalid``,
            ``network``, ``http_<status>``; plus ``before_send``, the events your
            ``before_send`` chose to drop.
        queue_size: items (spans, log records, events) waiting to be encoded; at
            most ``max_queue_size``.
        buffered_bytes: encoded events waiting to be sent, compressed when gzip
            is on; at most ``max_buffer_bytes`` plus one batch.
        trimmed: properties cut or left out so their event could still go, by
            reason (``string_length``, ``depth``, ``event_size``, ...: see ``_limits``);
            these events were not lost and are not in ``dropped``.
    """

    spans_seen: int = 0
    logs_seen: int = 0
    events_queued: int = 0
    events_sent: int = 0
    retries: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)
    queue_size: int = 0
    buffered_bytes: int = 0
    trimmed: Mapping[str, int] = field(default_factory=dict)

    @property
    def dropped_total(self) -> int:
        """Events lost, whatever the reason (``before_send``'s choices are not losses)."""
        return sum(n for reason, n in self.dropped.items() if reason != "before_send")

    @property
    def in_flight(self) -> int:
        """Queued events not yet sent or dropped; 0 once a flush or shutdown completes."""
        settled = sum(n for reason, n in self.dropped.items() if reason not in REFUSED)
        return self.events_queued - self.events_sent - settled


class Stats:
    """The live counters behind ``PipelineStats``."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.spans_seen = ThreadCounter()
        self.logs_seen = ThreadCounter()
        self.events_queued = Counter()
        self._lock = threading.Lock()
        self._sent = 0
        self._retries = 0
        self._dropped: dict[str, int] = {}
        self._trimmed: dict[str, int] = {}

    def after_fork(self) -> None:
        """A forked child counts from zero (its parent's events are the parent's)."""
        self._reset()

    def sent(self, n: int) -> None:
        with self._lock:
            self._sent += n

    def retried(self) -> None:
        with self._lock:
            self._retries += 1

    def trimmed(self, counts: Mapping[str, int]) -> None:
        """Count properties cut to fit the bounds (their events still go)."""
        with self._lock:
            for reason, n in counts.items():
                self._trimmed[reason] = self._trimmed.get(reason, 0) + n

    def drop(self, reason: str, n: int = 1, detail: str = "") -> None:
        """Count ``n`` lost events; the first loss for each reason is logged."""
        if n <= 0:
            return
        with self._lock:
            first = reason not in self._dropped
            self._dropped[reason] = self._dropped.get(reason, 0) + n
        if first:
            why = DROP_REASONS.get(reason) or _http_reason(reason)
            level = logging.INFO if reason == "before_send" else logging.WARNING
            logger.log(
                level,
                "posthog-otel dropped %d event(s) because %s%s. Further drops for this reason "
                "are counted in stats() without logging.",
                n,
                why,
                f" ({detail})" if detail else "",
            )

    def snapshot(
        self, queue_size: int = 0, buffered_bytes: int = 0, accepted: int = 0
    ) -> PipelineStats:
        """The counters now; ``accepted``: items a worker took (it counts them under its own
        lock, so ``put`` takes one lock, not two)."""
        with self._lock:
            sent, retries, dropped = self._sent, self._retries, dict(self._dropped)
            trimmed = dict(self._trimmed)
        return PipelineStats(
            spans_seen=self.spans_seen.value,
            logs_seen=self.logs_seen.value,
            events_queued=self.events_queued.value + accepted,
            events_sent=sent,
            retries=retries,
            dropped=MappingProxyType(dropped),
            queue_size=queue_size,
            buffered_bytes=buffered_bytes,
            trimmed=MappingProxyType(trimmed),
        )


def _http_reason(reason: str) -> str:
    if reason.startswith("http_"):
        return f"PostHog refused them with HTTP {reason[5:]}"
    return reason
