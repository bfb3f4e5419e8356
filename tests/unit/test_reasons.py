"""Why a flag has its value: which definitions give everyone the same value (``STATIC``),
and how a read is named in OpenFeature's and OpenTelemetry's words."""

from __future__ import annotations

import pytest

from posthog_otel._flagdata import FeatureFlag, parse_definitions, result_reason
from posthog_otel._flags.local.evaluator import LocalFlags

PLAN = {"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}
SPLIT = {
    "variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]
}
ONE = {"variants": [{"key": "a", "rollout_percentage": 0}, {"key": "b", "rollout_percentage": 100}]}


def condition(rollout=100, properties=(), variant=None):
    found = {"properties": list(properties), "rollout_percentage": rollout}
    if variant:
        found["variant"] = variant
    return found


STATIC = [
    # filters, active, static value (None: it depends on who asks)
    ({"groups": [condition()]}, True, True),
    ({"groups": [condition(rollout=None)]}, True, True),
    ({"groups": [condition(0)]}, True, False),
    ({"groups": []}, True, False),
    ({"groups": [condition(0), condition()]}, True, True),  # the first nobody is in
    ({"groups": [condition(0), condition()], "early_exit": True}, True, False),
    ({"groups": [condition(50)]}, True, None),
    ({"groups": [condition(properties=[PLAN])]}, True, None),
    ({"groups": [condition(properties=[PLAN]), condition()]}, True, None),
    ({"groups": [condition()], "multivariate": SPLIT}, True, None),
    ({"groups": [condition(variant="a")], "multivariate": SPLIT}, True, "a"),
    ({"groups": [condition()], "multivariate": ONE}, True, "b"),
    ({"groups": [condition()], "aggregation_group_type_index": 0}, True, None),
    ({"groups": [condition()], "holdout": {"id": 1, "exclusion_percentage": 10}}, True, None),
    ({"groups": [condition()]}, False, None),  # inactive: DISABLED, not STATIC
]


@pytest.mark.parametrize(("filters", "active", "value"), STATIC)
def test_which_definitions_give_everyone_one_value(filters, active, value):
    raw = {"id": 1, "key": "f", "version": 1, "active": active, "filters": filters}
    document = {"flags": [raw], "group_type_mapping": {"0": "company"}, "cohorts": {}}
    local = LocalFlags(parse_definitions(document))
    everyone = local.flags["f"].everyone
    assert (None if everyone is None else everyone.value) == value
    if everyone is not None:  # and it is what anyone gets
        for who in ("u1", "u2", "someone-else"):
            assert local.decide("f", local.subject(who)) == everyone


@pytest.mark.parametrize(
    ("flag", "source", "reason"),
    [
        (None, "unavailable", "error"),
        (FeatureFlag("f", False, reason_code="flag_disabled"), "cached", "disabled"),
        (FeatureFlag("f", True), "stale", "stale"),
        (FeatureFlag("f", "a"), "cached", "cached"),
        (FeatureFlag("f", True, static=True), "local", "static"),
        (FeatureFlag("f", False, static=True), "local", "static"),
        (FeatureFlag("f", "a", reason_code="condition_match"), "fresh", "targeting_match"),
        (FeatureFlag("f", False, reason_code="out_of_rollout_bound"), "fresh", "default"),
        (FeatureFlag("f", False, reason_code="no_condition_match"), "local", "default"),
    ],
)
def test_result_reasons(flag, source, reason):
    assert result_reason(flag, source) == reason
