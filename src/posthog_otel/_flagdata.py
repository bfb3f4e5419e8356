"""Flags as values, shared by the client, the flags and the devserver (stdlib only).

What a flag answer is (``FeatureFlag``, ``FlagsResponse``, both response shapes of the
flag service parsed), why a flag has its value (``result_reason``, in the words
OpenFeature and OpenTelemetry share), who was exposed to what (``$feature_flag_called``
and the bounded memory behind it), and a project's flag definitions as
``/flags/definitions`` answers them. It sits below ``_client`` and ``_flags`` so that
neither imports the other's layer.

Reasons: OpenTelemetry's ``feature_flag.result.reason`` and OpenFeature's ``Reason``
use one vocabulary (``static``, ``targeting_match``, ``default``, ``disabled``,
``cached``, ``stale``, ``error``); ``result_reason`` reads PostHog's answer into it, so
a span event and an OpenFeature resolution of the same read say the same thing:

- ``disabled``: the flag is inactive in PostHog (``flag_disabled``).
- ``stale`` / ``cached``: the answer came from the cache (stale during an outage).
- ``static``: local evaluation found that every user gets this value.
- ``targeting_match``: a condition matched (and the user fell inside its rollout).
- ``default``: the flag is off for this user: no condition matched, the user is outside
  the rollout, or a group the flag needs was not given.
- ``error``: there is no flag to read.

Exposures: PostHog counts experiment exposures from ``$feature_flag_called``, so it
goes out once per user, flag, value and groups (PostHog's SDKs do the same), from a
bounded memory.

Definitions: the answer is ``{"flags": [...], "group_type_mapping": {"0": "company"},
"cohorts": {"<id>": {"type": "AND"|"OR", "values": [...]}}}``, optionally with
``property_matching_version``. A flag without a string ``key`` is left out (it could
never be asked for); anything else odd in one flag is kept, and that flag is then asked
of PostHog when it is used.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from posthog_otel import _forksafe
from posthog_otel._limits import FLAG_EXPOSURES_PER_THREAD, FLAG_MAX_PAYLOAD_DEPTH

__all__ = [
    "FLAG_DISABLED",
    "REMEMBERED",
    "USERS_REMEMBERED",
    "ExposedValues",
    "ExposureLog",
    "FeatureFlag",
    "FlagDefinitions",
    "FlagsResponse",
    "RawPayload",
    "ResultReason",
    "SeenSet",
    "decode_payload",
    "flag_called_properties",
    "parse_definitions",
    "parse_flags_response",
    "result_reason",
]

FlagValue = bool | str


@dataclass(frozen=True)
class FeatureFlag:
    """One flag's value for one user.

    ``enabled`` is the flag's value, as in PostHog's other SDKs: ``True`` or
    ``False``, or the variant's name for a multivariate flag. ``reason_code`` is
    PostHog's reason (``condition_match``, ``no_condition_match``,
    ``out_of_rollout_bound``, ``flag_disabled``, ...) when known; ``static`` says local
    evaluation found that every user gets this value (no targeting, no split).
    """

    name: str
    enabled: FlagValue
    payload: Any = None
    variant: str | None = None
    reason: str | None = None
    id: int | None = None
    version: int | None = None
    request_id: str | None = None
    reason_code: str | None = None
    static: bool = False

    @property
    def value(self) -> FlagValue:
        """Same as ``enabled``; reads better for multivariate flags."""
        return self.enabled


@dataclass(frozen=True)
class FlagsResponse:
    """What ``/decide`` (or ``/flags``) answered for one user."""

    flags: Mapping[str, FeatureFlag] = field(default_factory=dict)
    request_id: str | None = None
    errors_while_computing_flags: bool = False
    quota_limited: bool = False

    @property
    def feature_flags(self) -> dict[str, FlagValue]:
        """Flag key to value, like the legacy ``featureFlags`` map."""
        return {key: flag.enabled for key, flag in self.flags.items()}

    @property
    def feature_flag_payloads(self) -> dict[str, Any]:
        """Flag key to decoded payload, for flags that have one."""
        return {key: f.payload for key, f in self.flags.items() if f.payload is not None}


class RawPayload(str):
    """A payload that is not valid JSON, kept as its text (still a ``str``), so readers
    that need JSON can tell it from a payload that is a JSON string."""

    __slots__ = ()


def decode_payload(raw: Any) -> Any:
    """Payloads arrive JSON-encoded: decode them, keeping a non-JSON string as it is
    (as a ``RawPayload``).

    Raises:
        ValueError: the payload nests deeper than ``FLAG_MAX_PAYLOAD_DEPTH``. Whether
            ``json`` itself can read such a payload depends on the Python version (3.13's
            parser goes far deeper than 3.12's), so the bound is ours: in a flags answer
            it is a failed fetch, in a definition it costs only that flag.
    """
    if not isinstance(raw, str):
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return RawPayload(raw)
    except RecursionError:
        value = None  # deeper than this interpreter parses: deeper than the bound too
    else:
        if not _deeper_than(value, FLAG_MAX_PAYLOAD_DEPTH):
            return value
    raise ValueError(f"a flag payload nests deeper than {FLAG_MAX_PAYLOAD_DEPTH} levels")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` has lists or objects nested more than ``limit`` levels (no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth >= limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def parse_flags_response(body: Any) -> FlagsResponse:
    """Accept both the detailed (``flags``) and the legacy (``featureFlags``) shapes."""
    if not isinstance(body, Mapping):
        raise ValueError(f"flag service answered {type(body).__name__}, not a JSON object")
    request_id = _str_or_none(body.get("requestId"))
    errors = bool(body.get("errorsWhileComputingFlags", False))
    quota = body.get("quotaLimited")
    quota_limited = isinstance(quota, list) and "feature_flags" in quota
    flags: dict[str, FeatureFlag] = {}
    if quota_limited:
        pass
    elif isinstance(body.get("flags"), Mapping):
        for key, detail in body["flags"].items():
            if isinstance(detail, Mapping):
                flags[str(key)] = _detailed_flag(str(key), detail, request_id)
    elif isinstance(body.get("featureFlags"), Mapping):
        payloads = body.get("featureFlagPayloads")
        payloads = payloads if isinstance(payloads, Mapping) else {}
        for key, value in body["featureFlags"].items():
            if isinstance(value, (bool, str)):
                flags[str(key)] = FeatureFlag(
                    name=str(key),
                    enabled=value,
                    payload=decode_payload(payloads.get(key)),
                    variant=value if isinstance(value, str) else None,
                    request_id=request_id,
                )
    return FlagsResponse(flags, request_id, errors, quota_limited)


def _detailed_flag(key: str, detail: Mapping[str, Any], request_id: str | None) -> FeatureFlag:
    variant = _str_or_none(detail.get("variant"))
    enabled = bool(detail.get("enabled", False))
    metadata = detail.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    reason = detail.get("reason")
    reason = reason if isinstance(reason, Mapping) else {}
    code = _str_or_none(reason.get("code"))
    description = reason.get("description")
    if description is None:
        description = code
    return FeatureFlag(
        name=key,
        enabled=variant if variant is not None else enabled,
        payload=decode_payload(metadata.get("payload")),
        variant=variant,
        reason=_str_or_none(description),
        id=_int_or_none(metadata.get("id")),
        version=_int_or_none(metadata.get("version")),
        request_id=request_id,
        reason_code=code,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


ResultReason = Literal[
    "static", "targeting_match", "default", "disabled", "cached", "stale", "error"
]
FLAG_DISABLED = "flag_disabled"  # PostHog's reason code for an inactive flag


def result_reason(flag: FeatureFlag | None, source: str) -> ResultReason:
    """The reason for ``flag`` as read from ``source`` (``fresh``, ``cached``, ``stale``,
    ``local`` or ``unavailable``)."""
    if flag is None:
        return "error"
    if flag.reason_code == FLAG_DISABLED:
        return "disabled"
    if source == "stale":
        return "stale"
    if source == "cached":
        return "cached"
    if flag.static:
        return "static"
    return "targeting_match" if flag.enabled else "default"


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
        lock = self._lock
        lock.acquire()  # not ``with``: every flag read asks, and this costs half
        try:
            if key in self._keys:
                self._keys.move_to_end(key)
                return False
            self._keys[key] = None
            if len(self._keys) > self._maxsize:
                self._keys.popitem(last=False)
            return True
        finally:
            lock.release()

    def __len__(self) -> int:
        return len(self._keys)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


class ExposureLog:
    """Which (user, flag, value, groups) exposures were already reported.

    The log is shared, behind a lock; each thread also remembers the last
    ``FLAG_EXPOSURES_PER_THREAD`` exposures it found there, so a flag read again and
    again (the common case) is answered with no lock. Such a read does not refresh the
    shared log's recency: at its bound, an exposure read only from a thread's memory may
    be forgotten and reported once more, as any exposure out of the log is."""

    def __init__(self, maxsize: int = REMEMBERED) -> None:
        self._seen = SeenSet(maxsize)
        self._mine = threading.local()

    def first(
        self, distinct_id: str, flag: str, value: Any, groups: Mapping[str, str] | None
    ) -> bool:
        """``True`` the first time this exposure is seen (and remembers it)."""
        key = (distinct_id, flag, value, tuple(sorted(groups.items())) if groups else ())
        try:
            known: set[Hashable] = self._mine.known
        except AttributeError:
            known = self._mine.known = set()
        if key in known:
            return False
        new = self._seen.add(key)
        if len(known) >= FLAG_EXPOSURES_PER_THREAD:
            known.clear()
        known.add(key)
        return new


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


@dataclass(frozen=True)
class FlagDefinitions:
    """A project's feature flag definitions, for local evaluation.

    Attributes:
        flags: each flag's definition (a JSON object) by key, in PostHog's order.
        group_type_mapping: group type names by their index (``{"0": "company"}``).
        cohorts: the property groups of the cohorts flags refer to, by cohort id.
        property_matching_version: how ``exact``/``is_not`` read ``true``/``false``
            filters: 1 by truthiness, 2 as text.
        etag: PostHog's ETag for them, to ask later whether they changed.
    """

    flags: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    group_type_mapping: Mapping[str, str] = field(default_factory=dict)
    cohorts: Mapping[str, Any] = field(default_factory=dict)
    property_matching_version: int = 1
    etag: str | None = None

    def __post_init__(self) -> None:
        for name in ("flags", "group_type_mapping", "cohorts"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def changed_keys(self, older: FlagDefinitions | None) -> frozenset[str]:
        """Flags whose evaluation may differ from ``older``'s: added, removed or changed;
        every flag when cohorts, group types or the matching version changed."""
        if older is None:
            return frozenset(self.flags)
        if (
            self.cohorts != older.cohorts
            or self.group_type_mapping != older.group_type_mapping
            or self.property_matching_version != older.property_matching_version
        ):
            return frozenset(self.flags) | frozenset(older.flags)
        keys = self.flags.keys() | older.flags.keys()
        return frozenset(k for k in keys if self.flags.get(k) != older.flags.get(k))


def parse_definitions(body: Any, etag: str | None = None) -> FlagDefinitions:
    """``FlagDefinitions`` from the parsed JSON answer; ``ValueError`` when it is not one."""
    if not isinstance(body, Mapping):
        raise ValueError(f"flag definitions must be a JSON object, not {type(body).__name__}")
    flags = body.get("flags")
    if not isinstance(flags, list):
        raise ValueError("flag definitions have no 'flags' list")
    mapping = body.get("group_type_mapping") or {}
    cohorts = body.get("cohorts") or {}
    if not isinstance(mapping, Mapping) or not isinstance(cohorts, Mapping):
        raise ValueError("group_type_mapping and cohorts must be JSON objects")
    by_key: dict[str, Mapping[str, Any]] = {}
    for flag in flags:
        if isinstance(flag, Mapping) and isinstance(flag.get("key"), str) and flag["key"]:
            by_key[flag["key"]] = flag
    version = body.get("property_matching_version", 1)
    return FlagDefinitions(
        flags=by_key,
        group_type_mapping={str(k): v for k, v in mapping.items() if isinstance(v, str)},
        cohorts={str(k): v for k, v in cohorts.items()},
        property_matching_version=version if isinstance(version, int) else 1,
        etag=etag,
    )
