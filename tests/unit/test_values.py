"""Parsing the flag service's answers: both shapes, payloads, quota and errors."""

from __future__ import annotations

import pytest

from posthog_otel._flagdata import (
    FeatureFlag,
    RawPayload,
    decode_payload,
    parse_flags_response,
)

DETAILED = {
    "flags": {
        "new-dashboard": {
            "key": "new-dashboard",
            "enabled": True,
            "variant": None,
            "reason": {
                "code": "condition_match",
                "condition_index": 0,
                "description": "Matched condition set 1",
            },
            "metadata": {"id": 1, "version": 3, "payload": '{"color": "blue"}'},
        },
        "pricing-test": {
            "key": "pricing-test",
            "enabled": True,
            "variant": "variant-a",
            "reason": {"code": "condition_match", "condition_index": 1},
            "metadata": {"id": 2, "version": 42, "payload": None},
        },
        "off-flag": {
            "key": "off-flag",
            "enabled": False,
            "variant": None,
            "reason": {"code": "no_condition_match", "description": "No match"},
            "metadata": {"id": 3, "version": 1},
        },
    },
    "errorsWhileComputingFlags": False,
    "requestId": "550e8400-e29b-41d4-a716-446655440000",
}

LEGACY = {
    "featureFlags": {"new-dashboard": True, "pricing-test": "variant-a", "off-flag": False},
    "featureFlagPayloads": {"new-dashboard": '{"color": "blue"}'},
    "errorsWhileComputingFlags": False,
}


def test_detailed_shape():
    answer = parse_flags_response(DETAILED)
    assert answer.request_id == "550e8400-e29b-41d4-a716-446655440000"
    assert answer.flags["new-dashboard"] == FeatureFlag(
        name="new-dashboard",
        enabled=True,
        payload={"color": "blue"},
        variant=None,
        reason="Matched condition set 1",
        id=1,
        version=3,
        request_id="550e8400-e29b-41d4-a716-446655440000",
        reason_code="condition_match",
    )
    assert answer.flags["off-flag"].reason_code == "no_condition_match"
    pricing = answer.flags["pricing-test"]
    assert (pricing.enabled, pricing.variant, pricing.value) == (
        "variant-a",
        "variant-a",
        "variant-a",
    )
    assert pricing.reason == "condition_match"  # no description: the code stands in
    assert answer.flags["off-flag"].enabled is False
    assert answer.feature_flags == {
        "new-dashboard": True,
        "pricing-test": "variant-a",
        "off-flag": False,
    }
    assert answer.feature_flag_payloads == {"new-dashboard": {"color": "blue"}}


def test_legacy_shape_gives_the_same_values():
    legacy = parse_flags_response(LEGACY)
    detailed = parse_flags_response(DETAILED)
    assert legacy.feature_flags == detailed.feature_flags
    assert legacy.feature_flag_payloads == detailed.feature_flag_payloads
    assert legacy.flags["pricing-test"].variant == "variant-a"
    assert legacy.flags["new-dashboard"].id is None


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ('{"a": 1}', {"a": 1}),
        ('"just a string"', "just a string"),
        ("42", 42),
        ("not json at all", "not json at all"),
        (None, None),
        ({"already": "decoded"}, {"already": "decoded"}),
    ],
)
def test_payload_decoding(raw, decoded):
    assert decode_payload(raw) == decoded
    # Only text that is not JSON is marked raw: a JSON string is an ordinary str.
    assert isinstance(decode_payload(raw), RawPayload) == (raw == "not json at all")


def test_quota_limited_means_no_flags_and_says_so():
    answer = parse_flags_response(
        {
            "flags": {"x": {"enabled": True}},
            "quotaLimited": ["feature_flags"],
            "errorsWhileComputingFlags": False,
        }
    )
    assert answer.quota_limited is True
    assert answer.flags == {}


def test_errors_while_computing_flags_is_kept():
    answer = parse_flags_response({"flags": {}, "errorsWhileComputingFlags": True})
    assert answer.errors_while_computing_flags is True


@pytest.mark.parametrize("body", [None, [], "text", 3])
def test_non_object_answers_are_refused(body):
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_flags_response(body)


def test_junk_entries_are_skipped():
    answer = parse_flags_response({"flags": {"ok": {"enabled": True}, "junk": "x"}})
    assert list(answer.flags) == ["ok"]
    answer = parse_flags_response({"featureFlags": {"ok": True, "junk": 3}})
    assert list(answer.flags) == ["ok"]
