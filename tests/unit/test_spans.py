"""The tagging convention, row by row, on real spans (no I/O)."""

from __future__ import annotations

import json
import uuid

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern, event_uuid
from posthog_otel._mapping.spans import InvalidTagError, MappingOptions, SpanMapper
from tests.support.spans import one_span, recording

MAPPER = SpanMapper(MappingOptions(denylist=denylist_pattern(DEFAULT_DENYLIST)))


def only(events):
    assert len(events) == 1, events
    return events[0]


def test_untagged_spans_make_no_events():
    assert MAPPER.map_span(one_span(plan="pro")) == []


def test_a_tagged_span_becomes_one_event_at_its_end():
    span = one_span(
        "checkout", **{"posthog.event": "checkout_completed", "cart.items": 3, "total": 59.9}
    )
    event = only(MAPPER.map_span(span))
    assert event["event"] == "checkout_completed"
    props = event["properties"]
    assert props["cart.items"] == 3
    assert props["total"] == 59.9
    assert "posthog.event" not in props
    assert props["$trace_id"] == trace.format_trace_id(span.context.trace_id)
    assert props["$span_id"] == trace.format_span_id(span.context.span_id)
    assert len(props["$trace_id"]) == 32 and len(props["$span_id"]) == 16
    assert props["$otel_span_name"] == "checkout"
    assert props["$otel_span_kind"] == "internal"
    assert props["$otel_status"] == "unset"
    assert props["$otel_duration_ms"] == pytest.approx((span.end_time - span.start_time) / 1e6)
    assert props["service.name"] == "shop"
    assert props["$lib"] == "posthog-otel"
    micros = span.end_time // 1000
    assert event["timestamp"].endswith(f".{micros % 1_000_000:06d}+00:00")


def test_status_parent_and_kind_are_reported():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("parent"):
            with tracer.start_as_current_span(
                "child", kind=SpanKind.CONSUMER, attributes={"posthog.event": "e"}
            ) as span:
                span.set_status(Status(StatusCode.ERROR, "card declined"))
        child = ended()[0]
    props = only(MAPPER.map_span(child))["properties"]
    assert props["$otel_span_kind"] == "consumer"
    assert props["$otel_status"] == "error"
    assert props["$otel_status_message"] == "card declined"
    assert props["$otel_parent_span_id"] == trace.format_span_id(child.parent.span_id)


def test_a_tagged_span_event_becomes_an_event_at_its_own_time():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span(
            "request",
            attributes={
                "posthog.distinct_id": "u1",
                "posthog.groups.company": "acme",
                "session.id": "s1",
            },
        ) as span:
            span.add_event(
                "clicked",
                {"posthog.event": "button_clicked", "button": "pay"},
                timestamp=1_700_000_000_123_456_000,
            )
            span.add_event("not ours", {"x": 1})
    event = only(MAPPER.map_span(ended()[0]))
    assert event["event"] == "button_clicked"
    assert event["timestamp"] == "2023-11-14T22:13:20.123456+00:00"
    assert event["distinct_id"] == "u1"
    assert event["properties"]["button"] == "pay"
    assert event["properties"]["$groups"] == {"company": "acme"}
    assert event["properties"]["$session_id"] == "s1"
    assert "x" not in event["properties"]


def test_a_span_event_overrides_what_it_sets_itself():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span(
            "r",
            attributes={
                "posthog.distinct_id": "span-user",
                "posthog.groups.company": "acme",
                "posthog.session_id": "s1",
            },
        ) as span:
            span.add_event(
                "e",
                {
                    "posthog.event": "e",
                    "posthog.distinct_id": "event-user",
                    "posthog.groups.team": "blue",
                    "posthog.session_id": "s2",
                },
            )
    event = only(MAPPER.map_span(ended()[0]))
    assert event["distinct_id"] == "event-user"
    assert event["properties"]["$groups"] == {"company": "acme", "team": "blue"}
    assert event["properties"]["$session_id"] == "s2"


