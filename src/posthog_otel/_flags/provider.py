"""``PostHogFlagProvider``: feature flags that are cached, survive outages, and show on the trace.

One ``/decide`` request per user and context per ``cache_ttl``, shared by
concurrent callers; stale answers (marked so) while PostHog is unreachable, and
defaults when there is nothing to serve: a flag lookup never raises because
PostHog is down. Every evaluation inside a recording span adds a
``feature_flag.evaluation`` span event, and events captured afterwards in that
span or its children carry ``$feature/<key>``. ``$feature_flag_called`` goes out
once per user, flag, value and groups, through a background queue.

A flag read again in the same span with the same value adds no second span
event: spans keep at most 128 events, and a flag checked in a loop must not push
out the span's own.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import baggage, trace

from posthog_otel import _forksafe, _otel
from posthog_otel._client.client import PostHogClient, client_from, connection_of
from posthog_otel._client.events import check_distinct_id, check_groups, check_properties
from posthog_otel._flags.cache import FlagCache, Lookup, Source
from posthog_otel._flags.exposure import ExposureLog, flag_called_properties
from posthog_otel._flags.values import FeatureFlag, FlagsResponse
from posthog_otel._mapping.captured import captured_event
from posthog_otel._mapping.convention import DISTINCT_ID, USER_ID_KEYS
from posthog_otel._pipeline import pipeline, signals
from posthog_otel._pipeline.delivery import Delivery
from posthog_otel._pipeline.pipeline import Pipeline
from posthog_otel._pipeline.processor import PostHogSpanProcessor, pipeline_of
from posthog_otel._pipeline.stats import Stats
from posthog_otel._pipeline.worker import BatchWorker

__all__ = ["PostHogFlagProvider"]

Properties = Mapping[str, Any]


@dataclass(frozen=True)
class Evaluation:
    """One flag read: the flag (or ``None``), where the answer came from, and why not."""

    flag: FeatureFlag | None
    source: Source
    error: str | None = None


class PostHogFlagProvider:
    """Feature flags for request handling: cached, coalesced, never raising on outages.

    Args:
        client: the ``PostHogClient`` to ask (not closed by us). Without one, a
            client is built from ``api_key``, ``host``, ``client_options`` and the
            ``POSTHOG_*`` environment variables, and closed by ``shutdown()``.
        cache_ttl: seconds an answer is reused for the same user and context.
        cache_size: users (and contexts) remembered, least recently used first out.
        send_feature_flag_events: send ``$feature_flag_called`` (once per user,
            flag, value and groups) so PostHog can count experiment exposures.
        processor: the ``PostHogSpanProcessor`` whose queue carries those events;
            without one, the provider keeps a queue of its own.
        stale_grace: seconds past ``cache_ttl`` an answer may still be served
            (marked stale) while PostHog cannot be reached.
        clock: a monotonic clock, for tests.
    """

    def __init__(
        self,
        client: PostHogClient | None = None,
        *,
        api_key: str | None = None,
        host: str | None = None,
        cache_ttl: float = 30.0,
        cache_size: int = 10_000,
        send_feature_flag_events: bool = True,
        processor: PostHogSpanProcessor | None = None,
        stale_grace: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        **client_options: Any,
    ) -> None:
        self._sigterm = signals.settings(None, None)
        self._client, self._owns_client = client_from(client, api_key, host, client_options)
        self._connection = connection_of(self._client)
        self._shared = pipeline_of(processor) if processor is not None else None
        self._send_events = send_feature_flag_events
        self._cache = FlagCache(
            ttl=cache_ttl,
            size=cache_size,
            grace=stale_grace,
            clock=clock,
            # A lookup waits no longer than a fetch of its own would take: flags_timeout.
            wait_timeout=self._connection.config.flags_timeout,
        )
        self._reported = ExposureLog()
        # Per live span, the flags already recorded on it: one span event per flag and
        # value, so a flag read in a loop cannot crowd out the span's other events.
        self._on_spans: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
        self._on_spans_lock = threading.Lock()
        self._own: Pipeline | None = None
        self._worker_lock = threading.Lock()
        self._closed = False
        _forksafe.register(self)

    def __repr__(self) -> str:
        return f"PostHogFlagProvider(client={self._client!r})"

    def _after_fork(self) -> None:
        self._worker_lock = threading.Lock()
        self._on_spans_lock = threading.Lock()

    # -- reading flags ---------------------------------------------------------------

    def get_flag(
        self,
        key: str,
        distinct_id: str | None = None,
        *,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
    ) -> FeatureFlag | None:
        """The flag for this user, or ``None`` if it does not exist or cannot be had.

        ``distinct_id`` defaults to the identity in the current context (the
        current span's ``posthog.distinct_id``, ``identify()``'s baggage, then
        ``enduser.id``/``user.id``); with none, ``ValueError``.
        """
        return self.evaluate(key, distinct_id, groups, person_properties, group_properties).flag

    def is_enabled(
        self,
        key: str,
        distinct_id: str | None = None,
        *,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
        default: bool = False,
    ) -> bool:
        """Whether the flag is on (a variant counts as on); ``default`` when it is unknown."""
        flag = self.get_flag(
            key,
            distinct_id,
            groups=groups,
            person_properties=person_properties,
            group_properties=group_properties,
        )
        return default if flag is None else bool(flag.enabled)

    def get_payload(
        self,
        key: str,
        distinct_id: str | None = None,
        *,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
    ) -> Any:
        """The flag's decoded payload for this user, or ``None``."""
        flag = self.get_flag(
            key,
            distinct_id,
            groups=groups,
            person_properties=person_properties,
            group_properties=group_properties,
        )
        return None if flag is None else flag.payload

    def get_flags(
        self,
        distinct_id: str | None = None,
        *,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
    ) -> dict[str, FeatureFlag]:
        """Every flag for this user (no span events or ``$feature_flag_called``)."""
        who = self._who(distinct_id)
        lookup = self._lookup(who, groups, person_properties, group_properties)
        if lookup.entry is None:
            return {}
        flags = dict(lookup.entry.answer.flags)
        if lookup.source == "stale":
            flags = {k: _stale(f) for k, f in flags.items()}
        return flags

    def evaluate(
        self,
        key: str,
        distinct_id: str | None = None,
        groups: Mapping[str, str] | None = None,
        person_properties: Properties | None = None,
        group_properties: Mapping[str, Properties] | None = None,
    ) -> Evaluation:
        """The flag, where its answer came from, and why it is missing (for adapters such
        as OpenFeature; raises ``ValueError``/``TypeError`` for bad arguments)."""
        if not isinstance(key, str) or not key:
            raise ValueError("flag key must be a non-empty string")
        who = self._who(distinct_id)
        lookup = self._lookup(who, groups, person_properties, group_properties)
        evaluation = _evaluation(lookup, key)
        self._observe(key, evaluation, who, groups, lookup)
        return evaluation

    # -- lifecycle -------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Deliver the ``$feature_flag_called`` events queued so far."""
        if self._shared is not None:
            return self._shared.flush(timeout)
        return self._own.flush(timeout) if self._own is not None else True

    def shutdown(self, timeout: float = 30.0) -> None:
        """Deliver queued events, then release what we own. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._worker_lock:
            own, self._own = self._own, None
        if own is not None:
            own.shutdown(timeout)
        elif self._shared is not None:
            self._shared.flush(timeout)
        if self._owns_client:
            self._client.close()

    # -- inside ----------------------------------------------------------------------------

    def _who(self, distinct_id: str | None) -> str:
        if distinct_id is not None:
            return check_distinct_id(distinct_id)
        span = trace.get_current_span()
        attrs = _otel.attributes_of(span) if span.is_recording() else {}
        tagged = attrs.get(DISTINCT_ID)
        if isinstance(tagged, str) and tagged:
            return tagged
        carried = baggage.get_baggage(DISTINCT_ID)
        if isinstance(carried, str) and carried:
            return carried
        for name in USER_ID_KEYS:
            value = attrs.get(name)
            if isinstance(value, str) and value:
                return value
        raise ValueError(
            "no distinct_id given and none in the current context: pass distinct_id=, or "
            "wrap the request in identify(user_id)"
        )

    def _lookup(
        self,
        who: str,
        groups: Mapping[str, str] | None,
        person_properties: Properties | None,
        group_properties: Mapping[str, Properties] | None,
    ) -> Lookup:
        groups = check_groups(groups) if groups else None
        if person_properties:
            person_properties = check_properties(person_properties, "person_properties")
        if group_properties:
            group_properties = check_properties(group_properties, "group_properties")
        key = (who, _canonical(groups), _canonical(person_properties), _canonical(group_properties))

        def fetch() -> FlagsResponse:
            with _otel.suppressed():
                return self._connection.fetch_flags(
                    who, groups, group_properties, person_properties, retry=False
                )

        return self._cache.lookup(key, fetch)

    def _observe(
        self,
        key: str,
        evaluation: Evaluation,
        who: str,
        groups: Mapping[str, str] | None,
        lookup: Lookup,
    ) -> None:
        flag = evaluation.flag
        value = None if flag is None else flag.enabled
        span = trace.get_current_span()
        if span.is_recording() and self._first_on_span(span, key, value):
            span.add_event("feature_flag.evaluation", _span_event(key, evaluation, who))
            shared = self._shared or pipeline.active()
            if shared is not None and flag is not None:
                shared.flag_evaluated(span, key, value)
        if not self._send_events or not self._client.enabled_capture:
            return
        if not self._reported.first(who, key, value, groups):
            return
        answer = lookup.entry.answer if lookup.entry is not None else None
        properties = flag_called_properties(key, flag, answer, evaluation.error or "")
        if groups:
            properties["$groups"] = dict(groups)
        event = captured_event("$feature_flag_called", properties, who, span.get_span_context())
        target = self._shared or self._own_pipeline()
        if target is not None:
            target.put(event)

    def _first_on_span(self, span: Any, key: str, value: Any) -> bool:
        with self._on_spans_lock:
            recorded = self._on_spans.setdefault(span, {})
            if key in recorded and recorded[key] == value:
                return False
            recorded[key] = value
            return True

    def _own_pipeline(self) -> Pipeline | None:
        """A queue of our own for exposure events, started on first use; none after
        ``shutdown()`` (the event is not sent, and nothing is restarted)."""
        with self._worker_lock:
            if self._own is None and not self._closed:
                stats = Stats()
                worker = BatchWorker(
                    Delivery(self._connection, stats), stats, name="posthog-otel-flags"
                )
                self._own = Pipeline(worker, stats)
                on_sigterm, timeout = self._sigterm
                if on_sigterm:
                    signals.install(timeout)
            return self._own


def _evaluation(lookup: Lookup, key: str) -> Evaluation:
    entry = lookup.entry
    if entry is None:
        return Evaluation(None, "unavailable", lookup.error or "flag service unavailable")
    answer = entry.answer
    flag = answer.flags.get(key)
    if flag is not None:
        stale = lookup.source == "stale"
        return Evaluation(_stale(flag) if stale else flag, lookup.source, lookup.error)
    if answer.quota_limited:
        return Evaluation(None, lookup.source, "quota_limited")
    if answer.errors_while_computing_flags:
        # PostHog says some flags may be missing: a missing key is an error, not "off".
        earlier = entry.previous.answer.flags.get(key) if entry.previous is not None else None
        if earlier is not None:
            return Evaluation(_stale(earlier), "stale", "errors_while_computing_flags")
        return Evaluation(None, "unavailable", "errors_while_computing_flags")
    return Evaluation(None, lookup.source, "flag_missing")


def _stale(flag: FeatureFlag) -> FeatureFlag:
    return dataclasses.replace(flag, reason=f"stale: {flag.reason or 'cached answer'}")


def _span_event(key: str, evaluation: Evaluation, who: str) -> dict[str, Any]:
    """A ``feature_flag.evaluation`` span event, in the current semantic convention names."""
    attributes: dict[str, Any] = {
        "feature_flag.key": key,
        "feature_flag.provider.name": "posthog",
        "feature_flag.context.id": who,
        "feature_flag.result.reason": _reason(evaluation),
    }
    flag = evaluation.flag
    if flag is None:
        attributes["error.type"] = evaluation.error or "flag_missing"
    elif flag.variant is not None:
        attributes["feature_flag.result.variant"] = flag.variant
    else:
        attributes["feature_flag.result.value"] = bool(flag.enabled)
    if flag is not None and flag.version is not None:
        attributes["feature_flag.version"] = str(flag.version)
    return attributes


def _reason(evaluation: Evaluation) -> str:
    if evaluation.flag is None:
        return "error"
    if evaluation.source in ("cached", "stale"):
        return evaluation.source
    return "targeting_match" if evaluation.flag.enabled else "disabled"


def _canonical(value: Mapping[str, Any] | None) -> str | None:
    """A hashable, order-independent form of groups and properties for the cache key."""
    if not value:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
