"""The PostHog event value: validation, timestamps, uuids, encoding, the per-event limit.

Events are encoded one by one (and joined into batch bodies by ``batch``), so an
oversize event is found before anything is sent and one bad event never spoils
its neighbours.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import time
import uuid as uuid_module
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from posthog_otel._json import dumps, to_json_value
from posthog_otel._version import LIB, __version__

MAX_EVENT_BYTES = 900 * 1024  # PostHog discards events over 1 MB

UTC = dt.timezone.utc


def uuid7() -> uuid_module.UUID:
    """A time-ordered UUID (RFC 9562 version 7), which PostHog stores efficiently."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid_module.UUID(int=value)


def iso_utc(when: dt.datetime) -> str:
    """``2026-08-22T09:00:00.123456+00:00`` for an aware datetime."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def now_iso() -> str:
    return iso_utc(dt.datetime.now(UTC))


def parse_timestamp(value: object, name: str = "timestamp") -> dt.datetime:
    """Aware datetimes as given, naive ones (and ISO strings without offset) as UTC."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):  # Python 3.10's fromisoformat rejects "Z"
            text = text[:-1] + "+00:00"
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name} {value!r} is not an ISO 8601 date and time") from None
    if not isinstance(value, dt.datetime):
        raise TypeError(
            f"{name} must be a datetime or an ISO 8601 string, not {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_uuid(value: object) -> uuid_module.UUID:
    if isinstance(value, uuid_module.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid_module.UUID(value)
        except ValueError:
            raise ValueError(f"uuid {value!r} is not a valid UUID") from None
    raise TypeError(f"uuid must be a uuid.UUID or its string form, not {type(value).__name__}")


def check_event_name(value: object) -> str:
    """A non-empty string, or an Enum member whose value is one."""
    if isinstance(value, enum.Enum):
        value = value.value
    if not isinstance(value, str):
        raise TypeError(f"event name must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValueError("event name must not be empty")
    return str(value)


def check_distinct_id(value: object, name: str = "distinct_id") -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a string, not {type(value).__name__} (use str(...) for numeric ids)"
        )
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def check_groups(value: object) -> dict[str, str]:
    """``{group type: group key}``; integer keys are accepted as strings."""
    if not isinstance(value, Mapping):
        raise TypeError(
            f"groups must be a mapping of group type to key, not {type(value).__name__}"
        )
    out: dict[str, str] = {}
    for kind, key in value.items():
        if not isinstance(kind, str) or not kind:
            raise TypeError(f"group type {kind!r} must be a non-empty string")
        if isinstance(key, bool) or not isinstance(key, (str, int)) or key == "":
            raise TypeError(f"group key for {kind!r} must be a non-empty string")
        out[kind] = str(key)
    return out


def check_properties(value: object, what: str = "properties") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, not {type(value).__name__}")
    converted = to_json_value(value, "" if what == "properties" else what)
    assert isinstance(converted, dict)
    return converted


@dataclass(frozen=True, init=False)
class Event:
    """One PostHog event, validated and given its uuid when built (so retries resend it).

    Args:
        event: the event name; a non-empty string or a string-valued Enum.
        distinct_id: who did it; a non-empty string.
        properties: JSON-serialisable values; datetimes, UUIDs, Decimals, sets
            and dataclasses are converted. Anything else raises ``TypeError``.
        timestamp: when it happened: an aware or naive (UTC) datetime, or an ISO
            8601 string. ``None``: the batch's timestamp, or the time it is sent.
        uuid: a ``uuid.UUID`` or its string form; a UUIDv7 is generated if absent.
        groups: ``{group type: group key}`` for group analytics.
    """

    event: str
    distinct_id: str
    properties: Mapping[str, Any] = field(hash=False)
    timestamp: dt.datetime | None
    uuid: uuid_module.UUID
    groups: Mapping[str, str] = field(hash=False)

    def __init__(
        self,
        event: str | enum.Enum,
        distinct_id: str,
        properties: Mapping[str, Any] | None = None,
        *,
        timestamp: dt.datetime | str | None = None,
        uuid: uuid_module.UUID | str | None = None,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "event", check_event_name(event))
        setattr_(self, "distinct_id", check_distinct_id(distinct_id))
        setattr_(self, "properties", check_properties(properties))
        setattr_(self, "timestamp", None if timestamp is None else parse_timestamp(timestamp))
        setattr_(self, "uuid", uuid7() if uuid is None else parse_uuid(uuid))
        setattr_(self, "groups", {} if groups is None else check_groups(groups))

    def to_wire(self, default_timestamp: str | None = None) -> dict[str, Any]:
        """The event object PostHog expects, with ``$lib`` and ``$groups`` filled in."""
        properties = dict(self.properties)
        properties.setdefault("$lib", LIB)
        properties.setdefault("$lib_version", __version__)
        if self.groups:
            properties["$groups"] = dict(self.groups)
        if self.timestamp is not None:
            timestamp = iso_utc(self.timestamp)
        else:
            timestamp = default_timestamp or now_iso()
        return {
            "event": self.event,
            "distinct_id": self.distinct_id,
            "properties": properties,
            "timestamp": timestamp,
            "uuid": str(self.uuid),
        }

    def encode(self, default_timestamp: str | None = None) -> bytes:
        """JSON bytes for this event; ``ValueError`` if over PostHog's per-event limit."""
        data = dumps(self.to_wire(default_timestamp))
        check_event_size(data, self.event)
        return data


def check_event_size(data: bytes, name: str) -> None:
    if len(data) > MAX_EVENT_BYTES:
        raise ValueError(
            f"event {name!r} is {len(data):,} bytes of JSON; PostHog accepts at most "
            f"{MAX_EVENT_BYTES:,} per event"
        )