def test_span_and_events_together_in_order():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("r", attributes={"posthog.event": "outer"}) as span:
            span.add_event("a", {"posthog.event": "first"})
            span.add_event("b", {"posthog.event": "second"})
    assert [e["event"] for e in MAPPER.map_span(ended()[0])] == ["first", "second", "outer"]


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"posthog.distinct_id": "tagged", "enduser.id": "end", "user.id": "usr"}, "tagged"),
        ({"enduser.id": "end", "user.id": "usr"}, "end"),
        ({"user.id": "usr"}, "usr"),
    ],
)
def test_identity_resolution_order(attributes, expected):
    event = only(MAPPER.map_span(one_span(**{"posthog.event": "e", **attributes})))
    assert event["distinct_id"] == expected
    assert "$process_person_profile" not in event["properties"]


def test_span_tag_beats_the_events_enduser_id():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span(
            "r", attributes={"posthog.distinct_id": "tagged"}
        ) as span:
            span.add_event("e", {"posthog.event": "e", "enduser.id": "end"})
    assert only(MAPPER.map_span(ended()[0]))["distinct_id"] == "tagged"


def test_personless_events_are_stable_for_the_trace():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("a", attributes={"posthog.event": "one"}):
            with tracer.start_as_current_span("b", attributes={"posthog.event": "two"}):
                pass
    events = [only(MAPPER.map_span(s)) for s in ended()]
    ids = {e["distinct_id"] for e in events}
    assert ids == {events[0]["properties"]["$trace_id"]}
    assert all(e["properties"]["$process_person_profile"] is False for e in events)


def test_nested_properties_people_and_groups():
    span = one_span(
        **{
            "posthog.event": "signed_up",
            "posthog.properties": json.dumps({"cart": {"items": [1, 2]}, "plan": "pro"}),
            "posthog.set.email": "a@b.c",
            "posthog.set_once.first_plan": "pro",
            "posthog.groups.company": "acme",
            "posthog.session_id": "sess-1",
        }
    )
    props = only(MAPPER.map_span(span))["properties"]
    assert props["cart"] == {"items": [1, 2]}
    assert props["plan"] == "pro"
    assert props["$set"] == {"email": "a@b.c"}
    assert props["$set_once"] == {"first_plan": "pro"}
    assert props["$groups"] == {"company": "acme"}
    assert props["$session_id"] == "sess-1"
    assert not any(k.startswith("posthog.") for k in props)


@pytest.mark.parametrize(
    "attributes",
    [
        {"posthog.event": "e", "posthog.properties": "{not json"},
        {"posthog.event": "e", "posthog.properties": "[1, 2]"},
        {"posthog.event": "e", "posthog.distinct_id": 42},
        {"posthog.event": "e", "posthog.distinct_id": ""},
        {"posthog.event": ""},
        {"posthog.event": 7},
    ],
)
def test_unusable_tags_raise_a_typed_error(attributes):
    with pytest.raises(InvalidTagError, match="posthog"):
        MAPPER.map_span(one_span(**attributes))


def test_uuids_are_deterministic_and_standard():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("r", attributes={"posthog.event": "outer"}) as span:
            span.add_event("a", {"posthog.event": "inner"})
    span = ended()[0]
    first = [e["uuid"] for e in MAPPER.map_span(span)]
    again = [e["uuid"] for e in SpanMapper(MappingOptions()).map_span(span)]
    assert first == again
    assert len(set(first)) == 2
    assert all(uuid.UUID(u).version == 8 and uuid.UUID(u).variant == uuid.RFC_4122 for u in first)


@pytest.mark.parametrize("trace_id", [0xA3 << 100 | 0x1234, (1 << 128) - 1, 0])
def test_every_event_of_a_span_gets_its_own_uuid(trace_id):
    from posthog_otel._mapping.convention import GENAI_EVENT, OWN_EVENT, span_event_position

    trace_hex, span_hex = f"{trace_id:032x}", "b" * 16
    positions = [OWN_EVENT, GENAI_EVENT] + [
        span_event_position(i, exception=e) for i in range(128) for e in (False, True)
    ]
    uuids = [event_uuid(trace_hex, span_hex, trace_id, p) for p in positions]
    assert len(set(uuids)) == len(positions)
    assert all(str(uuid.UUID(u)) == u and uuid.UUID(u).version == 8 for u in uuids)
    other_span = event_uuid(trace_hex, "c" * 16, trace_id, OWN_EVENT)
    assert other_span not in uuids


