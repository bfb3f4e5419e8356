"""``PostHogSpanExporter``: the same mapping behind the SDK's ``SpanExporter`` interface.

For ``OTEL_TRACES_EXPORTER=posthog`` under ``opentelemetry-instrument`` (the
``posthog`` entry point in ``opentelemetry_traces_exporter``; the SDK builds it
with no arguments, so it configures itself from ``POSTHOG_*``), and for any
``BatchSpanProcessor``.

An exporter only sees spans after they end, in the SDK's batches: no identity
from parents or baggage, and a 2,048-span queue in front that drops bursts. So
when it is built while an SDK ``TracerProvider`` is the global one (as
``opentelemetry-instrument`` does), it attaches a ``PostHogSpanProcessor`` with
its client and options to that provider, and ``export()`` skips the spans that
processor already took: the user gets the processor's behaviour. Spans from any
other provider are exported here, as before.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from posthog_otel import _otel
from posthog_otel._client.client import PostHogClient, client_from, connection_of
from posthog_otel._mapping.convention import DEFAULT_DENYLIST
from posthog_otel._mapping.spans import is_tagged
from posthog_otel._pipeline.delivery import BeforeSend
from posthog_otel._pipeline.pipeline import PipelineOptions, build_delivery
from posthog_otel._pipeline.processor import PostHogSpanProcessor, pipeline_of
from posthog_otel._pipeline.stats import PipelineStats, Stats

__all__ = ["PostHogSpanExporter"]


class PostHogSpanExporter(SpanExporter):
    """Exports tagged spans as PostHog events; untagged spans are skipped.

    Takes the same options as ``PostHogSpanProcessor`` (less the queue ones), and:

    Args:
        export_timeout: seconds allowed per ``export()`` call, retries included.
        attach_processor: when an SDK ``TracerProvider`` is the global one, attach
            a ``PostHogSpanProcessor`` to it (see the module docstring); ``False``
            keeps this a plain exporter. A plain exporter never sees spans start,
            so its LLM analytics events are not nested (each GenAI span is top level).
    """

    def __init__(
        self,
        client: PostHogClient | None = None,
        *,
        api_key: str | None = None,
        host: str | None = None,
        capture_exceptions: bool = False,
        include_resource_attributes: bool = False,
        attribute_denylist: Iterable[str] | re.Pattern[str] | None = DEFAULT_DENYLIST,
        before_send: BeforeSend | None = None,
        max_batch_size: int = 1000,
        export_timeout: float = 30.0,
        attach_processor: bool = True,
        llm_analytics: bool | None = None,
        privacy_mode: bool = False,
        **client_options: Any,
    ) -> None:
        options = PipelineOptions.from_env(
            capture_exceptions=capture_exceptions,
            include_resource_attributes=include_resource_attributes,
            attribute_denylist=attribute_denylist,
            before_send=before_send,
            max_batch_size=max_batch_size,
            export_timeout=export_timeout,
            llm_analytics=llm_analytics,
            privacy_mode=privacy_mode,
        )
        self._client, self._owns_client = client_from(client, api_key, host, client_options)
        self._attached: PostHogSpanProcessor | None = None
        self._taken: weakref.WeakSet[Any] = weakref.WeakSet()
        provider = trace.get_tracer_provider()
        if attach_processor and isinstance(provider, TracerProvider):
            self._attached = PostHogSpanProcessor(self._client, **options.arguments())
            pipeline_of(self._attached).taken = self._taken
            provider.add_span_processor(self._attached)
        self._stats = pipeline_of(self._attached).stats if self._attached else Stats()
        self._delivery = build_delivery(connection_of(self._client), self._stats, options)
        self._export_timeout = options.export_timeout
        self._capture_exceptions = options.capture_exceptions
        self._llm_analytics = options.llm_analytics
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f"PostHogSpanExporter(client={self._client!r})"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Map and send; never raises. ``FAILURE`` if any event was not delivered."""
        if self._attached is not None:
            spans = [span for span in spans if span not in self._taken]
        if self._stop.is_set():
            lost = sum(
                is_tagged(span, self._capture_exceptions, self._llm_analytics) for span in spans
            )
            self._stats.drop("closed", lost)
            return SpanExportResult.FAILURE
        try:
            with _otel.suppressed():
                return self._export(spans)
        except Exception:  # noqa: BLE001 - export() must return a result, not raise
            self._stats.drop("invalid", len(spans), "unexpected error while exporting")
            return SpanExportResult.FAILURE

    def _export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._attached is None:
            self._stats.spans_seen.add(len(spans))
        if not spans or not self._client.enabled_capture:
            return SpanExportResult.SUCCESS
        deadline = time.monotonic() + self._export_timeout
        delivered = self._delivery.deliver(spans, deadline=deadline, stop=self._stop)
        return SpanExportResult.SUCCESS if delivered else SpanExportResult.FAILURE

    def shutdown(self, timeout_millis: float = 30000) -> None:
        """Stop: an export in progress gives up its retries; the attached processor
        drains within the timeout. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._attached is not None:
            self._attached.shutdown(int(timeout_millis))
        if self._owns_client:
            self._client.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Deliver what the attached processor holds; each ``export()`` sends before it
        returns, so there is nothing else to flush."""
        return self._attached.force_flush(timeout_millis) if self._attached else True

    def stats(self) -> PipelineStats:
        if self._attached is not None:
            return self._attached.stats()
        return self._stats.snapshot()
