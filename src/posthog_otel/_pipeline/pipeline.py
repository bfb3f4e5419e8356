"""What span processors share with the rest of the package: one queue, its counters,
and the flags known on live spans.

The package-internal face of a ``PostHogSpanProcessor`` (reached with
``pipeline_of(processor)``): ``capture()`` without a span and the flag provider
put events into it, and the provider tells it which flags a span evaluated.
``active()`` is the pipeline of the most recently started processor.

Live span flags (``LiveSpanFlags``): flags evaluated on live spans, handed down to the
child spans started afterwards, so events captured later in the same request, in a child span, carry
``$feature/<key>`` for the variant the user saw. Flags evaluated on a span itself
are read from its ``feature_flag.evaluation`` events instead (which also works for
other providers); this table only carries what ancestors knew when a span began.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from posthog_otel._client.batch import MAX_BATCH_BYTES, MAX_BATCH_EVENTS
from posthog_otel._client.connection import Connection
from posthog_otel._config import env_settings, settle
from posthog_otel._limits import (
    AUTOCAPTURE_BUCKET_SIZE,
    AUTOCAPTURE_REFILL,
    AUTOCAPTURE_REFILL_SECONDS,
)
from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern
from posthog_otel._mapping.exceptions import FrameOptions
from posthog_otel._mapping.logs import LogMapper
from posthog_otel._mapping.otlp import require_encoders
from posthog_otel._mapping.spans import MappingOptions, SpanMapper
from posthog_otel._pipeline import signals
from posthog_otel._pipeline.delivery import BeforeSend, Delivery, Item
from posthog_otel._pipeline.otlp import Stream
from posthog_otel._pipeline.stats import PipelineStats, Stats
from posthog_otel._pipeline.worker import MAX_BUFFER_BYTES, SETTLE, BatchWorker
from posthog_otel.errors import ConfigurationError


@dataclass(frozen=True)
class PipelineOptions:
    """Everything a span or log processor or exporter does with events, validated once.

    The public constructors' keyword arguments (documented there) become one of these
    through ``from_env``; a bad value raises ``ConfigurationError`` naming the setting,
    or the ``POSTHOG_*`` variable it came from.
    """

    capture_exceptions: bool = False
    include_resource_attributes: bool = False
    privacy_mode: bool = False
    attribute_denylist: Iterable[str] | re.Pattern[str] | None = DEFAULT_DENYLIST
    before_send: BeforeSend | None = None
    max_queue_size: int | None = None  # None: bounded by bytes (MAX_QUEUE_BYTES)
    max_buffer_bytes: int = MAX_BUFFER_BYTES
    max_batch_size: int = 1000
    flush_interval: float = 1.0
    export_timeout: float = 30.0
    flush_on_sigterm: bool = True  # POSTHOG_FLUSH_ON_SIGTERM
    sigterm_timeout: float = signals.DEFAULT_TIMEOUT  # POSTHOG_SIGTERM_TIMEOUT
    llm_analytics: bool = True  # POSTHOG_LLM_ANALYTICS
    exception_autocapture: bool = False  # POSTHOG_EXCEPTION_AUTOCAPTURE
    in_app_modules: Iterable[str] = ()
    project_root: str | None = None  # None: the working directory when built
    capture_code_variables: bool = False
    # Autocaptured exceptions of one type: a burst, then so many more per so many seconds.
    exception_rate_limit: tuple[int, int, float] | None = (
        AUTOCAPTURE_BUCKET_SIZE,
        AUTOCAPTURE_REFILL,
        AUTOCAPTURE_REFILL_SECONDS,
    )
    send_traces: bool = False  # POSTHOG_SEND_TRACES: every sampled span to /i/v1/traces
    send_logs: bool = False  # POSTHOG_SEND_LOGS: every record (from logs_min_level) to /i/v1/logs
    logs_min_level: int = logging.INFO  # POSTHOG_LOGS_MIN_LEVEL: a logging level, name or number
    # ``attribute_denylist`` compiled, once.
    denylist: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in (
            "capture_exceptions",
            "include_resource_attributes",
            "privacy_mode",
            "flush_on_sigterm",
            "llm_analytics",
            "exception_autocapture",
            "capture_code_variables",
            "send_traces",
            "send_logs",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(name, "must be True or False")
        if self.before_send is not None and not callable(self.before_send):
            raise ConfigurationError("before_send", "must be a function of one event, or None")
        if self.max_queue_size is not None:
            _check_int("max_queue_size", self.max_queue_size, 1)
        _check_int("max_buffer_bytes", self.max_buffer_bytes, MAX_BATCH_BYTES, "(one request)")
        _check_int("max_batch_size", self.max_batch_size, 1, f"and at most {MAX_BATCH_EVENTS:,}")
        if self.max_batch_size > MAX_BATCH_EVENTS:
            raise ConfigurationError(
                "max_batch_size", f"must be at least 1 and at most {MAX_BATCH_EVENTS:,}"
            )
        for name in ("flush_interval", "export_timeout", "sigterm_timeout"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not value > 0
            ):
                raise ConfigurationError(name, f"must be a positive number, got {value!r}")
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "denylist", denylist_pattern(self.attribute_denylist))
        modules = self.in_app_modules
        if isinstance(modules, str) or not all(isinstance(m, str) and m for m in modules):
            raise ConfigurationError("in_app_modules", "must be a list of module names")
        object.__setattr__(self, "in_app_modules", tuple(modules))
        if self.project_root is not None and not isinstance(self.project_root, str):
            raise ConfigurationError("project_root", "must be a directory's path, or None")
        level = self.logs_min_level
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise ConfigurationError(
                "logs_min_level", f"must be a logging level (a number >= 0), got {level!r}"
            )
        if self.send_traces:
            require_encoders("send_traces")
        if self.send_logs:
            require_encoders("send_logs")
        if self.exception_rate_limit is not None:
            object.__setattr__(self, "exception_rate_limit", _rate(self.exception_rate_limit))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **given: Any) -> PipelineOptions:
        """The options from arguments, else ``POSTHOG_*`` variables, else the defaults.

        ``None`` means "not given" for a setting that has a variable
        (``capture_exceptions``, ``flush_on_sigterm``, ``sigterm_timeout``,
        ``llm_analytics``, ``exception_autocapture``, ``send_traces``, ``send_logs``,
        ``logs_min_level``); for the others
        it is a value (``attribute_denylist=None`` turns the denylist off).
        """
        unset = {name for name, value in given.items() if value is None and name in _FROM_ENV}
        given = {name: value for name, value in given.items() if name not in unset}
        return settle(cls, env_settings("pipeline", environ), given)

    @classmethod
    def off_default(cls, **values: Any) -> list[str]:
        """Which of ``values`` differ from the defaults (not validated)."""
        defaults = {f.name: f.default for f in fields(cls) if f.init}
        return [name for name, value in values.items() if value != defaults[name]]

    def arguments(self) -> dict[str, Any]:
        """The options as a span processor's constructor arguments (a processor built
        from a span exporter's); the log processor's own ones left out."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if f.init and f.name not in _LOGS
        }

    def mapping(self) -> MappingOptions:
        """What ``SpanMapper`` and ``LogMapper`` need."""
        return MappingOptions(
            capture_exceptions=self.capture_exceptions,
            include_resource_attributes=self.include_resource_attributes,
            denylist=self.denylist,
            llm_analytics=self.llm_analytics,
            privacy_mode=self.privacy_mode,
        )

    def frames(self) -> FrameOptions:
        """What frames of an exception object carry (``project_root`` resolved now)."""
        root = os.path.abspath(self.project_root if self.project_root else os.getcwd())
        return FrameOptions(
            in_app_modules=tuple(self.in_app_modules),
            project_root=root,
            code_variables=self.capture_code_variables,
            denylist=self.denylist,
        )


