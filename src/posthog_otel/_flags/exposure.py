"""``$feature_flag_called``: what it carries, and remembering who was already reported.

PostHog counts experiment exposures from this event, so it goes out once per
user, flag, value and groups (PostHog's SDKs do the same), from a bounded memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any

from posthog_otel import _forksafe
from posthog_otel._flags.values import FeatureFlag, FlagsResponse

REMEMBERED = 50_000  # exposures remembered per process, least recently seen first out
USERS_REMEMBERED = 10_000  # users whose flag values are kept for their later events


class SeenSet:
    """Remembers at most ``maxsize`` keys; ``add`` says whether a key is new."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._maxsize = maxsize
        self._keys: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()
        _forksafe.register(self)

    def add(self, key: Hashable) -> bool:
        """Record ``key``; ``True`` if it was not already remembered."""
        with self._lock:
            if key in self._keys:
                self._keys.move_to_end(key)
                return False
            self._keys[key] = None
            if len(self._keys) > self._maxsize:
                self._keys.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._keys)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


class ExposureLog:
    """Which (user, flag, value, groups) exposures were already reported."""

    def __init__(self, maxsize: int = REMEMBERED) -> None:
        self._seen = SeenSet(maxsize)

    def first(
        self, distinct_id: str, flag: str, value: Any, groups: Mapping[str, str] | None
    ) -> bool:
        """``True`` the first time this exposure is seen (and remembers it)."""
        groups_key = tuple(sorted(groups.items())) if groups else ()
        return self._seen.add((distinct_id, flag, value, groups_key))


class ExposedValues:
    """The flag values each user was last given here, for the ``$feature/<key>`` of
    their later events (OpenFeature tracking). Bounded: the user first seen longest ago
    goes first. A read that repeats a known value takes no lock."""

    def __init__(self, maxsize: int = USERS_REMEMBERED) -> None:
        self._maxsize = maxsize
        self._users: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        _forksafe.register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def note(self, distinct_id: str, flag: str, value: Any) -> None:
        known = self._users.get(distinct_id)
        if known is not None and flag in known and known[flag] == value:
            return
        with self._lock:
            values = self._users.get(distinct_id)
            if values is None:
                values = self._users[distinct_id] = {}
                if len(self._users) > self._maxsize:
                    self._users.popitem(last=False)
            values[flag] = value

    def of(self, distinct_id: str) -> dict[str, Any]:
        """``{"$feature/<key>": value}`` for every flag this user was given."""
        with self._lock:
            values = dict(self._users.get(distinct_id) or {})
        return {f"$feature/{key}": value for key, value in values.items()}


def flag_called_properties(
    name: str,
    flag: FeatureFlag | None,
    answer: FlagsResponse | None = None,
    error: str = "",
    locally_evaluated: bool = False,
) -> dict[str, Any]:
    """The properties of a ``$feature_flag_called`` event, as PostHog's SDKs send them."""
    value = None if flag is None else flag.enabled
    properties: dict[str, Any] = {
        "$feature_flag": name,
        "$feature_flag_response": value,
        f"$feature/{name}": value,
        "locally_evaluated": locally_evaluated,
    }
    if flag is not None:
        optional = {
            "$feature_flag_payload": flag.payload,
            "$feature_flag_id": flag.id,
            "$feature_flag_version": flag.version,
            "$feature_flag_reason": flag.reason,
            "$feature_flag_request_id": flag.request_id,
        }
        properties.update({k: v for k, v in optional.items() if v is not None})
    errors = [error] if error else []
    if answer is not None and answer.errors_while_computing_flags:
        errors.append("errors_while_computing_flags")
    if answer is not None and answer.quota_limited:
        errors.append("quota_limited")
    if flag is None and not error:
        errors.append("flag_missing")
    if errors:
        properties["$feature_flag_error"] = ",".join(dict.fromkeys(errors))
    return properties
