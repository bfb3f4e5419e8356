"""OpenFeature tracking: ``client.track(...)`` becomes a PostHog event for the targeting
key, carrying the flag values that user was given, for experiment metrics."""

from __future__ import annotations

import logging

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.track import TrackingEventDetails

from posthog_otel import PostHogClient, PostHogFlagProvider
from posthog_otel.openfeature import PostHogProvider
from tests.support.server import API_KEY

FLAGS = {
    "beta": True,
    "checkout": {"variants": {"control": 50, "test": 50}},
    "org-beta": {"group_type": "company"},
}


@pytest.fixture
def flags(server):
    server.set_flags(FLAGS)
    made = []

    def make(**options):
        client = PostHogClient(API_KEY, server.url, timeout=2.0, retry_delay=0.01)
        flags = PostHogFlagProvider(client, send_feature_flag_events=False, **options)
        api.set_provider_and_wait(PostHogProvider(flags))
        made.append((client, flags))
        return flags

    yield make
    api.clear_providers()
    for client, flags in made:
        flags.shutdown()
        client.close()


def ctx(key, **attributes):
    return EvaluationContext(targeting_key=key, attributes=attributes)


def test_a_tracked_event_carries_the_users_flag_values(flags, server):
    made = flags()
    of = api.get_client()
    variant = of.get_string_value("checkout", "x", ctx("alice"))
    assert of.get_boolean_value("beta", False, ctx("alice")) is True
    of.get_boolean_value("beta", False, ctx("bob"))  # someone else's exposure
    details = TrackingEventDetails(value=49.5, attributes={"currency": "EUR", "items": 3})
    of.track("purchase", ctx("alice"), details)
    made.flush(10)
    (event,) = server.wait_for_events(1, event="purchase")
    assert event["distinct_id"] == "alice"
    props = event["properties"]
    assert (props["value"], props["currency"], props["items"]) == (49.5, "EUR", 3)
    assert props["$feature/checkout"] == variant
    assert props["$feature/beta"] is True
    assert "$feature/org-beta" not in props  # never read for alice


def test_groups_go_with_the_event(flags, server):
    made = flags()
    of = api.get_client()
    context = ctx("carol", groups={"company": "acme"})
    assert of.get_boolean_value("org-beta", False, context) is True
    of.track("signed_up", context)
    made.flush(10)
    (event,) = server.wait_for_events(1, event="signed_up")
    assert event["properties"]["$groups"] == {"company": "acme"}
    assert event["properties"]["$feature/org-beta"] is True
    assert "value" not in event["properties"]


def test_tracking_goes_through_the_span_processors_queue(flags, server, make_pipeline):
    _, processor = make_pipeline()
    flags(processor=processor)
    queued = processor.stats().events_queued
    api.get_client().track("clicked", ctx("dave"))
    assert processor.stats().events_queued == queued + 1  # the processor's queue took it
    processor.force_flush(10_000)
    (event,) = server.wait_for_events(1, event="clicked")
    assert event["distinct_id"] == "dave"


def test_without_anyone_to_track_the_event_is_personless(flags, server):
    made = flags()
    api.get_client().track("page_viewed")
    made.flush(10)
    (event,) = server.wait_for_events(1, event="page_viewed")
    assert event["properties"]["$process_person_profile"] is False


def test_a_bad_context_is_dropped_and_logged_once(flags, server, caplog):
    flags()
    caplog.set_level(logging.WARNING, logger="posthog_otel")
    for _ in range(3):
        api.get_client().track("clicked", ctx("erin", groups="acme"))
    warnings = [r for r in caplog.records if "not sent" in r.getMessage()]
    assert len(warnings) == 1
    assert server.events(event="clicked") == []
