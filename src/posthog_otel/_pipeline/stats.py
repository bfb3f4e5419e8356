"""Counters for the pipeline, drops logged once per episode, and the process's totals.

Each count has one owner. Whoever accepts an item counts it queued (the worker's
``put``, the exporter's ``export``), and the encoder corrects that once the item
is mapped into its events; the encoder counts what mapping, ``before_send`` and
encoding drop; the sender counts what PostHog accepts or refuses; whoever holds
events when shutdown's time runs out counts them as ``shutdown``. So every
accepted event is counted once, as sent or dropped, and ``in_flight`` is the rest.

Drops are logged once per *episode* and reason, as OpenTelemetry's ``DuplicateFilter``
does on a time window: the first drop after ``QUIET`` seconds without one is logged
with its reason; the rest are summed into one line ("N events dropped (reason) in the
last T s") when the episode ends (the next drop or log line after a quiet spell, a
flush, shutdown) or, while it goes on, once every ``QUIET`` seconds. An outage on
day 3 is logged however many blips day 1 had.

Every ``Stats`` also adds its sent, dropped and retried counts to the process's
``TOTALS``, which ``metrics`` offers as OpenTelemetry instruments: monotonic however
many pipelines come and go.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from posthog_otel import _forksafe

logger = logging.getLogger(__name__)

QUIET = 60.0  # seconds without a drop (of one reason) that end its episode

# Refused at the door: these were never queued, so they are not part of events_queued.
REFUSED = frozenset({"queue_full", "closed", "rate_limited"})
DROP_REASONS = {
    "queue_full": "the queue was full (raise max_queue_size, or PostHog is too slow or down)",
    "closed": "they arrived after shutdown",
    "shutdown": "they were still waiting to be sent when shutdown's timeout ran out",
    "too_large": "they were too large for PostHog",
    "invalid": "an event could not be built or encoded (an unusable posthog.* tag, or "
    "before_send raised or returned something other than an event)",
    "network": "PostHog could not be reached after all retries",
    "before_send": "before_send returned None for them",
    "rate_limited": "more uncaught exceptions of one type than exception autocapture's "
    "token bucket allows (a crash loop)",
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

    def reset(self) -> None:
        """Zero, in a forked child (a fresh lock: the parent's may be held forever)."""
        self._lock = threading.Lock()
        self._value = 0


class ThreadCounter:
    """Counters for the hooks every span, record or flag read passes through: each thread
    adds to a cell of its own (``width`` counts), so no lock is shared on the hot path
    (and no update is lost on free-threaded Python). Reading sums the cells; a finished
    thread's cell is folded into the totals, so a server that starts a thread per request
    keeps few cells."""

    def __init__(self, width: int = 1) -> None:
        self.mine = threading.local()
        """A hook may bump ``mine.cell[0]`` itself; on ``AttributeError``, call ``add``."""
        self._width = width
        self._lock = threading.Lock()
        self._cells: list[tuple[weakref.ref[threading.Thread], list[int]]] = []
        self._folded = [0] * width

    def add(self, n: int = 1, slot: int = 0) -> None:
        try:
            self.mine.cell[slot] += n
        except AttributeError:
            self._new_cell()[slot] += n

    def _new_cell(self) -> list[int]:
        cell = self.mine.cell = [0] * self._width
        with self._lock:
            live = []
            for thread, counted in self._cells:
                alive = thread()
                if alive is not None and alive.is_alive():
                    live.append((thread, counted))
                else:
                    self._folded = [a + b for a, b in zip(self._folded, counted, strict=True)]
            live.append((weakref.ref(threading.current_thread()), cell))
            self._cells = live
        return cell

    def totals(self) -> tuple[int, ...]:
        """Every count so far, by slot."""
        with self._lock:
            cells = [self._folded, *(counted for _, counted in self._cells)]
            return tuple(sum(c[i] for c in cells) for i in range(self._width))

    @property
    def value(self) -> int:
        return self.totals()[0]

    def reset(self) -> None:
        """Zero, in a forked child, keeping ``mine`` and the cells: a hook holds ``mine``,
        and the forking thread's cell lives on in it (replacing the counter would leave
        that hook counting into a cell nobody reads)."""
        self.fresh_lock()
        for _, counted in self._cells:
            counted[:] = [0] * self._width
        self._folded = [0] * self._width

    def fresh_lock(self) -> None:
        """In a forked child: a lock of its own (the parent's may be held forever)."""
        self._lock = threading.Lock()


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
        unmapped: spans that look like GenAI (a model or provider attribute of a GenAI
            convention) but gave no LLM analytics event, by reason:
            ``genai_no_operation`` (no operation name or span kind),
            ``genai_unknown_kind`` (an OpenInference span kind we do not map). The
            first of each reason is logged at INFO.
        traces: the spans sent to ``/i/v1/traces`` with ``send_traces`` (counted
            apart from events: see ``StreamStats``); zeros when it is off.
        logs: the log records sent to ``/i/v1/logs`` with ``send_logs``.
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
    unmapped: Mapping[str, int] = field(default_factory=dict)
    traces: StreamStats = field(default_factory=lambda: StreamStats())
    logs: StreamStats = field(default_factory=lambda: StreamStats())

    @property
    def dropped_total(self) -> int:
        """Events lost, whatever the reason (``before_send``'s choices are not losses)."""
        return sum(n for reason, n in self.dropped.items() if reason != "before_send")

    @property
    def in_flight(self) -> int:
        """Queued events not yet sent or dropped; 0 once a flush or shutdown completes."""
        settled = sum(n for reason, n in self.dropped.items() if reason not in REFUSED)
        return self.events_queued - self.events_sent - settled


@dataclass(frozen=True)
class StreamStats:
    """What one OTLP stream (spans to ``/i/v1/traces``, or log records to ``/i/v1/logs``)
    has done: ``stats().traces`` and ``stats().logs``. Counted as events are, apart from them.

    Attributes:
        queued: spans (or records) accepted into the stream's queue.
        sent: spans (or records) PostHog accepted.
        retries: HTTP requests that were retried.
        dropped: spans (or records) lost, by the reasons of ``PipelineStats.dropped``.
        queue_size: items waiting to be encoded; at most ``max_queue_size``.
        buffered_bytes: encoded items waiting to be sent.
    """

    queued: int = 0
    sent: int = 0
    retries: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)
    queue_size: int = 0
    buffered_bytes: int = 0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def in_flight(self) -> int:
        """Queued items not yet sent or dropped; 0 once a flush or shutdown completes."""
        settled = sum(n for reason, n in self.dropped.items() if reason not in REFUSED)
        return self.queued - self.sent - settled


