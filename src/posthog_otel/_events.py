"""The PostHog event value: validation, timestamps, uuids, encoding and size limits.

Events are encoded one by one and joined into batch bodies, so every size is
exact, an oversize event is found before anything is sent, and one bad event
never spoils its neighbours. A batch body keeps ``sent_at`` as its last key so
a retry rewrites only that.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import time
import uuid as uuid_module
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from posthog_otel._gzip import GzipWriter, SealedGzip
from posthog_otel._json import dumps, to_json_value
from posthog_otel._version import __version__

LIB = "posthog-otel"
MAX_EVENT_BYTES = 900 * 1024  # PostHog discards events over 1 MB
MAX_BATCH_BYTES = 5 * 1024 * 1024  # per request, uncompressed (the server allows 20 MB)
_BATCH_OVERHEAD = 512  # api_key, sent_at and the JSON around the events

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


_TAIL_SIZE = len(b'],"sent_at":"2026-01-01T00:00:00.000000+00:00"}')


class OpenBatch:
    """A ``/batch/`` body being filled: the head, then event JSON joined by commas.

    ``seal`` compresses it in one call (when gzip is on), so a batch waiting for the
    network holds about a tenth of its size. One call, not one per chunk as it fills:
    each ``compress`` releases the GIL, and winning it back from a busy application
    can take a whole switch interval (5 ms), which measurably starved the encoder.
    """

    __slots__ = ("_data", "_gzip", "_head", "starts")

    def __init__(self, head: bytes, *, gzip: bool) -> None:
        self._head = head
        self._gzip = gzip
        self._data = bytearray(head)
        self.starts: list[int] = []  # where each event begins in the body

    def __len__(self) -> int:
        return len(self.starts)

    def fits(self, encoded: bytes, limit: int = MAX_BATCH_BYTES) -> bool:
        """Whether ``encoded`` can join without the body passing ``limit`` (a lone event can)."""
        return not self.starts or len(self._data) + len(encoded) + 1 + _TAIL_SIZE <= limit

    def add(self, encoded: bytes) -> None:
        if self.starts:
            self._data += b","
        self.starts.append(len(self._data))
        self._data += encoded

    def seal(self) -> SealedBatch:
        if not self._gzip:
            return SealedBatch(self._head, bytes(self._data), self.starts, gzipped=False)
        writer = GzipWriter()
        writer.write(self._data)
        return SealedBatch(self._head, writer.seal(), self.starts, gzipped=True)


class SealedBatch:
    """A finished batch as it will be sent, compressed once when gzip is on.

    ``sent_at`` is the body's last key, so each attempt writes only that tail and a
    retry reports the time it is really sent; a batch PostHog finds too large can
    still be opened again and halved.
    """

    __slots__ = ("_head", "_prefix", "gzipped", "starts")

    def __init__(
        self, head: bytes, prefix: bytes | SealedGzip, starts: list[int], *, gzipped: bool
    ) -> None:
        self._head = head
        self._prefix = prefix
        self.starts = starts
        self.gzipped = gzipped

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def nbytes(self) -> int:
        """Bytes held while waiting to be sent."""
        prefix = self._prefix
        return len(prefix.data if isinstance(prefix, SealedGzip) else prefix)

    def body(self, sent_at: str | None = None) -> bytes:
        tail = b'],"sent_at":' + dumps(sent_at or now_iso()) + b"}"
        if isinstance(self._prefix, SealedGzip):
            return self._prefix.finish(tail)
        return self._prefix + tail

    def events(self) -> list[bytes]:
        """Each event's JSON again (for splitting a batch in two)."""
        raw = self._prefix.unsealed() if isinstance(self._prefix, SealedGzip) else self._prefix
        ends = [start - 1 for start in self.starts[1:]] + [len(raw)]
        return [raw[start:end] for start, end in zip(self.starts, ends, strict=True)]

    def halves(self) -> tuple[SealedBatch, SealedBatch]:
        events = self.events()
        middle = len(events) // 2
        return self._sealed(events[:middle]), self._sealed(events[middle:])

    def _sealed(self, events: list[bytes]) -> SealedBatch:
        batch = OpenBatch(self._head, gzip=self.gzipped)
        for event in events:
            batch.add(event)
        return batch.seal()


def batch_head(api_key: str) -> bytes:
    """Everything in a ``/batch/`` body before the first event."""
    return dumps({"api_key": api_key, "historical_migration": False})[:-1] + b',"batch":['


def batches(
    encoded: Iterable[bytes],
    head: bytes,
    *,
    gzip: bool,
    max_events: int | None = None,
    limit: int = MAX_BATCH_BYTES,
) -> Iterator[SealedBatch]:
    """Pack events, in order, into as few sealed batches as the size limits allow; each
    batch is yielded as soon as it is full, so a caller can send while it encodes."""
    batch = OpenBatch(head, gzip=gzip)
    for item in encoded:
        full = max_events is not None and len(batch) >= max_events
        if batch and (full or not batch.fits(item, limit)):
            yield batch.seal()
            batch = OpenBatch(head, gzip=gzip)
        batch.add(item)
    if batch:
        yield batch.seal()
