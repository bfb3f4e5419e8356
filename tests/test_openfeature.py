"""The OpenFeature provider, used through OpenFeature's own client API."""

from __future__ import annotations

import pytest
from openfeature import api
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from conftest import API_KEY, FakeClock
from posthog_otel import PostHogClient, PostHogFlagProvider
from posthog_otel.openfeature import PostHogProvider

FLAGS = {
    "beta": True,
    "off": False,
    "checkout": {"variants": {"control": 50, "test": 50}},
    "limits": {"payload": {"max_items": 5}},
    "count": {"payload": 42},
    "ratio": {"payload": 0.25},
    "words": {"payload": "not json"},
    "no-payload": True,
    "org-only": {"group_type": "company"},
}


@pytest.fixture
def openfeature(server):
    server.set_flags(FLAGS)
    clock = FakeClock()
    client = PostHogClient(API_KEY, server.url, flags_timeout=1.0)
    flags = PostHogFlagProvider(client, clock=clock, send_feature_flag_events=False)
    api.set_provider_and_wait(PostHogProvider(flags))
    yield api.get_client(), clock
    api.clear_providers()
    api.clear_hooks()
    flags.shutdown()
    client.close()


def ctx(key="u1", **attributes):
    return EvaluationContext(targeting_key=key, attributes=attributes)


def test_boolean_and_string_resolution(openfeature):
    client, _ = openfeature
    details = client.get_boolean_details("beta", False, ctx())
    assert (details.value, details.reason, details.variant) == (
        True,
        Reason.TARGETING_MATCH,
        "true",
    )
    assert details.flag_metadata["flag_id"] == 1
    assert details.flag_metadata["version"] == 1
    assert details.flag_metadata["request_id"]
    off = client.get_boolean_details("off", True, ctx("u2"))
    assert (off.value, off.reason) == (False, Reason.DISABLED)
    variant = client.get_string_details("checkout", "fallback", ctx("u3"))
    assert variant.value in ("control", "test")
    assert variant.variant == variant.value


def test_the_second_read_is_cached(openfeature):
    client, _ = openfeature
    client.get_boolean_value("beta", False, ctx())
    assert client.get_boolean_details("beta", False, ctx()).reason == Reason.CACHED


def test_numbers_and_objects_come_from_the_payload(openfeature):
    client, _ = openfeature
    assert client.get_object_value("limits", {}, ctx()) == {"max_items": 5}
    assert client.get_integer_value("count", 0, ctx()) == 42
    assert client.get_float_value("ratio", 0.0, ctx()) == 0.25
    assert client.get_float_value("count", 0.0, ctx()) == 42.0
    no_payload = client.get_integer_details("no-payload", 7, ctx())
    assert (no_payload.value, no_payload.reason) == (7, Reason.DEFAULT)
    off = client.get_object_details("off", {"d": 1}, ctx())
    assert (off.value, off.reason) == ({"d": 1}, Reason.DISABLED)


@pytest.mark.parametrize(
    ("method", "key", "default", "code"),
    [
        ("get_boolean_details", "missing", False, ErrorCode.FLAG_NOT_FOUND),
        ("get_boolean_details", "checkout", False, ErrorCode.TYPE_MISMATCH),
        ("get_string_details", "beta", "x", ErrorCode.TYPE_MISMATCH),
        ("get_integer_details", "limits", 0, ErrorCode.TYPE_MISMATCH),
        ("get_object_details", "count", {}, ErrorCode.TYPE_MISMATCH),
        ("get_object_details", "words", {}, ErrorCode.PARSE_ERROR),
        ("get_float_details", "words", 1.5, ErrorCode.PARSE_ERROR),
    ],
)
def test_errors_return_the_default_with_a_code(openfeature, method, key, default, code):
    client, _ = openfeature
    details = getattr(client, method)(key, default, ctx())
    assert details.value == default
    assert details.error_code == code
    assert details.reason == Reason.ERROR


def test_a_missing_targeting_key(openfeature):
    client, _ = openfeature
    details = client.get_boolean_details("beta", True, EvaluationContext())
    assert (details.value, details.error_code) == (True, ErrorCode.TARGETING_KEY_MISSING)


def test_context_attributes_become_groups_and_properties(openfeature, server):
    client, _ = openfeature
    context = ctx(
        "u5",
        groups={"company": "acme"},
        group_properties={"company": {"size": 10}},
        plan="pro",
        seats=3,
    )
    assert client.get_boolean_value("org-only", False, context) is True
    body = server.requests.matching("/decide")[-1].json()
    assert body["groups"] == {"company": "acme"}
    assert body["group_properties"] == {"company": {"size": 10}}
    assert body["person_properties"] == {"plan": "pro", "seats": 3}
    bad = client.get_boolean_details("beta", False, ctx("u6", groups="acme"))
    assert bad.error_code == ErrorCode.INVALID_CONTEXT


def test_stale_and_unavailable(openfeature, server):
    client, clock = openfeature
    assert client.get_boolean_value("beta", False, ctx()) is True
    server.faults.respond(503, times=100, paths="/decide")
    clock.now += 31
    assert client.get_boolean_details("beta", False, ctx()).reason == Reason.STALE
    unknown = client.get_boolean_details("beta", False, ctx("never-seen"))
    assert (unknown.value, unknown.reason, unknown.error_code) == (
        False,
        Reason.ERROR,
        ErrorCode.GENERAL,
    )


def test_another_providers_evaluations_reach_posthog_through_openfeatures_hook(
    server, make_pipeline
):
    from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

    from posthog_otel import capture

    tracer, processor = make_pipeline()
    api.set_provider_and_wait(
        InMemoryProvider(
            {
                "new-ui": InMemoryFlag("on", {"on": True, "off": False}),
                "theme": InMemoryFlag("dark", {"dark": "dark-v2", "light": "light-v1"}),
            }
        )
    )
    api.add_hooks([TracingHook()])
    try:
        with tracer.start_as_current_span("r", attributes={"posthog.distinct_id": "u1"}) as span:
            assert api.get_client().get_boolean_value("new-ui", False, ctx()) is True
            assert api.get_client().get_string_value("theme", "x", ctx()) == "dark-v2"
            api.get_client().get_boolean_value("missing", False, ctx())
            capture("after_flags")
            written = [
                dict(e.attributes) for e in span.events if e.name == "feature_flag.evaluation"
            ]
    finally:
        api.clear_hooks()
        api.clear_providers()
    assert written[0]["feature_flag.result.value"] == "true"  # the hook JSON-encodes values
    assert written[0]["feature_flag.result.variant"] == "on"
    processor.force_flush(10_000)
    (event,) = server.wait_for_events(1, event="after_flags")
    assert event["properties"]["$feature/new-ui"] is True  # the value, not the variant's name
    assert event["properties"]["$feature/theme"] == "dark-v2"
    assert "$feature/missing" not in event["properties"]
