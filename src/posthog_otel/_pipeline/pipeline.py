"""What span processors share with the rest of the package: one queue, its counters,
and the flags known on live spans.

The package-internal face of a ``PostHogSpanProcessor`` (reached with
``pipeline_of(processor)``): ``capture()`` without a span and the flag provider
put events into it, and the provider tells it which flags a span evaluated.
``active()`` is the pipeline of the most recently started processor.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable
from typing import Any

from posthog_otel._client.client import PostHogClient, connection_of
from posthog_otel._pipeline import signals
from posthog_otel._pipeline.delivery import BeforeSend, Delivery, Item
from posthog_otel._pipeline.spanflags import SpanFlags
from posthog_otel._pipeline.stats import PipelineStats, Stats
from posthog_otel._pipeline.worker import BatchWorker


def build_pipeline(
    client: PostHogClient,
    *,
    name: str,
    capture_exceptions: bool,
    include_resource_attributes: bool,
    attribute_denylist: Iterable[str] | re.Pattern[str] | None,
    before_send: BeforeSend | None,
    max_queue_size: int,
    max_buffer_bytes: int,
    max_batch_size: int,
    flush_interval: float,
    export_timeout: float,
    sigterm: tuple[bool, float],
    llm_analytics: bool = True,
    privacy_mode: bool = False,
) -> Pipeline:
    """A pipeline sending through ``client``, from a processor's options; when capture is
    on it takes charge of SIGTERM as ``sigterm`` (``signals.settings``) says, and forked
    children drain it before they end, within the same bound."""
    stats = Stats()
    delivery = Delivery.for_spans(
        connection_of(client),
        stats,
        capture_exceptions=capture_exceptions,
        include_resource_attributes=include_resource_attributes,
        attribute_denylist=attribute_denylist,
        before_send=before_send,
        max_batch_size=max_batch_size,
        llm_analytics=llm_analytics,
        privacy_mode=privacy_mode,
    )
    worker = BatchWorker(
        delivery,
        stats,
        max_queue_size=max_queue_size,
        max_buffer_bytes=max_buffer_bytes,
        flush_interval=flush_interval,
        export_timeout=export_timeout,
        name=name,
    )
    pipeline = Pipeline(worker, stats, enabled=client.enabled_capture)
    on_sigterm, timeout = sigterm
    if pipeline.enabled:
        signals.drain_in_children(timeout)
        if on_sigterm:
            signals.install(timeout)
    return pipeline


class Pipeline:
    """A worker, the counters it updates, and the live spans' flags."""

    def __init__(self, worker: BatchWorker, stats: Stats, *, enabled: bool = True) -> None:
        self.worker = worker
        self.stats = stats
        self.span_flags = SpanFlags()
        # Tagged spans the processor took, for an exporter attached to the same provider
        # (it must not send them again); None when no exporter asked.
        self.taken: weakref.WeakSet[Any] | None = None
        self.enabled = enabled
        self.closed = False

    def put(self, item: Item) -> bool:
        """Queue an item (a span, or an event built in code); never blocks."""
        return self.enabled and self.worker.put(item)

    def flag_evaluated(self, span: Any, key: str, value: Any) -> None:
        """Children of ``span`` started from now on inherit the flag's value."""
        self.span_flags.evaluated(span.get_span_context().span_id, key, value)

    def flush(self, timeout: float) -> bool:
        flushed = self.worker.flush(timeout)
        self.stats.report()  # drop episodes gone quiet: their counts, in one line each
        return flushed

    def shutdown(self, timeout: float) -> bool:
        self.closed = True
        return self.worker.shutdown(timeout)  # it ends the drop episodes too (their counts)

    def snapshot(self) -> PipelineStats:
        worker = self.worker
        return self.stats.snapshot(worker.queue_size, worker.buffered_bytes, worker.accepted)


_active: weakref.ref[Pipeline] | None = None
_active_lock = threading.Lock()


def activate(pipeline: Pipeline) -> None:
    """Make ``pipeline`` the one ``capture()`` uses when there is no recording span."""
    global _active
    with _active_lock:
        _active = weakref.ref(pipeline)


def active() -> Pipeline | None:
    """The most recently started pipeline that is not shut down, if any."""
    pipeline = _active() if _active is not None else None
    return pipeline if pipeline is not None and not pipeline.closed else None