class Stats:
    """The live counters behind ``PipelineStats``; ``clock`` times the drop episodes,
    ``item`` names what is counted in log lines; with ``totals`` (not for an OTLP stream)
    the counts also go to the process's ``TOTALS`` (the event metrics)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        item: str = "event",
        totals: bool = True,
    ) -> None:
        self._clock = clock
        self._item = item
        self._totals = TOTALS if totals else None
        self.spans_seen = ThreadCounter()
        self.logs_seen = ThreadCounter()
        self.events_queued = Counter()
        self._fresh()

    def _fresh(self) -> None:
        self._lock = threading.Lock()
        self._sent = 0
        self._retries = 0
        self._dropped: dict[str, int] = {}
        self._trimmed: dict[str, int] = {}
        self._unmapped: dict[str, int] = {}
        self._episodes: dict[str, _Episode] = {}

    def after_fork(self) -> None:
        """A forked child counts from zero (its parent's events are the parent's), in the
        same counter objects: the hooks hold them."""
        self.spans_seen.reset()
        self.logs_seen.reset()
        self.events_queued.reset()
        self._fresh()

    def sent(self, n: int) -> None:
        with self._lock:
            self._sent += n
        if self._totals is not None:
            self._totals.add_sent(n)

    def retried(self) -> None:
        with self._lock:
            self._retries += 1
        if self._totals is not None:
            self._totals.add_retry()

    def trimmed(self, counts: Mapping[str, int]) -> None:
        """Count properties cut to fit the bounds (their events still go)."""
        with self._lock:
            for reason, n in counts.items():
                self._trimmed[reason] = self._trimmed.get(reason, 0) + n

    def unmapped(self, counts: Mapping[str, int]) -> None:
        """Count GenAI-looking spans that gave no event; log each reason the first time."""
        first = []
        with self._lock:
            for reason, n in counts.items():
                if reason not in self._unmapped:
                    first.append(reason)
                self._unmapped[reason] = self._unmapped.get(reason, 0) + n
        for reason in first:
            logger.info(
                "posthog-otel: a span that looks like GenAI gave no LLM analytics event (%s); "
                "stats().unmapped counts them",
                reason,
            )

    def drop(self, reason: str, n: int = 1, detail: str = "") -> None:
        """Count ``n`` lost events; the first of an episode is logged (see the module)."""
        if n <= 0:
            return
        now = self._clock()
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + n
            summaries = self._ended(now)
            episode = self._episodes.get(reason)
            if episode is None:
                self._episodes[reason] = _Episode(now)
            else:
                episode.last = now
                episode.unlogged += n
                if now - episode.since >= QUIET:  # still going on: one line per QUIET
                    summaries.append((reason, episode.unlogged, now - episode.since))
                    episode.since, episode.unlogged = now, 0
        if self._totals is not None:
            self._totals.add_dropped(reason, n)
        _log_summaries(summaries, self._item)
        if episode is None:
            why = DROP_REASONS.get(reason) or _http_reason(reason)
            logger.log(
                _level(reason),
                "posthog-otel dropped %d %s(s) because %s%s. Further drops for this reason "
                "are counted in stats() and logged as one count when they stop.",
                n,
                self._item,
                why,
                f" ({detail})" if detail else "",
            )

    def report(self) -> None:
        """At a flush: log the counts of episodes that have gone quiet."""
        with self._lock:
            summaries = self._ended(self._clock())
        _log_summaries(summaries, self._item)

    def close(self) -> None:
        """At shutdown: end every episode, logging what it dropped since its first line."""
        now = self._clock()
        with self._lock:
            summaries = [
                (reason, episode.unlogged, now - episode.since)
                for reason, episode in self._episodes.items()
                if episode.unlogged
            ]
            self._episodes.clear()
        _log_summaries(summaries, self._item)

    def _ended(self, now: float) -> list[tuple[str, int, float]]:
        """Remove the episodes quiet for ``QUIET`` seconds; their unlogged counts (lock held)."""
        summaries = []
        for reason, episode in list(self._episodes.items()):
            if now - episode.last >= QUIET:
                del self._episodes[reason]
                if episode.unlogged:
                    summaries.append((reason, episode.unlogged, now - episode.since))
        return summaries

    def snapshot(
        self, queue_size: int = 0, buffered_bytes: int = 0, accepted: int = 0
    ) -> PipelineStats:
        """The counters now; ``accepted``: items a worker took (it counts them under its own
        lock, so ``put`` takes one lock, not two)."""
        with self._lock:
            sent, retries, dropped = self._sent, self._retries, dict(self._dropped)
            trimmed = dict(self._trimmed)
            unmapped = dict(self._unmapped)
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
            unmapped=MappingProxyType(unmapped),
        )

    def stream_snapshot(
        self, queue_size: int = 0, buffered_bytes: int = 0, accepted: int = 0
    ) -> StreamStats:
        """The counters now, as an OTLP stream's (see ``snapshot``)."""
        with self._lock:
            sent, retries, dropped = self._sent, self._retries, dict(self._dropped)
        return StreamStats(
            queued=self.events_queued.value + accepted,
            sent=sent,
            retries=retries,
            dropped=MappingProxyType(dropped),
            queue_size=queue_size,
            buffered_bytes=buffered_bytes,
        )