def test_denylist_drops_credentials_but_not_lookalikes():
    span = one_span(
        **{
            "posthog.event": "e",
            "http.request.header.authorization": "Bearer x",
            "http.request.header.cookie": "c",
            "db.password": "p",
            "client_secret": "s",
            "accessToken": "t",
            "x-api-key": "k",
            "apiKey": "k",
            "token_count": 12,
            "gen_ai.usage.input_tokens": 30,
            "password_reset_requested": True,
            "posthog.set.password": "p",
            "posthog.properties": json.dumps({"nested": {"secret": "s", "ok": 1}}),
        }
    )
    props = only(MAPPER.map_span(span))["properties"]
    for gone in (
        "http.request.header.authorization",
        "http.request.header.cookie",
        "db.password",
        "client_secret",
        "accessToken",
        "x-api-key",
        "apiKey",
    ):
        assert gone not in props
    assert props["token_count"] == 12
    assert props["gen_ai.usage.input_tokens"] == 30
    assert props["password_reset_requested"] is True
    assert "$set" not in props
    assert props["nested"] == {"ok": 1}


def test_denylist_can_be_replaced_or_disabled():
    span = one_span(**{"posthog.event": "e", "password": "p", "internal_note": "n"})
    keep_all = SpanMapper(MappingOptions(denylist=denylist_pattern(())))
    assert "password" in only(keep_all.map_span(span))["properties"]
    custom = SpanMapper(MappingOptions(denylist=denylist_pattern(["note"])))
    props = only(custom.map_span(span))["properties"]
    assert "internal_note" not in props and props["password"] == "p"


def test_resource_attributes_on_request():
    with recording(**{"service.version": "1.2.3", "deployment.environment": "prod"}) as (
        tracer,
        ended,
    ):
        with tracer.start_as_current_span("r", attributes={"posthog.event": "e"}):
            pass
    span = ended()[0]
    default = only(MAPPER.map_span(span))["properties"]
    assert default["service.name"] == "shop" and "service.version" not in default
    everything = only(SpanMapper(MappingOptions(include_resource_attributes=True)).map_span(span))
    assert everything["properties"]["service.version"] == "1.2.3"
    assert everything["properties"]["deployment.environment"] == "prod"


@pytest.mark.parametrize(
    "attributes",
    [
        {
            "url.full": "https://shop.test/cart?x=1",
            "url.path": "/cart",
            "user_agent.original": "UA/1",
            "client.address": "203.0.113.9",
        },
        {
            "http.url": "https://shop.test/cart?x=1",
            "http.target": "/cart?x=1",
            "http.user_agent": "UA/1",
            "net.peer.ip": "203.0.113.9",
        },
    ],
)
def test_server_spans_give_posthog_its_web_properties_in_both_generations(attributes):
    with recording() as (tracer, ended):
        with tracer.start_as_current_span(
            "GET /cart", kind=SpanKind.SERVER, attributes={"posthog.event": "e", **attributes}
        ):
            pass
        with tracer.start_as_current_span(
            "call", kind=SpanKind.CLIENT, attributes={"posthog.event": "e", **attributes}
        ):
            pass
    server, client = (only(MAPPER.map_span(s))["properties"] for s in ended())
    assert server["$current_url"] == "https://shop.test/cart?x=1"
    assert server["$pathname"] == "/cart"
    assert server["$pathname"] == "/cart"
    assert server["$raw_user_agent"] == "UA/1"
    assert server["$ip"] == "203.0.113.9"
    assert "$current_url" not in client and "$ip" not in client


def test_exceptions_become_error_tracking_events():
    mapper = SpanMapper(MappingOptions(capture_exceptions=True))
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("r", attributes={"posthog.distinct_id": "u1"}) as span:
            try:
                raise KeyError("missing")
            except KeyError as exc:
                span.record_exception(exc)
    (event,) = mapper.map_span(ended()[0])
    assert event["event"] == "$exception"
    assert event["distinct_id"] == "u1"
    (entry,) = event["properties"]["$exception_list"]
    assert entry["type"] == "KeyError"
    assert entry["value"] == "'missing'"
    assert entry["mechanism"]["handled"] is True
    frame = entry["stacktrace"]["frames"][-1]
    assert frame["function"] == "test_exceptions_become_error_tracking_events"
    assert frame["context_line"] == 'raise KeyError("missing")'
    assert frame["in_app"] is True
    assert event["properties"]["$exception_level"] == "error"
    assert MAPPER.map_span(ended()[0]) == []  # off unless asked for


