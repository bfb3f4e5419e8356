"""``PostHogSpanExporter``: the same mapping behind the SDK's ``SpanExporter`` interface.

For ``BatchSpanProcessor`` and for ``OTEL_TRACES_EXPORTER=posthog`` (registered
as the ``posthog`` entry point in ``opentelemetry_traces_exporter``; the SDK
builds it with no arguments, so it configures itself from ``POSTHOG_*``).
Prefer ``PostHogSpanProcessor``: an exporter never sees spans start, so identity
from parent spans and baggage is only what ``capture()`` wrote on span events.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from posthog_otel import _otel
from posthog_otel._client.client import PostHogClient, client_from, connection_of
from posthog_otel._mapping.convention import DEFAULT_DENYLIST
from posthog_otel._mapping.spans import is_tagged
from posthog_otel._pipeline.delivery import BeforeSend, Delivery
from posthog_otel._pipeline.stats import PipelineStats, Stats

__all__ = ["PostHogSpanExporter"]


class PostHogSpanExporter(SpanExporter):
    """Exports tagged spans as PostHog events; untagged spans are skipped.

    Takes the same options as ``PostHogSpanProcessor`` (less the queue ones), and
    ``export_timeout``: seconds allowed per ``export()`` call, retries included.
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
        **client_options: Any,
    ) -> None:
        self._client, self._owns_client = client_from(client, api_key, host, client_options)
        self._stats = Stats()
        self._delivery = Delivery.for_spans(
            connection_of(self._client),
            self._stats,
            capture_exceptions=capture_exceptions,
            include_resource_attributes=include_resource_attributes,
            attribute_denylist=attribute_denylist,
            before_send=before_send,
            max_batch_size=max_batch_size,
        )
        self._export_timeout = export_timeout
        self._capture_exceptions = capture_exceptions
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f"PostHogSpanExporter(client={self._client!r})"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Map and send; never raises. ``FAILURE`` if any event was not delivered."""
        if self._stop.is_set():
            lost = sum(is_tagged(span, self._capture_exceptions) for span in spans)
            self._stats.drop("shutdown", lost)
            return SpanExportResult.FAILURE
        try:
            with _otel.suppressed():
                return self._export(spans)
        except Exception:  # noqa: BLE001 - export() must return a result, not raise
            self._stats.drop("invalid", len(spans), "unexpected error while exporting")
            return SpanExportResult.FAILURE

    def _export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for _ in spans:
            self._stats.spans_seen.add()
        if not self._client.enabled_capture:
            return SpanExportResult.SUCCESS
        deadline = time.monotonic() + self._export_timeout
        delivered = self._delivery.deliver(spans, deadline=deadline, stop=self._stop)
        return SpanExportResult.SUCCESS if delivered else SpanExportResult.FAILURE

    def shutdown(self, timeout_millis: float = 30000) -> None:
        """Stop: an export in progress gives up its retries. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._owns_client:
            self._client.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here: each ``export()`` sends before it returns."""
        return True

    def stats(self) -> PipelineStats:
        return self._stats.snapshot()
