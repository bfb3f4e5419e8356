"""Uncaught exceptions as ``$exception`` events: ``sys.excepthook`` and
``threading.excepthook``, chained (the hooks found at install still run, after ours).

``sys.excepthook`` runs as the main thread dies (an exception escaping ``asyncio.run``
included, so a failing task that ``main`` awaits is caught here): the event is queued,
then the pipeline is flushed within ``flush_timeout``, so it is delivered before the
process exits. ``threading.excepthook`` runs in the failing thread, in that thread's
context: the user and session are those of the span or baggage still current there.
Spans the exception left are already ended, so what they carried is not known here.

A token bucket per exception type (``_limits.AUTOCAPTURE_*``, PostHog's SDK's defaults)
keeps a crash loop from flooding the queue: the rest are dropped as ``rate_limited``.
One installation per process: a second processor asking finds the hooks taken.
``uninstall`` restores the previous hooks when ours are still the ones installed;
when something chained onto ours since, ours stays in place and only passes through.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from opentelemetry import baggage, trace

from posthog_otel._client.events import now_iso, uuid7
from posthog_otel._limits import (
    AUTOCAPTURE_BUCKET_SIZE,
    AUTOCAPTURE_MAX_BUCKETS,
    AUTOCAPTURE_REFILL,
    AUTOCAPTURE_REFILL_SECONDS,
)
from posthog_otel._mapping.convention import ANONYMOUS_ID, DISTINCT_ID, SESSION_ID, WINDOW_ID
from posthog_otel._mapping.exceptions import FrameOptions, exception_list_from
from posthog_otel._pipeline.pipeline import Pipeline
from posthog_otel._version import LIB, __version__

__all__ = ["Autocapture", "TokenBuckets"]

logger = logging.getLogger(__name__)

SYS_HOOK = "sys.excepthook"
THREAD_HOOK = "threading.excepthook"

_installed: Autocapture | None = None  # the one installation of this process
_install_lock = threading.Lock()


class TokenBuckets:
    """One token bucket per key: ``size`` at first, ``refill`` more per ``interval``
    seconds (whole intervals), never above ``size``. Thread-safe; ``clock`` injectable."""

    def __init__(
        self,
        size: int = AUTOCAPTURE_BUCKET_SIZE,
        refill: int = AUTOCAPTURE_REFILL,
        interval: float = AUTOCAPTURE_REFILL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._size, self._refill, self._interval, self._clock = size, refill, interval, clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill]
        self._lock = threading.Lock()

    def take(self, key: str) -> bool:
        """``True`` when ``key`` had a token (now spent)."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= AUTOCAPTURE_MAX_BUCKETS:
                    self._buckets.pop(next(iter(self._buckets)))  # the oldest type
                bucket = self._buckets[key] = [float(self._size), now]
            intervals = int((now - bucket[1]) // self._interval) if self._interval > 0 else 0
            if intervals > 0:
                bucket[0] = min(float(self._size), bucket[0] + intervals * self._refill)
                bucket[1] += intervals * self._interval
            if bucket[0] < 1:
                return False
            bucket[0] -= 1
            return True


class Autocapture:
    """The hooks of one pipeline; ``install`` chains them, ``uninstall`` undoes that."""

    def __init__(
        self,
        pipeline: Pipeline,
        frames: FrameOptions,
        *,
        flush_timeout: float,
        buckets: TokenBuckets | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._frames = frames
        self._flush_timeout = flush_timeout
        self._buckets = buckets  # None: no rate limit
        self._previous_sys: Callable[..., Any] = sys.excepthook
        self._previous_thread: Callable[..., Any] = threading.excepthook
        self._active = False

    def install(self) -> bool:
        """Chain our hooks in front of the current ones; ``False`` if another pipeline's
        autocapture is installed (this process's uncaught exceptions go there)."""
        global _installed
        with _install_lock:
            if _installed is not None:
                logger.info("posthog-otel: exception autocapture is already on elsewhere")
                return False
            self._previous_sys = sys.excepthook
            self._previous_thread = threading.excepthook
            sys.excepthook = self._sys_hook
            threading.excepthook = self._thread_hook
            self._active = True
            _installed = self
        return True

    def uninstall(self) -> None:
        """Stop capturing; restore the previous hooks where ours are still installed."""
        global _installed
        with _install_lock:
            if not self._active:
                return
            self._active = False
            if sys.excepthook == self._sys_hook:
                sys.excepthook = self._previous_sys
            if threading.excepthook == self._thread_hook:
                threading.excepthook = self._previous_thread
            if _installed is self:
                _installed = None

    def _sys_hook(
        self,
        exc_type: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._active and self._capture(exc, SYS_HOOK, "fatal"):
                self._pipeline.flush(self._flush_timeout)  # the process is about to end
        except Exception:  # the previous hook must still run
            logger.debug("posthog-otel: autocapture failed", exc_info=True)
        self._previous_sys(exc_type, exc, tb)

    def _thread_hook(self, args: Any) -> None:
        try:
            exc = args.exc_value
            if self._active and exc is not None and not isinstance(exc, SystemExit):
                self._capture(exc, THREAD_HOOK, "error")
        except Exception:  # the previous hook must still run
            logger.debug("posthog-otel: autocapture failed", exc_info=True)
        self._previous_thread(args)

    def _capture(self, exc: BaseException, hook: str, level: str) -> bool:
        if isinstance(exc, KeyboardInterrupt):
            return False
        cls = type(exc)
        if self._buckets is not None and not self._buckets.take(
            f"{cls.__module__}.{cls.__qualname__}"
        ):
            self._pipeline.drop("rate_limited", 1, f"{cls.__qualname__} from {hook}")
            return False
        props = {
            "$exception_list": exception_list_from(exc, hook, handled=False, options=self._frames),
            "$exception_level": level,
        }
        return self._pipeline.put(uncaught_event(props))


def uncaught_event(props: dict[str, Any]) -> dict[str, Any]:
    """An ``$exception`` event with the identity, session (and window) and trace of the
    current context (its span's attributes, else its baggage); personless when nobody is
    known, or when it is the anonymous visitor posthog-js named (``tags.build``'s rule)."""
    span = trace.get_current_span()
    attrs = getattr(span, "attributes", None) or {}
    distinct_id = attrs.get(DISTINCT_ID) or baggage.get_baggage(DISTINCT_ID)
    session_id = attrs.get(SESSION_ID) or baggage.get_baggage(SESSION_ID)
    window_id = attrs.get(WINDOW_ID) or baggage.get_baggage(WINDOW_ID)
    anonymous = attrs[ANONYMOUS_ID] if ANONYMOUS_ID in attrs else baggage.get_baggage(ANONYMOUS_ID)
    properties = {**props, "$lib": LIB, "$lib_version": __version__}
    if isinstance(session_id, str) and session_id:
        properties["$session_id"] = session_id
    if isinstance(window_id, str) and window_id:
        properties["$window_id"] = window_id
    ctx = span.get_span_context()
    if ctx.is_valid:
        properties["$trace_id"] = trace.format_trace_id(ctx.trace_id)
        properties["$span_id"] = trace.format_span_id(ctx.span_id)
    if not isinstance(distinct_id, str) or not distinct_id:
        distinct_id = str(uuid7())
        properties["$process_person_profile"] = False
    elif isinstance(anonymous, str) and anonymous and distinct_id == anonymous:
        properties["$process_person_profile"] = False
    return {
        "event": "$exception",
        "distinct_id": distinct_id,
        "properties": properties,
        "timestamp": now_iso(),
        "uuid": str(uuid7()),
    }
