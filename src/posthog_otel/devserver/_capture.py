"""Capture bodies, both wire forms, validated as PostHog's capture service does and
shaped for storage. Pure: a body in, events out, or a ``RejectError`` naming the event.

Legacy (v0): ``/batch/``, ``/capture/``, ``/e/``, ``/i/v0/e/``, ``/track/`` and the AI
lane ``/i/v0/ai/batch/``: a ``{"api_key", "batch": [...]}`` object, one event object,
or a list of events. Capture v1 (``/i/v1/analytics/events``, opt-in in posthog-python
and posthog-node with ``POSTHOG_CAPTURE_MODE=v1``): Bearer auth, ``{"created_at",
"batch"}``, typed ``options`` and ``session_id``/``window_id`` beside ``properties``,
``$lib`` from the ``PostHog-Sdk-Info`` header, and an answer per event uuid.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from posthog_otel.devserver._wire import RejectError, at

MAX_DISTINCT_ID = 200
_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:?\d\d)?")

# Capture v1's typed options, and the legacy property each stands for.
_V1_OPTIONS = {
    "process_person_profile": ("$process_person_profile", bool),
    "cookieless_mode": ("$cookieless_mode", bool),
    "disable_skew_correction": ("$ignore_sent_at", bool),
    "product_tour_id": ("$product_tour_id", str),
}
_V1_TOP_LEVEL = {"session_id": "$session_id", "window_id": "$window_id"}


def legacy_events(payload: Any, *, event_limit: int) -> tuple[str, list[dict[str, Any]]]:
    """The project key and the events of a legacy capture body, all valid or none."""
    if isinstance(payload, Mapping) and "batch" in payload:
        events, where = payload["batch"], "batch"
    elif isinstance(payload, list):
        events, where = payload, ""
    else:
        events, where = [payload], None
    if not isinstance(events, list) or not events:
        raise RejectError(400, "empty_batch", "the batch holds no events", attr="batch")
    key = _legacy_key(payload if isinstance(payload, Mapping) else {}, events)
    stored = [
        _stored(event, "" if where is None else f"{where}[{i}]", event_limit)
        for i, event in enumerate(events)
    ]
    return key, stored


def v1_events(payload: Any, sdk_info: str, *, event_limit: int) -> list[dict[str, Any]]:
    """The events of a capture v1 body, all valid or none, with their options turned
    back into the properties PostHog stores."""
    if not isinstance(payload, Mapping):
        raise RejectError(400, "invalid_payload", "expected a JSON object")
    events = payload.get("batch")
    if not isinstance(events, list) or not events:
        raise RejectError(400, "empty_batch", "the batch holds no events", attr="batch")
    created_at = payload.get("created_at")
    if not isinstance(created_at, str) or parse_time(created_at) is None:
        raise RejectError(
            400, "invalid_payload", "created_at must be an RFC 3339 time", attr="created_at"
        )
    lib, _, version = sdk_info.partition("/")
    if not lib or not version:
        raise RejectError(
            400, "missing_sdk_info", "the PostHog-Sdk-Info header must be <library>/<version>"
        )
    stored = []
    for i, event in enumerate(events):
        where = f"batch[{i}]"
        if not isinstance(event, Mapping):
            raise RejectError(400, "invalid_payload", at(where, "not a JSON object"), attr=where)
        for name in ("uuid", "timestamp"):
            if not isinstance(event.get(name), str):
                raise _missing(where, name, f"every v1 event needs a {name}")
        properties = _object(event, "properties", where) or {}
        properties = {**properties, "$lib": lib, "$lib_version": version}
        options = _object(event, "options", where) or {}
        for option, value in options.items():
            if option in _V1_OPTIONS:
                name, kind = _V1_OPTIONS[option]
                if not isinstance(value, kind):
                    detail = at(where, f"options.{option} must be a {kind.__name__}")
                    raise RejectError(400, "invalid_payload", detail, attr=f"{where}.options")
                properties[name] = value
        for field, name in _V1_TOP_LEVEL.items():
            if field in event:
                if not isinstance(event[field], str):
                    raise RejectError(
                        400, "invalid_payload", at(where, f"{field} must be a string")
                    )
                properties[name] = event[field]
        shaped = {k: event[k] for k in ("event", "distinct_id", "uuid", "timestamp") if k in event}
        stored.append(_stored({**shaped, "properties": properties}, where, event_limit))
    return stored


def v1_answer(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Capture v1's success body: a result for every event, by uuid."""
    return {"results": {e["uuid"]: {"result": "ok"} for e in events}}


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 / RFC 3339 time, UTC when it names no offset; None if unreadable.
    Fractions of any length are read (Python 3.10's parser takes only 3 or 6 digits)."""
    found = _TIME.fullmatch(text.strip())
    if found is None:
        return None
    day, clock, fraction, zone = found.groups()
    zone = "+00:00" if zone in ("Z", "z", None) else f"{zone[:3]}:{zone[-2:]}"
    try:
        when = datetime.fromisoformat(f"{day}T{clock}.{(fraction or '0')[:6]:0<6}{zone}")
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _legacy_key(payload: Mapping[str, Any], events: list[Any]) -> str:
    key = payload.get("api_key") or payload.get("token")
    if not key and isinstance(events[0], Mapping):
        first = events[0]
        props = first.get("properties")
        props = props if isinstance(props, Mapping) else {}
        key = first.get("api_key") or first.get("token") or props.get("token")
    if not isinstance(key, str) or not key:
        raise RejectError(401, "missing_api_key", "API key is required")
    return key


def _stored(event: Any, where: str, event_limit: int) -> dict[str, Any]:
    """One event validated and shaped for storage; errors name it by ``where``."""
    if not isinstance(event, Mapping):
        raise RejectError(
            400, "invalid_payload", at(where, "not a JSON object"), attr=where or None
        )
    name = event.get("event")
    if not isinstance(name, str) or not name:
        raise _missing(where, "event", "every event needs an event name", "missing_event_name")
    properties = _object(event, "properties", where) or {}
    distinct_id = event.get("distinct_id")
    if distinct_id is None:
        distinct_id = properties.get("distinct_id", properties.get("$distinct_id"))
    if isinstance(distinct_id, bool) or not isinstance(distinct_id, (str, int, float)):
        raise _missing(where, "distinct_id", "every event needs a distinct_id")
    distinct_id = str(distinct_id)[:MAX_DISTINCT_ID]
    if not distinct_id.strip():
        raise _missing(where, "distinct_id", "every event needs a distinct_id")
    size = len(json.dumps(event, ensure_ascii=False).encode())
    if size > event_limit:
        detail = at(where, f"event {name[:100]!r} is {size} bytes, over {event_limit}")
        raise RejectError(413, "event_too_big", detail, attr=where or None)
    raw_uuid = event.get("uuid")
    try:
        event_uuid = str(uuid.UUID(raw_uuid)) if raw_uuid is not None else str(uuid.uuid4())
    except (TypeError, ValueError, AttributeError):
        where_uuid = f"{where}.uuid" if where else "uuid"
        detail = at(where, f"uuid {str(raw_uuid)[:60]!r} is not a UUID")
        raise RejectError(400, "invalid_uuid", detail, attr=where_uuid) from None
    return {
        "uuid": event_uuid,
        "event": name,
        "distinct_id": distinct_id,
        "timestamp": _timestamp(event),
        "properties": dict(properties),
    }


def _timestamp(event: Mapping[str, Any]) -> str:
    """The event's time as sent when readable; else now less any ``offset`` (ms), as
    posthog-js sends it; PostHog likewise replaces a time it cannot read."""
    timestamp = event.get("timestamp")
    if isinstance(timestamp, str) and parse_time(timestamp) is not None:
        return timestamp
    now = datetime.now(timezone.utc)
    offset = event.get("offset")
    if isinstance(offset, (int, float)) and not isinstance(offset, bool) and offset >= 0:
        now -= timedelta(milliseconds=min(offset, 10**10))
    return now.isoformat()


def _object(event: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any] | None:
    value = event.get(name)
    if value is not None and not isinstance(value, Mapping):
        attr = f"{where}.{name}" if where else name
        raise RejectError(400, "invalid_payload", at(where, f"{name} must be an object"), attr=attr)
    return value


def _missing(where: str, name: str, detail: str, code: str = "") -> RejectError:
    return RejectError(
        400,
        code or f"missing_{name}",
        at(where, detail),
        attr=f"{where}.{name}" if where else name,
    )
