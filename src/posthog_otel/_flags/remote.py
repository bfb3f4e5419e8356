"""Flags asked of PostHog's flag service, through the cache; answers read as evaluations.

One request per user and context (groups and properties) per ``cache_ttl``. A flag
the answer lacks is ``flag_missing``, unless PostHog said it was quota-limited, or
had errors computing flags: then a missing flag is an error, and the last known
value is served as stale.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from posthog_otel import _otel
from posthog_otel._client.connection import Connection
from posthog_otel._flagdata import FeatureFlag, FlagsResponse
from posthog_otel._flags.cache import FlagCache, Lookup, Source

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
        key = _key(who, groups, person_properties, group_properties)
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
    """Flag ``key`` as the answer gives it, or why it does not."""
    entry = lookup.entry
    if entry is None:
        return Evaluation(None, "unavailable", lookup.error or "flag service unavailable")
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
    return who, _canonical(groups), _canonical(person_properties), _canonical(group_properties)


def _canonical(value: Mapping[str, Any] | None) -> str | None:
    """A hashable, order-independent form of groups and properties for the cache key."""
    if not value:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