def _rate(limit: Any) -> tuple[int, int, float]:
    """``exception_rate_limit`` checked: ``(burst, refill, seconds)``."""
    problem = "must be (burst, refill, seconds): whole numbers >= 1 and seconds > 0, or None"
    if not isinstance(limit, (tuple, list)) or len(limit) != 3:
        raise ConfigurationError("exception_rate_limit", problem)
    burst, refill, seconds = limit
    counts = all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in (burst, refill))
    number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if not (counts and number and math.isfinite(seconds) and seconds > 0):
        raise ConfigurationError("exception_rate_limit", problem)
    return burst, refill, float(seconds)


_LOGS = frozenset({"send_logs", "logs_min_level"})  # a log processor's, not a span processor's
_FROM_ENV = {
    "send_traces",
    "send_logs",
    "logs_min_level",
    "capture_exceptions",
    "flush_on_sigterm",
    "sigterm_timeout",
    "llm_analytics",
    "exception_autocapture",
}


def _check_int(name: str, value: Any, least: int, more: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigurationError(name, f"must be at least {least:,} {more}".rstrip())


def build_delivery(connection: Connection, stats: Stats, options: PipelineOptions) -> Delivery:
    """The delivery behind a span or log processor or exporter: map, edit, encode, send."""
    mapping = options.mapping()
    return Delivery(
        connection,
        stats,
        SpanMapper(mapping),
        options.before_send,
        options.max_batch_size,
        LogMapper(mapping),
    )


def build_pipeline(connection: Connection, options: PipelineOptions, *, name: str) -> Pipeline:
    """A pipeline sending through ``connection`` (the one way one is made); when capture
    is on, it takes charge of SIGTERM if ``options.flush_on_sigterm``, and forked
    children drain it before they end, within ``options.sigterm_timeout``."""
    stats = Stats()
    worker = BatchWorker(
        build_delivery(connection, stats, options),
        stats,
        max_queue_size=options.max_queue_size,
        max_buffer_bytes=options.max_buffer_bytes,
        flush_interval=options.flush_interval,
        export_timeout=options.export_timeout,
        name=name,
    )
    pipeline = Pipeline(
        worker,
        stats,
        enabled=connection.config.enabled_capture,
        connection=connection,
        options=options,
    )
    if pipeline.enabled:
        signals.drain_in_children(options.sigterm_timeout)
        if options.flush_on_sigterm:
            signals.install(options.sigterm_timeout)
    return pipeline


class Pipeline:
    """A worker, the counters it updates, and the live spans' flags.

    The hooks every span and record passes through call the bound methods set here
    (``span_started``, ``span_ended``, ``count_span``, ``count_log``, ``enqueue``): one
    call each, no attribute chain into the worker or the counters.
    """

    def __init__(
        self,
        worker: BatchWorker,
        stats: Stats,
        *,
        enabled: bool = True,
        connection: Connection | None = None,
        options: PipelineOptions | None = None,
    ) -> None:
        self.worker = worker
        self.stats = stats
        self._connection = connection
        self._options = options if options is not None else PipelineOptions()
        self._streams: dict[str, Stream] = {}  # signal -> its OTLP stream, once opened
        self._streams_lock = threading.Lock()
        self._span_flags = flags = LiveSpanFlags()
        self.enabled = enabled
        self.closed = False
        self.span_started = flags.started
        """``span_started(span_id, parent_id)``: the span inherits its parent's flags."""
        self.span_ended = flags.ended
        """``span_ended(span_id)``: forget the span; the flags it inherited, if any."""
        self.count_span = stats.spans_seen.add
        """``count_span(n=1)``: spans seen by a hook (a per-thread cell, no shared lock)."""
        self.span_cells = stats.spans_seen.mine
        """The span hook's own fast path to the same count, without a call: it bumps
        ``span_cells.cell[0]`` and calls ``count_span()`` on ``AttributeError`` (the
        thread's first span). Measured: the call costs ~0.2 us of a ~13 us span."""
        self.count_log = stats.logs_seen.add
        """``count_log(n=1)``: log records seen by a hook."""
        self.log_cells = stats.logs_seen.mine
        """The log hook's fast path to the same count, as ``span_cells`` is the span hook's."""
        self.enqueue = worker.put
        """``put`` without the ``enabled`` check, for hooks installed only when it is on."""

    @property
    def flags_live(self) -> Mapping[int, Any]:
        """Live spans with flags (empty, so falsy, until a flag is read in a span)."""
        return self._span_flags.live

    def flags_of_live_span(self, span_id: int) -> FlagMap | None:
        """The flags known now on a live span, if any."""
        entry = self._span_flags.live.get(span_id)
        return entry[1] if entry is not None else None

    def drop(self, reason: str, n: int = 1, detail: str = "") -> None:
        """Count ``n`` lost events (see ``Stats.drop``)."""
        self.stats.drop(reason, n, detail)

    def put(self, item: Item) -> bool:
        """Queue an item (a span, or an event built in code); never blocks."""
        return self.enabled and self.worker.put(item)

    def flag_evaluated(self, span: Any, key: str, value: Any) -> None:
        """Children of ``span`` started from now on inherit the flag's value."""
        self._span_flags.evaluated(span.get_span_context().span_id, key, value)

    def open_stream(self, signal: str) -> Callable[[Any], bool]:
        """The ``put`` of this pipeline's OTLP stream for ``signal`` (``traces`` or
        ``logs``), started the first time it is asked for; it sends through the
        pipeline's connection, with its queue options, and stops with it. A pipeline
        whose capture is off gets a ``put`` that takes nothing (and counts nothing)."""
        if not self.enabled or self._connection is None:
            return _nothing
        with self._streams_lock:
            stream = self._streams.get(signal)
            if stream is None:
                options = self._options
                stream = self._streams[signal] = Stream(
                    self._connection,
                    signal,
                    max_queue_size=options.max_queue_size,
                    max_buffer_bytes=options.max_buffer_bytes,
                    flush_interval=options.flush_interval,
                    export_timeout=options.export_timeout,
                    denylist=options.denylist,
                )
        return stream.put

    def _workers(self) -> list[BatchWorker]:
        return [self.worker, *(stream.worker for stream in self._streams.values())]

    def flush(self, timeout: float) -> bool:
        """Deliver what the events' queue and the OTLP streams hold, all within ``timeout``."""
        deadline = time.monotonic() + timeout
        flushed = True
        for worker in self._workers():
            flushed = worker.flush(max(0.0, deadline - time.monotonic())) and flushed
        self.stats.report()  # drop episodes gone quiet: their counts, in one line each
        for stream in self._streams.values():
            stream.stats.report()
        return flushed

    def shutdown(self, timeout: float) -> bool:
        """Drain the events' queue and the OTLP streams together, within ``timeout``."""
        self.closed = True
        workers = self._workers()
        if len(workers) == 1:
            return self.worker.shutdown(timeout)  # it ends the drop episodes too (their counts)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.begin_shutdown(deadline)
        for worker in workers:
            worker.wait_stopped(settle=0.0)  # until stopped, or the deadline cut it off
        settled_by = time.monotonic() + SETTLE  # one SETTLE for all to count what they gave up
        stopped = [
            worker.wait_stopped(settle=max(0.0, settled_by - time.monotonic()))
            for worker in workers
        ]
        return all(stopped)

    def snapshot(self) -> PipelineStats:
        worker = self.worker
        stats = self.stats.snapshot(worker.queue_size, worker.buffered_bytes, worker.accepted)
        if not self._streams:
            return stats
        traces, logs = self._streams.get("traces"), self._streams.get("logs")
        return dataclasses.replace(
            stats,
            traces=traces.snapshot() if traces is not None else stats.traces,
            logs=logs.snapshot() if logs is not None else stats.logs,
        )


def _nothing(item: Any) -> bool:
    return False


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


_MAX_LIVE_SPANS = 50_000  # spans that never end must not grow this forever

FlagMap = Mapping[str, Any]


class LiveSpanFlags:
    """span id -> (flags inherited at start, flags known now); empty unless flags are used."""

    def __init__(self) -> None:
        self.live: dict[int, tuple[FlagMap | None, FlagMap]] = {}

    def started(self, span_id: int, parent_id: int) -> None:
        entry = self.live.get(parent_id)
        if entry is not None:
            self.live[span_id] = (entry[1], entry[1])

    def evaluated(self, span_id: int, key: str, value: Any) -> None:
        inherited, known = self.live.get(span_id, (None, {}))
        if len(self.live) >= _MAX_LIVE_SPANS:
            self.live.clear()
        self.live[span_id] = (inherited, {**known, key: value})

    def ended(self, span_id: int) -> FlagMap | None:
        """Forget the span; what it inherited from its ancestors, if anything."""
        entry = self.live.pop(span_id, None)
        return entry[0] if entry is not None else None
