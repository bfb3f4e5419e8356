"""Counters for the pipeline, and the one warning per drop reason."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

logger = logging.getLogger(__name__)

DROP_REASONS = {
    "queue_full": "the queue was full (raise max_queue_size, or PostHog is too slow or down)",
    "shutdown": "they arrived after shutdown, or were still queued when its timeout ran out",
    "too_large": "an event was over PostHog's 900 KiB limit",
    "invalid": "an event could not be built or encoded (bad tag values or before_send)",
    "network": "PostHog could not be reached after all retries",
}


class Counter:
    """An increment-only counter that many threads may bump without a lock.

    ``next()`` on an ``itertools.count`` is atomic in CPython; its repr is the
    only way to read it without counting one more.
    """

    __slots__ = ("_count", "add_one")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.add_one = self._count.__next__

    @property
    def value(self) -> int:
        return int(repr(self._count)[6:-1])


@dataclass(frozen=True)
class PipelineStats:
    """A snapshot of what a span processor or exporter has done since it started.

    Attributes:
        spans_seen: spans that ended while the processor was registered.
        events_queued: events accepted into the queue (tagged spans count once
            however many events they hold).
        events_sent: events PostHog accepted.
        retries: HTTP requests that were retried.
        dropped: events lost, by reason (``queue_full``, ``shutdown``,
            ``too_large``, ``invalid``, ``network``, ``http_<status>``), plus
            ``before_send``: events your ``before_send`` chose to drop.
        queue_size: items waiting in the queue right now.
    """

    spans_seen: int = 0
    events_queued: int = 0
    events_sent: int = 0
    retries: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)
    queue_size: int = 0

    @property
    def dropped_total(self) -> int:
        return sum(n for reason, n in self.dropped.items() if reason != "before_send")


class Stats:
    """The live counters behind ``PipelineStats``."""

    def __init__(self) -> None:
        self.spans_seen = Counter()
        self.events_queued = Counter()
        self._lock = threading.Lock()
        self.events_sent = 0
        self.retries = 0
        self._dropped: dict[str, int] = {}

    def after_fork(self) -> None:
        """A lock the parent's worker held at fork time must not be inherited held."""
        self._lock = threading.Lock()

    def sent(self, n: int) -> None:
        with self._lock:
            self.events_sent += n

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def drop(self, reason: str, n: int = 1, detail: str = "") -> None:
        """Count ``n`` lost events; the first loss for each reason is logged."""
        if n <= 0:
            return
        with self._lock:
            first = reason not in self._dropped
            self._dropped[reason] = self._dropped.get(reason, 0) + n
        if first:
            why = DROP_REASONS.get(reason) or _http_reason(reason) or reason
            level = logging.INFO if reason == "before_send" else logging.WARNING
            logger.log(
                level,
                "posthog-otel dropped %d event(s) because %s%s. Further drops for this reason "
                "are counted in stats() without logging.",
                n,
                why,
                f" ({detail})" if detail else "",
            )

    def snapshot(self, queue_size: int = 0) -> PipelineStats:
        with self._lock:
            sent, retries, dropped = self.events_sent, self.retries, dict(self._dropped)
        return PipelineStats(
            spans_seen=self.spans_seen.value,
            events_queued=self.events_queued.value,
            events_sent=sent,
            retries=retries,
            dropped=MappingProxyType(dropped),
            queue_size=queue_size,
        )


def _http_reason(reason: str) -> str | None:
    if reason.startswith("http_"):
        return f"PostHog refused them with HTTP {reason[5:]}"
    if reason == "before_send":
        return "before_send returned None for them"
    return None