def test_an_escaping_exception_is_unhandled():
    mapper = SpanMapper(MappingOptions(capture_exceptions=True))
    with recording() as (tracer, ended):
        with pytest.raises(ValueError, match="boom"), tracer.start_as_current_span("current"):
            raise ValueError("boom")
        with pytest.raises(ValueError, match="bang"), tracer.start_span("plain"):
            raise ValueError("bang")
        with tracer.start_as_current_span("caught") as span:
            span.set_status(Status(StatusCode.ERROR, "ValueError: other"))
            span.record_exception(ValueError("fine"))
    current, plain, caught = (only(mapper.map_span(s)) for s in ended())
    for event in (current, plain):
        assert event["properties"]["$exception_list"][0]["mechanism"]["handled"] is False
    assert caught["properties"]["$exception_list"][0]["mechanism"]["handled"] is True


def test_flags_evaluated_on_the_span_enrich_later_events():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("r", attributes={"posthog.event": "outer"}) as span:
            span.add_event("early", {"posthog.event": "before_flag"})
            span.add_event(
                "feature_flag.evaluation",
                {"feature_flag.key": "checkout", "feature_flag.result.variant": "test"},
            )
            span.add_event(
                "feature_flag.evaluation",
                {"feature_flag.key": "dark-mode", "feature_flag.result.value": "true"},
            )
            span.add_event(
                "feature_flag.evaluation",
                {"feature_flag.key": "legacy", "feature_flag.variant": "b"},
            )
            # OpenFeature's hook: the JSON value beats a variant name; errors expose nothing
            span.add_event(
                "feature_flag.evaluation",
                {
                    "feature_flag.key": "of-bool",
                    "feature_flag.result.value": "true",
                    "feature_flag.result.variant": "on",
                },
            )
            span.add_event(
                "feature_flag.evaluation",
                {
                    "feature_flag.key": "broken",
                    "feature_flag.result.value": "false",
                    "error.type": "flag_not_found",
                },
            )
            span.add_event("late", {"posthog.event": "after_flag"})
    before, after, outer = MAPPER.map_span(ended()[0])
    assert not any(k.startswith("$feature/") for k in before["properties"])
    for event in (after, outer):
        assert event["properties"]["$feature/checkout"] == "test"
        assert event["properties"]["$feature/dark-mode"] is True
        assert event["properties"]["$feature/legacy"] == "b"
        assert event["properties"]["$feature/of-bool"] is True
        assert "$feature/broken" not in event["properties"]


def test_inherited_flags_apply_to_every_event():
    event = only(MAPPER.map_span(one_span(**{"posthog.event": "e"}), {"beta": True}))
    assert event["properties"]["$feature/beta"] is True


def test_the_path_comes_from_the_full_url_when_no_path_attribute_is_set():
    with recording() as (tracer, ended):
        with tracer.start_as_current_span(
            "GET",
            kind=SpanKind.SERVER,
            attributes={"posthog.event": "e", "http.url": "http://h:1/checkout?x=1"},
        ):
            pass
    assert only(MAPPER.map_span(ended()[0]))["properties"]["$pathname"] == "/checkout"


def test_key_sets_are_split_alike_however_many_there_are():
    # Each span has a key set of its own, so the mapper's memory of key sets fills and is
    # emptied (MAPPING_KEY_SETS); every event must still be split as the first one was.
    from posthog_otel._limits import MAPPING_KEY_SETS

    mapper = SpanMapper(MappingOptions(denylist=denylist_pattern(DEFAULT_DENYLIST)))
    for i in range(MAPPING_KEY_SETS + 50):
        span = one_span(
            **{"posthog.event": "e", f"key_{i}": i, "db.password": "p", "long": "x" * 70_000}
        )
        props = only(mapper.map_span(span))["properties"]
        assert props[f"key_{i}"] == i
        assert "db.password" not in props and "posthog.event" not in props
        assert props["long"].startswith("x" * 65_536 + "... [posthog-otel cut 4,464")
    assert mapper.trims.take() == {"string_length": MAPPING_KEY_SETS + 50}
