"""``PostHogMetricExporter``: OpenTelemetry metrics to PostHog's ``/i/v1/metrics``.

An SDK ``MetricExporter``: a ``PeriodicExportingMetricReader`` (or any reader) calls
``export()`` with what it collected, and it is sent at once as one OTLP/HTTP protobuf
request, encoded by OpenTelemetry's own encoder (the ``otlp`` extra), through the
project's ``Connection`` (Bearer project key, the client's retry policy, one deadline
per export). Nothing is queued here: the reader owns the schedule, and ``export()``
returns when PostHog has answered or the deadline has passed. An export of more than
``MAX_POINTS_PER_REQUEST`` data points goes as several requests within that deadline.

Every instrument kind is asked for in delta temporality, as PostHog's own SDKs send
metrics: each export carries what changed since the one before, so a lost export
loses its interval, not the series. Metrics carry no per-user attribute (no
``posthogDistinctId``): a user id on a metric makes one series per user.

It is the ``posthog`` entry point in ``opentelemetry_metrics_exporter``, so
``OTEL_METRICS_EXPORTER=posthog`` under ``opentelemetry-instrument`` builds it with no
arguments, from the ``POSTHOG_*`` variables.

Counts are data points (``stats()``, a ``PipelineStats`` whose events are data points):
queued when ``export()`` receives them, then sent or dropped by reason (``closed``,
``invalid``, ``network``, ``http_<status>``). A drop is logged once per episode, as the
event pipeline logs its own: the first after a quiet ``QUIET`` seconds, then one count
when the episode ends (a later drop after the quiet spell, or shutdown).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from posthog_otel import _otel
from posthog_otel._client.client import PostHogClient, client_from, connection_of
from posthog_otel._pipeline.stats import PipelineStats, Stats
from posthog_otel.errors import ConfigurationError, PostHogError

__all__ = ["PostHogMetricExporter"]

logger = logging.getLogger(__name__)

# Delta for every instrument kind that has a temporality: sums (monotonic or not) and
# histograms, as posthog-python's and posthog-js's metrics send them. A gauge has none in
# OTLP (each point is the last value), so the SDK's synchronous gauge needs no entry.
DELTA: dict[type, AggregationTemporality] = dict.fromkeys(
    (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    ),
    AggregationTemporality.DELTA,
)

# Data points in one request: a larger export goes as several, in order, so a process with
# many series stays under PostHog's OTLP body limit (10 MiB, the devserver's 50,000 items).
MAX_POINTS_PER_REQUEST = 10_000

_EXTRA_MISSING = (
    "needs the otlp extra (OpenTelemetry's OTLP encoding): pip install 'posthog-otel[otlp]'"
)


def _encoder() -> Callable[[MetricsData], Any]:
    """OpenTelemetry's ``encode_metrics``, imported when first needed (the ``otlp``
    extra); ``ConfigurationError`` naming the extra when it is not installed."""
    try:
        from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    except ImportError:
        raise ConfigurationError("PostHogMetricExporter", _EXTRA_MISSING) from None
    return encode_metrics


class PostHogMetricExporter(MetricExporter):
    """Sends OpenTelemetry metrics to PostHog (``/i/v1/metrics``), delta temporality.

    Args:
        client: a ``PostHogClient`` to send through (else one is built from the
            arguments and the environment, and closed by ``shutdown``).
        api_key: the project API key (``POSTHOG_API_KEY``).
        host: PostHog's URL (``POSTHOG_HOST``).
        export_timeout: seconds allowed per ``export()`` call, retries included (the
            reader's own ``timeout_millis``, when shorter, wins).
        **client_options: any other ``PostHogClient`` argument (``POSTHOG_*``).

    Raises ``ConfigurationError`` for a bad setting, or when the ``otlp`` extra is
    missing.
    """

    def __init__(
        self,
        client: PostHogClient | None = None,
        *,
        api_key: str | None = None,
        host: str | None = None,
        export_timeout: float = 10.0,
        **client_options: Any,
    ) -> None:
        self._encode = _encoder()
        if (
            isinstance(export_timeout, bool)
            or not isinstance(export_timeout, (int, float))
            or not math.isfinite(export_timeout)
            or export_timeout <= 0
        ):
            raise ConfigurationError(
                "export_timeout", f"must be a finite number of seconds > 0, got {export_timeout!r}"
            )
        super().__init__(preferred_temporality=dict(DELTA))
        self._client, self._owns_client = client_from(client, api_key, host, client_options)
        self._connection = connection_of(self._client)
        self._export_timeout = float(export_timeout)
        self._stop = threading.Event()
        self._counts = _counts()

    def __repr__(self) -> str:
        return f"PostHogMetricExporter(client={self._client!r})"

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        """Encode and send at once; never raises. ``FAILURE`` when PostHog did not take
        them (the data points are counted as dropped, by reason)."""
        try:
            points = _count_points(metrics_data)
        except Exception:  # noqa: BLE001 - not the SDK's data: nothing we can send
            self._counts.events_queued.add(1)
            self._counts.drop("invalid", 1, "the metrics could not be read")
            return MetricExportResult.FAILURE
        if not points or not self._client.enabled_capture:  # off (enabled_capture): no loss
            return MetricExportResult.SUCCESS
        self._counts.events_queued.add(points)
        if self._stop.is_set():
            self._counts.drop("closed", points)
            return MetricExportResult.FAILURE
        with _otel.suppressed():  # our own requests make no spans
            return self._send(metrics_data, points, timeout_millis)

    def _send(
        self, metrics_data: MetricsData, points: int, timeout_millis: float
    ) -> MetricExportResult:
        seconds = min(self._export_timeout, max(float(timeout_millis), 1.0) / 1000)
        deadline = time.monotonic() + seconds
        result = MetricExportResult.SUCCESS
        left = points  # not yet counted as sent or dropped
        try:
            for part, count in _split(metrics_data, MAX_POINTS_PER_REQUEST):
                reason = self._send_part(part, count, deadline)
                left -= count
                if reason is None:
                    continue
                result = MetricExportResult.FAILURE
                if reason == "network" and left:  # PostHog is unreachable: so for the rest
                    self._counts.drop("network", left)
                    break
        except Exception:  # export() must return a result, not raise
            logger.debug("posthog-otel: a metrics export failed", exc_info=True)
            self._counts.drop("invalid", left, "unexpected error while exporting")
            return MetricExportResult.FAILURE
        return result

    def _send_part(self, part: MetricsData, count: int, deadline: float) -> str | None:
        """Send one request; the reason its data points were dropped, or ``None``."""
        try:
            body = self._encode(part).SerializeToString()
        except Exception as exc:  # noqa: BLE001 - a value protobuf refuses
            self._counts.drop("invalid", count, f"OTLP encoding failed: {type(exc).__name__}")
            return "invalid"
        try:
            answer = self._connection.send_otlp(
                "metrics", body, deadline=deadline, stop=self._stop, on_retry=self._counts.retried
            )
        except PostHogError as exc:  # no answer: refused, reset, timed out, stopped
            self._counts.drop("network", count, type(exc).__name__)
            return "network"
        if 200 <= answer.status < 300:
            self._counts.sent(count)
            return None
        reason = f"http_{answer.status}"
        self._counts.drop(reason, count)
        return reason

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Nothing is held here (each ``export()`` sends before it returns): ``True``."""
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Stop: an export in progress gives up its retries and its request within about
        0.1 s; later exports are refused (counted ``closed``). Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._counts.close()
        if self._owns_client:
            self._client.close()

    def stats(self) -> PipelineStats:
        """What this exporter did, in data points: ``events_queued`` received,
        ``events_sent`` accepted by PostHog, ``dropped`` by reason, ``retries``."""
        return self._counts.snapshot()


def _split(data: MetricsData, most: int) -> Iterator[tuple[MetricsData, int]]:
    """``data`` in pieces of at most ``most`` data points, in order, each piece with its
    points' resources, scopes and metrics (one metric's points may span pieces), and
    its count. Data within the bound is passed on as it is."""
    total = _count_points(data)
    if total <= most:
        yield data, total
        return
    piece: list[tuple[Any, Any, Any, list[Any]]] = []  # resource, scope, metric, points
    count = 0
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points = list(metric.data.data_points)
                while points:
                    taken, points = points[: most - count], points[most - count :]
                    piece.append((resource, scope, metric, taken))
                    count += len(taken)
                    if count == most:
                        yield _assemble(piece), count
                        piece, count = [], 0
    if count:
        yield _assemble(piece), count


def _assemble(piece: list[tuple[Any, Any, Any, list[Any]]]) -> MetricsData:
    """The ``MetricsData`` of these points, grouped by resource and scope as they came."""
    resources: dict[int, tuple[Any, dict[int, tuple[Any, list[Any]]]]] = {}
    for resource, scope, metric, points in piece:
        scopes = resources.setdefault(id(resource), (resource, {}))[1]
        metrics = scopes.setdefault(id(scope), (scope, []))[1]
        shape: Any = metric.data  # Sum, Gauge, Histogram or ExponentialHistogram
        metrics.append(
            dataclasses.replace(metric, data=dataclasses.replace(shape, data_points=points))
        )
    return MetricsData(
        resource_metrics=[
            dataclasses.replace(
                resource,
                scope_metrics=[dataclasses.replace(sc, metrics=m) for sc, m in scopes.values()],
            )
            for resource, scopes in resources.values()
        ]
    )


def _count_points(metrics_data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for resource in metrics_data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    )


def _counts(clock: Callable[[], float] = time.monotonic) -> Stats:
    """This exporter's counts of data points, drops logged once per episode as the
    events' are; kept apart from the process's event totals (data points are not events)."""
    return Stats(clock, item="metric data point", totals=False)
