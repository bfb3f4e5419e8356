"""The OpenFeature provider's reads, through OpenFeature's own client API, with local
evaluation and without: values, reasons and error codes."""

from __future__ import annotations

import json

import pytest
from openfeature import api
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from posthog_otel import PostHogClient, PostHogFlagProvider
from posthog_otel.openfeature import PostHogProvider
from tests.support.server import API_KEY, FakeClock

SECRET = "phs_openfeature_0123456789"


def flag(flag_id, key, *, conditions=None, active=True, variants=None, payloads=None):
    filters = {"groups": [{"properties": [], "rollout_percentage": 100}]}
    if conditions is not None:
        filters["groups"] = conditions
    if variants:
        filters["multivariate"] = {
            "variants": [{"key": k, "rollout_percentage": p} for k, p in variants.items()]
        }
    if payloads:
        filters["payloads"] = payloads
    return {"id": flag_id, "key": key, "version": 3, "active": active, "filters": filters}


PRO = [
    {
        "properties": [{"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}],
        "rollout_percentage": 100,
    }
]
DEFINITIONS = {
    "flags": [
        flag(1, "beta", payloads={"true": json.dumps({"limit": 5})}),
        flag(2, "off", active=False),
        flag(3, "nobody", conditions=[{"properties": [], "rollout_percentage": 0}]),
        flag(4, "pro-only", conditions=PRO),
        flag(
            5,
            "checkout",
            conditions=PRO,
            variants={"control": 50, "test": 50},
            payloads={"control": '{"color": "blue"}', "test": '{"color": "green"}'},
        ),
        flag(6, "count", payloads={"true": "42"}),
        flag(7, "ratio", payloads={"true": "0.25"}),
        flag(8, "words", payloads={"true": '"hello"'}),
        flag(9, "broken", payloads={"true": "not json"}),
        flag(10, "no-payload"),
        flag(
            11,
            "theme",
            conditions=PRO,
            variants={"dark": 100},
            payloads={"dark": "true", "false": "false"},
        ),
    ],
    "group_type_mapping": {"0": "company"},
    "cohorts": {},
}


@pytest.fixture(params=["local", "remote"])
def mode(request):
    return request.param


@pytest.fixture
def openfeature(server, mode):
    server.set_flags(DEFINITIONS)
    clock = FakeClock()
    client = PostHogClient(
        API_KEY, server.url, flags_timeout=1.0, secret_key=SECRET if mode == "local" else None
    )
    flags = PostHogFlagProvider(client, clock=clock, send_feature_flag_events=False)
    api.set_provider_and_wait(PostHogProvider(flags))
    yield api.get_client(), clock
    api.clear_providers()
    api.clear_hooks()
    flags.shutdown()
    client.close()


def ctx(key="u1", **attributes):
    return EvaluationContext(targeting_key=key, attributes=attributes)


L, R = "local", "remote"
STATIC_OR_MATCH = {L: Reason.STATIC, R: Reason.TARGETING_MATCH}
DEFAULT = {L: Reason.DEFAULT, R: Reason.DEFAULT}
MATCH = {L: Reason.TARGETING_MATCH, R: Reason.TARGETING_MATCH}
DISABLED = {L: Reason.DISABLED, R: Reason.DISABLED}
ERROR = {L: Reason.ERROR, R: Reason.ERROR}
PRO_PLAN = {"plan": "pro"}
FREE_PLAN = {"plan": "free"}

READS = [
    # type, flag, default, attributes, value, reason (by mode), error code
    ("boolean", "beta", False, {}, True, STATIC_OR_MATCH, None),
    ("object", "beta", {}, {}, {"limit": 5}, STATIC_OR_MATCH, None),
    ("integer", "count", 0, {}, 42, STATIC_OR_MATCH, None),
    ("float", "count", 0.0, {}, 42.0, STATIC_OR_MATCH, None),
    ("float", "ratio", 0.0, {}, 0.25, STATIC_OR_MATCH, None),
    ("string", "words", "x", {}, "hello", STATIC_OR_MATCH, None),  # a JSON string payload
    ("boolean", "pro-only", False, PRO_PLAN, True, MATCH, None),
    # Inactive: the caller's default, whatever the type.
    ("boolean", "off", True, {}, True, DISABLED, None),
    ("string", "off", "x", {}, "x", DISABLED, None),
    # Active but off for this user: no error. Booleans read PostHog's False...
    ("boolean", "pro-only", True, FREE_PLAN, False, DEFAULT, None),
    ("boolean", "nobody", True, {}, False, {L: Reason.STATIC, R: Reason.DEFAULT}, None),
    # ...other types the caller's default, or the payload of false if there is one.
    ("string", "checkout", "fallback", FREE_PLAN, "fallback", DEFAULT, None),
    ("object", "checkout", {"d": 1}, FREE_PLAN, {"d": 1}, DEFAULT, None),
    ("boolean", "theme", True, FREE_PLAN, False, DEFAULT, None),
    ("boolean", "theme", False, PRO_PLAN, True, MATCH, None),  # a variant's boolean payload
    ("string", "theme", "x", PRO_PLAN, "dark", MATCH, None),
    # Errors: the default, and why.
    ("boolean", "missing", False, {}, False, ERROR, ErrorCode.FLAG_NOT_FOUND),
    ("string", "beta", "x", {}, "x", ERROR, ErrorCode.TYPE_MISMATCH),
    ("boolean", "checkout", False, PRO_PLAN, False, ERROR, ErrorCode.TYPE_MISMATCH),
    ("integer", "no-payload", 7, {}, 7, ERROR, ErrorCode.TYPE_MISMATCH),
    ("integer", "ratio", 7, {}, 7, ERROR, ErrorCode.TYPE_MISMATCH),
    ("object", "count", {}, {}, {}, ERROR, ErrorCode.TYPE_MISMATCH),
    ("integer", "words", 7, {}, 7, ERROR, ErrorCode.TYPE_MISMATCH),  # valid JSON, a string
    ("object", "broken", {}, {}, {}, ERROR, ErrorCode.PARSE_ERROR),  # not JSON at all
    ("float", "broken", 1.5, {}, 1.5, ERROR, ErrorCode.PARSE_ERROR),
]


@pytest.mark.parametrize(
    ("kind", "key", "default", "attributes", "value", "reason", "code"),
    READS,
    ids=[f"{r[0]}-{r[1]}-{'-'.join(r[3].values()) or 'any'}" for r in READS],
)
def test_reads(openfeature, mode, kind, key, default, attributes, value, reason, code):
    client, _ = openfeature
    # A user of its own: a remote read is fresh, not an earlier case's cached answer.
    who = f"{kind}-{key}-{'-'.join(attributes.values())}"
    details = getattr(client, f"get_{kind}_details")(key, default, ctx(who, **attributes))
    assert (details.value, details.reason, details.error_code) == (value, reason[mode], code)
    assert type(details.value) is type(value)
    if code is not None:
        assert key in details.error_message


def test_variants_and_their_payloads(openfeature, mode):
    client, _ = openfeature
    variant = client.get_string_details("checkout", "fallback", ctx("u3", plan="pro"))
    assert variant.value in ("control", "test")
    assert (variant.variant, variant.reason) == (variant.value, Reason.TARGETING_MATCH)
    config = client.get_object_details("checkout", {}, ctx("u3", plan="pro"))
    assert config.value == {"color": "blue" if variant.value == "control" else "green"}
    assert config.variant == variant.value


def test_metadata_is_posthogs_and_read_only(openfeature, mode):
    client, _ = openfeature
    details = client.get_boolean_details("beta", False, ctx())
    metadata = details.flag_metadata
    assert (metadata["flag_id"], metadata["version"], metadata["reason"]) == (
        1,
        3,
        "condition_match",
    )
    assert ("request_id" in metadata) == (mode == "remote")  # PostHog's answer has one
    with pytest.raises(TypeError):
        metadata["flag_id"] = 2
    off = client.get_boolean_details("pro-only", True, ctx("u2", plan="free"))
    assert off.flag_metadata["reason"] == "no_condition_match"
    assert off.variant == "false"


def test_a_second_remote_read_is_cached(openfeature, mode):
    client, _ = openfeature
    client.get_boolean_value("beta", False, ctx())
    again = client.get_boolean_details("beta", False, ctx()).reason
    assert again == (Reason.CACHED if mode == "remote" else Reason.STATIC)


def test_a_missing_targeting_key(openfeature):
    client, _ = openfeature
    details = client.get_boolean_details("beta", True, EvaluationContext())
    assert (details.value, details.error_code) == (True, ErrorCode.TARGETING_KEY_MISSING)


@pytest.mark.parametrize("mode", ["remote"])
def test_context_attributes_become_groups_and_properties(openfeature, server):
    client, _ = openfeature
    context = ctx(
        "u5",
        groups={"company": "acme"},
        group_properties={"company": {"size": 10}},
        plan="pro",
        seats=3,
    )
    assert client.get_boolean_value("beta", False, context) is True
    body = server.requests.matching("/decide")[-1].json()
    assert body["groups"] == {"company": "acme"}
    assert body["group_properties"] == {"company": {"size": 10}}
    assert body["person_properties"] == {"plan": "pro", "seats": 3}
    for bad in ({"groups": "acme"}, {"group_properties": ["size"]}):
        details = client.get_boolean_details("beta", False, ctx("u6", **bad))
        assert (details.reason, details.error_code) == (Reason.ERROR, ErrorCode.INVALID_CONTEXT)


@pytest.mark.parametrize("mode", ["remote"])
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


def test_span_events_give_the_same_reasons(openfeature, mode, make_pipeline):
    client, _ = openfeature
    tracer, _ = make_pipeline()
    with tracer.start_as_current_span("request") as span:
        # Three users: a remote read for the same user and context would be cached.
        client.get_boolean_value("off", False, ctx("u7"))
        client.get_boolean_value("pro-only", False, ctx("u8", plan="free"))
        client.get_boolean_value("beta", False, ctx("u9"))
    reasons = {
        e.attributes["feature_flag.key"]: e.attributes["feature_flag.result.reason"]
        for e in span.events
    }
    beta = "static" if mode == "local" else "targeting_match"
    assert reasons == {"off": "disabled", "pro-only": "default", "beta": beta}


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