class _Episode:
    """A run of drops of one reason: when its window began, its last drop, and how many
    events since the window began no log line has counted yet."""

    __slots__ = ("last", "since", "unlogged")

    def __init__(self, now: float) -> None:
        self.since = self.last = now
        self.unlogged = 0


def _log_summaries(summaries: list[tuple[str, int, float]], item: str = "event") -> None:
    for reason, n, seconds in summaries:
        logger.log(
            _level(reason),
            "posthog-otel: %d more %s(s) dropped (%s) in the last %.0f s",
            n,
            item,
            reason,
            seconds,
        )


def _level(reason: str) -> int:
    return logging.INFO if reason == "before_send" else logging.WARNING


class ProcessTotals:
    """What every ``Stats`` of this process sent, dropped and retried, summed (for the
    OpenTelemetry metrics: monotonic however many pipelines come and go). A forked child
    starts from zero."""

    def __init__(self) -> None:
        self._after_fork()
        _forksafe.register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._sent = 0
        self._retries = 0
        self._dropped: dict[str, int] = {}

    def add_sent(self, n: int) -> None:
        with self._lock:
            self._sent += n

    def add_retry(self) -> None:
        with self._lock:
            self._retries += 1

    def add_dropped(self, reason: str, n: int) -> None:
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + n

    def read(self) -> tuple[int, int, dict[str, int]]:
        """Events sent, requests retried, events dropped by reason."""
        with self._lock:
            return self._sent, self._retries, dict(self._dropped)


TOTALS = ProcessTotals()


def _http_reason(reason: str) -> str:
    if reason.startswith("http_"):
        return f"PostHog refused them with HTTP {reason[5:]}"
    return reason
