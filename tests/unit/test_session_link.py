"""The browser's session link on events, from tags (no I/O): ``$window_id``, and the
anonymous visitor posthog-js named (its UUIDv7) made personless, as posthog-js marks its own."""

from __future__ import annotations

import pytest

from posthog_otel._context import event_from_code, is_anonymous_id
from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern
from posthog_otel._mapping.spans import MappingOptions, SpanMapper
from tests.support.spans import recording

MAPPER = SpanMapper(MappingOptions(denylist=denylist_pattern(DEFAULT_DENYLIST)))
ANON = "0190f3a1-8f2c-7d40-8db0-9496a2eef37b"  # as posthog-js's uuidv7() writes one


@pytest.mark.parametrize(
    ("distinct_id", "anonymous"),
    [
        (ANON, True),
        ("019a2b3c-4d5e-7f60-a1b2-c3d4e5f60718", True),
        (ANON.upper(), False),  # posthog-js writes lowercase; this came from elsewhere
        ("0190f3a1-8f2c-4d40-8db0-9496a2eef37b", False),  # a UUIDv4: the app's own ids
        ("0190f3a1-8f2c-7d40-cdb0-9496a2eef37b", False),  # not the RFC 9562 variant
        ("0190f3a18f2c7d408db09496a2eef37b", False),  # no hyphens
        (ANON + "\n", False),
        (" " + ANON, False),
        ("user-42", False),
        ("ada@example.com", False),
        ("", False),
    ],
)
def test_only_posthog_js_own_anonymous_ids_are_recognised(distinct_id, anonymous):
    assert is_anonymous_id(distinct_id) is anonymous


def mapped(span_attrs, event_attrs=None):
    with recording() as (tracer, ended):
        with tracer.start_as_current_span("GET /cart", attributes=span_attrs) as span:
            if event_attrs is not None:
                span.add_event("captured", event_attrs)
        (done,) = ended()
    return {e["event"]: e for e in MAPPER.map_span(done)}


BROWSER_SPAN = {
    "posthog.event": "cart_viewed",
    "posthog.distinct_id": ANON,
    "posthog.anonymous_id": ANON,
    "posthog.session_id": "s-1",
    "posthog.window_id": "w-1",
}


def test_the_window_becomes_window_id_and_the_anonymous_visitor_is_personless():
    events = mapped(BROWSER_SPAN, {"posthog.event": "coupon_tried"})
    for name in ("cart_viewed", "coupon_tried"):  # the span's own, and a span event
        props = events[name]["properties"]
        assert events[name]["distinct_id"] == ANON
        assert props["$window_id"] == "w-1"
        assert props["$session_id"] == "s-1"
        assert props["$process_person_profile"] is False
        assert not any(k.startswith("posthog.") for k in props)


def test_a_user_the_app_named_is_a_person():
    """identify() (another id on the span), capture(distinct_id=) (the event's own id,
    the marker ended with ""), or posthog.distinct_id set by the app: not personless."""
    identified = mapped({**BROWSER_SPAN, "posthog.distinct_id": "user-42"})
    assert identified["cart_viewed"]["distinct_id"] == "user-42"
    assert "$process_person_profile" not in identified["cart_viewed"]["properties"]
    assert identified["cart_viewed"]["properties"]["$window_id"] == "w-1"

    explicit = mapped(
        BROWSER_SPAN,
        {"posthog.event": "named", "posthog.distinct_id": ANON, "posthog.anonymous_id": ""},
    )
    assert "$process_person_profile" not in explicit["named"]["properties"]
    assert explicit["cart_viewed"]["properties"]["$process_person_profile"] is False

    ended = mapped({**BROWSER_SPAN, "posthog.anonymous_id": ""})  # identify(ANON)
    assert "$process_person_profile" not in ended["cart_viewed"]["properties"]


def test_an_id_that_is_not_posthog_js_own_stays_a_person():
    """No marker (the header's id was the app's, say after identify in the browser)."""
    events = mapped({k: v for k, v in BROWSER_SPAN.items() if k != "posthog.anonymous_id"})
    assert "$process_person_profile" not in events["cart_viewed"]["properties"]


def test_the_events_own_window_id_and_person_profile_win():
    events = mapped({**BROWSER_SPAN, "$window_id": "mine", "$process_person_profile": True})
    props = events["cart_viewed"]["properties"]
    assert (props["$window_id"], props["$process_person_profile"]) == ("mine", True)


def test_an_unusable_marker_or_window_is_ignored():
    events = mapped({**BROWSER_SPAN, "posthog.anonymous_id": 7, "posthog.window_id": ["w"]})
    props = events["cart_viewed"]["properties"]
    assert "$window_id" not in props and "$process_person_profile" not in props


def test_events_made_in_code_carry_the_window_and_the_anonymous_mark():
    from opentelemetry.trace import INVALID_SPAN_CONTEXT

    event = event_from_code(
        "e", {}, ANON, INVALID_SPAN_CONTEXT, "s", window_id="w", anonymous_id=ANON
    )
    assert event["properties"]["$window_id"] == "w"
    assert event["properties"]["$process_person_profile"] is False
    named = event_from_code("e", {}, "user-1", INVALID_SPAN_CONTEXT, anonymous_id=ANON)
    assert "$process_person_profile" not in named["properties"]


def test_an_uncaught_exception_of_the_visitor_carries_the_window_and_the_mark():
    from opentelemetry import baggage
    from opentelemetry.context import attach, detach

    from posthog_otel._pipeline.autocapture import uncaught_event

    ctx = None
    for key, value in (
        ("posthog.distinct_id", ANON),
        ("posthog.anonymous_id", ANON),
        ("posthog.window_id", "w-1"),
    ):
        ctx = baggage.set_baggage(key, value, ctx)
    token = attach(ctx)
    try:
        anonymous = uncaught_event({})
    finally:
        detach(token)
    assert anonymous["distinct_id"] == ANON
    assert anonymous["properties"]["$window_id"] == "w-1"
    assert anonymous["properties"]["$process_person_profile"] is False
    with recording() as (tracer, _):
        with tracer.start_as_current_span(  # identify() ended the mark on the span
            "s", attributes={"posthog.distinct_id": ANON, "posthog.anonymous_id": ""}
        ):
            token = attach(baggage.set_baggage("posthog.anonymous_id", ANON))
            try:
                named = uncaught_event({})
            finally:
                detach(token)
    assert "$process_person_profile" not in named["properties"]
