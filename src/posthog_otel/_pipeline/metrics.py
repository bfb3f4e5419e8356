"""The pipeline's counters as OpenTelemetry metrics, so an SRE can alert on lost events.

Observable instruments on the global ``MeterProvider`` (or the one given), registered once
per process when the first pipeline or exporter is built:

- ``posthog_otel.events.sent`` (counter): events PostHog accepted;
- ``posthog_otel.events.dropped`` (counter, attribute ``reason``): events lost, by the
  reasons of ``stats()`` (``before_send``'s choices included, as there);
- ``posthog_otel.requests.retried`` (counter): HTTP requests retried;
- ``posthog_otel.queue.size`` (gauge): items waiting to be encoded, in every pipeline.

The counters read the process's totals (``stats.TOTALS``), so they never go down when a
pipeline is shut down and collected; the gauge sums the live pipelines, held weakly.
Without a configured ``MeterProvider`` the instruments belong to OpenTelemetry's proxy,
which binds them if one is set later; until then no callback runs: nothing costs more.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Protocol

from opentelemetry import metrics

from posthog_otel._pipeline.stats import TOTALS
from posthog_otel._version import __version__

__all__ = ["instrument", "instrument_global", "watch"]

METER = "posthog_otel"


class HasQueue(Protocol):
    """What the queue gauge reads: a worker's items waiting to be encoded."""

    @property
    def queue_size(self) -> int: ...


_queues: weakref.WeakSet[HasQueue] = weakref.WeakSet()
_lock = threading.Lock()
_global_done = False


def watch(queue: HasQueue) -> None:
    """Count ``queue`` in ``posthog_otel.queue.size`` while it lives."""
    _queues.add(queue)


def instrument_global() -> None:
    """Register the instruments on the global ``MeterProvider``, once per process."""
    global _global_done
    with _lock:
        if _global_done:
            return
        _global_done = True
    instrument(None)


def instrument(provider: metrics.MeterProvider | None) -> None:
    """Register the instruments on ``provider`` (``None``: the global one)."""
    meter = metrics.get_meter(METER, __version__, meter_provider=provider)
    meter.create_observable_counter(
        "posthog_otel.events.sent",
        callbacks=[_sent],
        unit="{event}",
        description="Events PostHog accepted",
    )
    meter.create_observable_counter(
        "posthog_otel.events.dropped",
        callbacks=[_dropped],
        unit="{event}",
        description="Events lost (and before_send's choices), by reason",
    )
    meter.create_observable_counter(
        "posthog_otel.requests.retried",
        callbacks=[_retried],
        unit="{request}",
        description="HTTP requests to PostHog that were retried",
    )
    meter.create_observable_gauge(
        "posthog_otel.queue.size",
        callbacks=[_queue_size],
        unit="{item}",
        description="Spans, log records and events waiting to be encoded",
    )


def _sent(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    sent, _, _ = TOTALS.read()
    return [metrics.Observation(sent)]


def _dropped(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    _, _, dropped = TOTALS.read()
    return [metrics.Observation(n, {"reason": reason}) for reason, n in sorted(dropped.items())]


def _retried(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    _, retries, _ = TOTALS.read()
    return [metrics.Observation(retries)]


def _queue_size(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    return [metrics.Observation(sum(queue.queue_size for queue in list(_queues)))]
