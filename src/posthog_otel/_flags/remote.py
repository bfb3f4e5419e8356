"""Flags asked of PostHog's flag service, through the cache; answers read as evaluations.

One request per user and context (groups and properties) per ``cache_ttl``. A flag
the answer lacks is ``flag_missing``, unless PostHog said it was quota-limited, or
had errors computing flags: then a missing flag is an error, and the last known
value is served as stale.

The cache (``FlagCache``): one fetch per user and context per TTL, never a pile-up.

- A bounded LRU of answers, each fresh for ``ttl`` seconds.
- Identical concurrent lookups share one request (single flight).
- When a fetch fails (no answer, an error status, or an answer we cannot read),
  an expired answer is served as stale for ``grace`` more seconds, and a breaker
  stops further fetches for a growing backoff (1 s, 2 s, ... 30 s, or
  ``Retry-After`` up to 5 minutes), so an outage costs one failed request per
  backoff window instead of a timeout per lookup. A fetch never raises into the
  caller.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from posthog_otel import _forksafe, _otel
from posthog_otel._client.connection import Connection
from posthog_otel._client.retry import retry_after_seconds
from posthog_otel._flagdata import FeatureFlag, FlagsResponse
from posthog_otel.errors import APIError, PostHogError

__all__ = ["Evaluation", "RemoteFlags"]

Properties = Mapping[str, Any]


class Evaluation(NamedTuple):
    """One flag read: the flag (or ``None``), where the answer came from (``local`` for
    local evaluation), and why it is missing. (A named tuple: one is made per lookup.)"""

    flag: FeatureFlag | None
    source: Source
    error: str | None = None


class RemoteFlags:
    """Every flag for a user and context, from PostHog, cached."""

    def __init__(self, connection: Connection, cache: FlagCache) -> None:
        self._connection = connection
        self._cache = cache

    def lookup(
        self,
        who: str,
        groups: dict[str, str] | None,
        person_properties: Properties | None,
        group_properties: Mapping[str, Properties] | None,
    ) -> Lookup:
        if groups or person_properties or group_properties:
            key = _key(who, groups, person_properties, group_properties)
        else:
            key = who, None, None, None  # the common read, with no context
        hit = self._cache.fresh(key)
        if hit is not None:
            return hit
        connection = self._connection

        def fetch() -> FlagsResponse:
            with _otel.suppressed():
                return connection.fetch_flags(
                    who, groups, group_properties, person_properties, retry=False
                )

        return self._cache.lookup(key, fetch)

    def peek(
        self,
        who: str,
        groups: dict[str, str] | None,
        person_properties: Properties | None,
        group_properties: Mapping[str, Properties] | None,
    ) -> Lookup | None:
        """The answer if it needs no request (see ``FlagCache.peek``), else ``None``."""
        return self._cache.peek(_key(who, groups, person_properties, group_properties))


def all_flags(lookup: Lookup) -> dict[str, FeatureFlag] | None:
    """Every flag in the answer (marked stale if it is); ``None`` when there is none."""
    if lookup.entry is None:
        return None
    flags = dict(lookup.entry.answer.flags)
    if lookup.source == "stale":
        flags = {k: stale(f) for k, f in flags.items()}
    return flags


def evaluation(lookup: Lookup, key: str) -> Evaluation:
    """Flag ``key`` as the answer gives it, or why it does not (a cached answer's flags
    are read once per answer, then remembered with it)."""
    entry = lookup.entry
    if lookup.source == "cached" and entry is not None:
        known = entry.reads.get(key)
        if known is None:
            known = _evaluation(lookup, entry, key)
            if known.flag is not None:  # bounded by the answer's flags
                entry.reads[key] = known
        return known
    if entry is None:
        return Evaluation(None, "unavailable", lookup.error or "flag service unavailable")
    return _evaluation(lookup, entry, key)


def _evaluation(lookup: Lookup, entry: Entry, key: str) -> Evaluation:
    answer = entry.answer
    flag = answer.flags.get(key)
    if flag is not None:
        is_stale = lookup.source == "stale"
        return Evaluation(stale(flag) if is_stale else flag, lookup.source, lookup.error)
    if answer.quota_limited:
        return Evaluation(None, lookup.source, "quota_limited")
    if answer.errors_while_computing_flags:
        # PostHog says some flags may be missing: a missing key is an error, not "off".
        earlier = entry.previous.answer.flags.get(key) if entry.previous is not None else None
        if earlier is not None:
            return Evaluation(stale(earlier), "stale", "errors_while_computing_flags")
        return Evaluation(None, "unavailable", "errors_while_computing_flags")
    return Evaluation(None, lookup.source, "flag_missing")


def stale(flag: FeatureFlag) -> FeatureFlag:
    return dataclasses.replace(flag, reason=f"stale: {flag.reason or 'cached answer'}")


def _key(
    who: str,
    groups: dict[str, str] | None,
    person_properties: Properties | None,
    group_properties: Mapping[str, Properties] | None,
) -> tuple[str, str | None, str | None, str | None]:
    if not (groups or person_properties or group_properties):
        return who, None, None, None  # the common read, with no context
    return who, _canonical(groups), _canonical(person_properties), _canonical(group_properties)


def _canonical(value: Mapping[str, Any] | None) -> str | None:
    """A hashable, order-independent form of groups and properties for the cache key."""
    if not value:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


logger = logging.getLogger(__name__)

# Where an answer came from; "local" is local evaluation, which does not use this cache.
Source = Literal["fresh", "cached", "stale", "unavailable", "local"]
MAX_BACKOFF = 30.0
# A 429 asking for a day must not turn flags off for a day: Retry-After is capped.
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True)
class Entry:
    answer: FlagsResponse
    fetched_at: float
    previous: Entry | None = None  # the answer before, for flags a partial answer lacks
    # Made once per answer, so a cached read allocates nothing: the lookup it returns,
    # and each flag's evaluation as read from the cache (``evaluation``).
    cached: Lookup = field(init=False, repr=False, compare=False)
    reads: dict[str, Evaluation] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cached", Lookup(self, "cached"))
        object.__setattr__(self, "reads", {})


@dataclass(frozen=True)
class Lookup:
    entry: Entry | None
    source: Source
    error: str | None = None
    failure: Exception | None = None  # what this lookup's own fetch raised, if it failed


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Lookup | None = None


class FlagCache:
    def __init__(
        self,
        *,
        ttl: float,
        size: int,
        grace: float,
        clock: Callable[[], float],
        wait_timeout: float,
    ) -> None:
        if ttl < 0 or grace < 0 or size < 1:
            raise ValueError("cache_ttl and stale_grace must be >= 0 and cache_size >= 1")
        self._ttl = ttl
        self._size = size
        self._grace = grace
        self._clock = clock
        self._wait_timeout = wait_timeout
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._flights: dict[Hashable, _Flight] = {}
        self._lock = threading.Lock()
        self._blocked_until = 0.0
        self._backoff = 0.0
        self._warned = False
        _forksafe.register(self)

    def _after_fork(self) -> None:
        # Fetches the parent had in flight will never finish here: forget them.
        self._lock = threading.Lock()
        self._flights = {}

    def fresh(self, key: Hashable) -> Lookup | None:
        """The cached answer for ``key`` if it is fresh, else ``None`` (the read path: one
        lock, no allocation)."""
        now = self._clock()
        lock = self._lock
        lock.acquire()  # not ``with``: this runs on every cached read, and costs half
        try:
            entry = self._entries.get(key)
            if entry is None or now - entry.fetched_at >= self._ttl:
                return None
            self._entries.move_to_end(key)
            return entry.cached
        finally:
            lock.release()

    def peek(self, key: Hashable) -> Lookup | None:
        """The answer for ``key`` if it can be had without waiting (cached and fresh, or a
        fallback while the breaker is open); ``None`` when a fetch must be waited for."""
        now = self._clock()
        with self._lock:
            return self._ready(key, now)[0]

    def lookup(self, key: Hashable, fetch: Callable[[], FlagsResponse]) -> Lookup:
        """The answer for ``key``: cached, fetched by us or by a concurrent caller, stale, or
        unavailable. ``fetch`` is called only when this caller leads a refresh."""
        now = self._clock()
        with self._lock:
            ready, entry = self._ready(key, now)
            if ready is not None:
                return ready
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            if not flight.done.wait(self._wait_timeout) or flight.result is None:
                return self._fallback(entry, now, "timed out waiting for the flag service")
            return flight.result
        result = Lookup(None, "unavailable", "fetch did not finish")
        try:
            result = self._refresh(key, entry, fetch)
        finally:
            with self._lock:
                del self._flights[key]
            flight.result = result
            flight.done.set()
        return result

    def _ready(self, key: Hashable, now: float) -> tuple[Lookup | None, Entry | None]:
        """Under the lock: the answer that needs no fetch, if any, and the entry held."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            if now - entry.fetched_at < self._ttl:
                return entry.cached, entry
        if now < self._blocked_until:
            return self._fallback(entry, now, "flag service unavailable, backing off"), entry
        return None, entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _refresh(
        self, key: Hashable, entry: Entry | None, fetch: Callable[[], FlagsResponse]
    ) -> Lookup:
        try:
            answer = fetch()
        except Exception as exc:  # noqa: BLE001 - a lookup must not raise into the application
            return self._failed(entry, exc)
        now = self._clock()
        fresh = Entry(answer, now, previous=entry if answer.errors_while_computing_flags else None)
        with self._lock:
            self._entries[key] = fresh
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
            self._backoff = 0.0
            self._blocked_until = 0.0
            recovered, self._warned = self._warned, False
        if recovered:
            logger.info("posthog-otel: the flag service answers again")
        return Lookup(fresh, "fresh")

    def _failed(self, entry: Entry | None, exc: Exception) -> Lookup:
        now = self._clock()
        with self._lock:
            self._backoff = min(MAX_BACKOFF, self._backoff * 2 or 1.0)
            wait = self._backoff
            if isinstance(exc, APIError) and exc.status == 429:
                asked = retry_after_seconds(exc.headers.get("retry-after")) or 0.0
                wait = max(wait, min(asked, MAX_RETRY_AFTER))
            self._blocked_until = now + wait
            first, self._warned = not self._warned, True
        if first:
            logger.warning(
                "posthog-otel: feature flags unavailable (%s); serving cached values or "
                "defaults, and retrying in %.0f s. Logged once until the service answers.",
                exc if isinstance(exc, PostHogError) else f"{type(exc).__name__}: {exc}",
                wait,
            )
        return self._fallback(entry, now, str(exc) or type(exc).__name__, exc)

    def _fallback(
        self, entry: Entry | None, now: float, why: str, failure: Exception | None = None
    ) -> Lookup:
        if entry is not None and now - entry.fetched_at < self._ttl + self._grace:
            return Lookup(entry, "stale", why, failure)
        return Lookup(None, "unavailable", why, failure)
