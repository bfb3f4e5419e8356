"""The event value: every input rule, uuids, timestamps, encoding and size limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from decimal import Decimal

import pytest

from posthog_otel import Event
from posthog_otel._client.events import MAX_EVENT_BYTES, uuid7


class Action(str, enum.Enum):
    SIGNED_UP = "signed_up"


class Plain(enum.Enum):
    VIEWED = "viewed"
    NUMBER = 7


@dataclasses.dataclass
class Cart:
    items: int
    total: Decimal


def test_event_names():
    assert Event("clicked", "u").event == "clicked"
    assert Event(Action.SIGNED_UP, "u").event == "signed_up"
    assert Event(Plain.VIEWED, "u").event == "viewed"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", ValueError),
        ("   ", ValueError),
        (None, TypeError),
        (42, TypeError),
        (Plain.NUMBER, TypeError),
    ],
)
def test_bad_event_names(name, error):
    with pytest.raises(error, match="event name"):
        Event(name, "u")


@pytest.mark.parametrize(
    ("distinct_id", "error"),
    [("", ValueError), (" ", ValueError), (None, TypeError), (123, TypeError)],
)
def test_bad_distinct_ids(distinct_id, error):
    with pytest.raises(error, match="distinct_id"):
        Event("e", distinct_id)


def test_timestamps_are_sent_as_iso_utc():
    aware = dt.datetime(2026, 8, 22, 11, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    naive = dt.datetime(2026, 8, 22, 9, 0, 0, 123456)
    expected = "2026-08-22T09:00:00.123456+00:00"
    for value in (aware, naive, "2026-08-22T09:00:00.123456Z", "2026-08-22T11:00:00.123456+02:00"):
        assert Event("e", "u", timestamp=value).to_wire()["timestamp"] == expected
    assert Event("e", "u", timestamp="2026-08-22 09:00:00").to_wire()["timestamp"] == (
        "2026-08-22T09:00:00.000000+00:00"
    )


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("yesterday", ValueError),
        ("2026-13-01T00:00:00", ValueError),
        (1700000000, TypeError),
        (dt.date(2026, 1, 1), TypeError),
    ],
)
def test_bad_timestamps(value, error):
    with pytest.raises(error, match="timestamp"):
        Event("e", "u", timestamp=value)


def test_missing_timestamp_uses_the_default_given_at_send_time():
    assert Event("e", "u").to_wire("2026-01-01T00:00:00.000000+00:00")["timestamp"] == (
        "2026-01-01T00:00:00.000000+00:00"
    )
    sent = dt.datetime.fromisoformat(Event("e", "u").to_wire()["timestamp"])
    assert abs((dt.datetime.now(dt.timezone.utc) - sent).total_seconds()) < 5


def test_uuids():
    given = uuid.uuid4()
    assert Event("e", "u", uuid=given).uuid == given
    assert Event("e", "u", uuid=str(given)).uuid == given
    generated = Event("e", "u").uuid
    assert generated.version == 7
    assert Event("e", "u").uuid != generated
    with pytest.raises(ValueError, match="uuid"):
        Event("e", "u", uuid="not-a-uuid")
    with pytest.raises(TypeError, match="uuid"):
        Event("e", "u", uuid=12345)


def test_uuid7_is_time_ordered_and_well_formed():
    first = uuid7()
    later = [uuid7() for _ in range(50)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in later)
    millis = int(first.hex[:12], 16)
    now_ms = dt.datetime.now(dt.timezone.utc).timestamp() * 1000
    assert abs(now_ms - millis) < 5000
    assert all(int(u.hex[:12], 16) >= millis for u in later)


def test_properties_are_converted_to_json():
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    event = Event(
        "e",
        "u",
        {
            "when": when,
            "day": dt.date(2026, 1, 2),
            "id": ident,
            "price": Decimal("9.99"),
            "count": Decimal("3"),
            "tags": {"b", "a"},
            "cart": Cart(2, Decimal("5.5")),
            "nested": {"list": (1, 2.5, None, True), 7: "int key"},
            "plan": Plain.VIEWED,
        },
    )
    assert event.properties == {
        "when": "2026-01-02T03:04:05+00:00",
        "day": "2026-01-02",
        "id": "12345678-1234-5678-1234-567812345678",
        "price": 9.99,
        "count": 3,
        "tags": ["a", "b"],
        "cart": {"items": 2, "total": 5.5},
        "nested": {"list": [1, 2.5, None, True], "7": "int key"},
        "plan": "viewed",
    }


@pytest.mark.parametrize(
    ("properties", "error", "named"),
    [
        ({"handler": object()}, TypeError, "'handler'"),
        ({"deep": {"fn": len}}, TypeError, "'deep.fn'"),
        ({"raw": b"bytes"}, TypeError, "'raw'"),
        ({"ratio": float("nan")}, ValueError, "'ratio'"),
        ({"big": float("inf")}, ValueError, "'big'"),
        ({"d": Decimal("NaN")}, ValueError, "'d'"),
        ({"items": [1, object()]}, TypeError, "'items[1]'"),
        ({"keys": {(1, 2): "tuple key"}}, TypeError, "'keys'"),
    ],
)
def test_unserialisable_properties_name_the_property(properties, error, named):
    with pytest.raises(error) as info:
        Event("e", "u", properties)
    assert named in str(info.value)


def test_properties_must_be_a_mapping():
    with pytest.raises(TypeError, match="properties"):
        Event("e", "u", ["a"])  # type: ignore[arg-type]


def test_self_referencing_properties_raise_instead_of_recursing_forever():
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="nested"):
        Event("e", "u", {"loop": loop})


def test_groups():
    wire = Event("e", "u", groups={"company": "acme", "team": 7}).to_wire()
    assert wire["properties"]["$groups"] == {"company": "acme", "team": "7"}
    for bad in ({"": "x"}, {"company": ""}, {"company": None}, ["company"]):
        with pytest.raises(TypeError, match="group"):
            Event("e", "u", groups=bad)


def test_wire_shape_and_lib_properties():
    wire = json.loads(Event("e", "u", {"k": "v"}, timestamp="2026-01-01T00:00:00Z").encode())
    assert set(wire) == {"event", "distinct_id", "properties", "timestamp", "uuid"}
    assert wire["properties"]["$lib"] == "posthog-otel"
    assert wire["properties"]["$lib_version"]
    assert wire["properties"]["k"] == "v"
    assert "$groups" not in wire["properties"]


def test_events_are_frozen_and_hashable():
    event = Event("e", "u", {"k": "v"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.event = "other"  # type: ignore[misc]
    assert hash(event) == hash(event)


def test_oversize_event_is_refused_naming_it():
    event = Event("huge_upload", "u", {"blob": "x" * MAX_EVENT_BYTES})
    with pytest.raises(ValueError, match="huge_upload"):
        event.encode()
    Event("fits", "u", {"blob": "x" * (MAX_EVENT_BYTES - 1000)}).encode()
