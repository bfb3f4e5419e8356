"""The local evaluation table: one flag per case, the subject, the expected value, and
whether PostHog must be asked (``ASK``: local evaluation cannot decide; then
``server`` is what the devserver, deciding as the flag service does, answers).

Rollouts and variants are computed here with hashlib, independently of the code
under test, following PostHog's published hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

ASK = "ask PostHog"


def unit_hash(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:15], 16) / 0xFFFFFFFFFFFFFFF


def in_rollout(key: str, who: str, percent: float) -> bool:
    return unit_hash(f"{key}.{who}") <= percent / 100


def variant_of(key: str, who: str, shares: list[tuple[str, int]]) -> str | bool:
    point, low = unit_hash(f"{key}.{who}variant"), 0.0
    for name, share in shares:
        if low <= point < low + share / 100:
            return name
        low += share / 100
    return True


def ago(**delta: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(**delta)).isoformat()


@dataclass
class Case:
    name: str
    conditions: list[dict[str, Any]]
    person: dict[str, Any]
    expected: Any
    server: Any = False  # the devserver's answer, for ASK cases
    flag: dict[str, Any] = field(default_factory=dict)  # more fields for the flag
    filters: dict[str, Any] = field(default_factory=dict)  # more fields for its filters
    groups: dict[str, str] = field(default_factory=dict)
    group_properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    distinct_id: str = "user-1"
    cohorts: dict[str, Any] = field(default_factory=dict)
    others: list[dict[str, Any]] = field(default_factory=list)  # flags it depends on

    @property
    def requests(self) -> int:
        return 1 if self.expected == ASK else 0

    def definition(self) -> dict[str, Any]:
        filters = {"groups": self.conditions, **self.filters}
        return {
            "id": 1,
            "key": self.name,
            "version": 3,
            "active": True,
            "filters": filters,
            **self.flag,
        }


def p(key: str, operator: str | None, value: Any = None, **more: Any) -> dict[str, Any]:
    prop = {"key": key, "type": "person", "value": value, **more}
    if operator is not None:
        prop["operator"] = operator
    return prop


def when(*filters: dict[str, Any], rollout: float | None = 100, **more: Any) -> dict[str, Any]:
    return {"properties": list(filters), "rollout_percentage": rollout, **more}


def one(name: str, prop: dict[str, Any], person: dict[str, Any], expected: Any, **kw: Any) -> Case:
    return Case(name, [when(prop)], person, expected, **kw)


CASES: list[Case] = []
add = CASES.append

# The table reads best one case a line.
# fmt: off

# -- exact and is_not ----------------------------------------------------------------------
for i, (value, given, expected) in enumerate([
    ("pro", "pro", True), ("pro", "PRO", True), ("pro", "team", False), (["pro", "team"], "Team", True),
    (["pro", "team"], "free", False), ("10", 10, True), (10, "10", True), (1.0, 1, False),
    ("null", None, True), ({"a": 1}, '{"a":1}', True), ("[1,2]", [1, 2], True), ("İ", "i̇", True),
    ("true", True, True), ("TRUE", "true", True), ("false", "anything", True), ("true", "yes", False),
    ([], [], True), ([], "x", False), (True, "True", True), ("", "", True),
]):  # fmt: skip
    add(one(f"exact-{i}", p("plan", "exact", value), {"plan": given}, expected))
add(one("exact-missing", p("plan", "exact", "pro"), {}, ASK, server=False))
add(one("exact-operator-absent", p("plan", None, "pro"), {"plan": "Pro"}, True))
for i, (value, given, expected) in enumerate([
    ("pro", "team", True), ("pro", "PRO", False), (["a", "b"], "c", True), (["a", "b"], "B", False),
    ("null", None, False),
]):  # fmt: skip
    add(one(f"is-not-{i}", p("plan", "is_not", value), {"plan": given}, expected))
add(one("is-not-missing", p("plan", "is_not", "pro"), {}, ASK, server=False))

# -- is_set, is_not_set ------------------------------------------------------------------------
add(one("is-set", p("email", "is_set", "is_set"), {"email": None}, True))
add(one("is-set-missing", p("email", "is_set", "is_set"), {}, ASK, server=False))
add(one("is-not-set-present", p("email", "is_not_set", "is_not_set"), {"email": ""}, False))
add(one("is-not-set-missing", p("email", "is_not_set", "is_not_set"), {}, ASK, server=True))

# -- text -----------------------------------------------------------------------------------------
for i, (op, value, given, expected) in enumerate([
    ("icontains", "ACME", "me@acme.com", True), ("icontains", "acme", "me@example.com", False),
    ("not_icontains", "acme", "me@example.com", True), ("not_icontains", "ACME", "x@Acme.io", False),
    ("starts_with", "ent", "Enterprise", True), ("starts_with", "ent", "pro", False),
    ("not_starts_with", "ent", "pro", True), ("ends_with", ".COM", "a@b.com", True),
    ("ends_with", "com", "a@b.org", False), ("not_ends_with", "org", "a@b.org", False),
    ("icontains", "É", "é", False), ("icontains", "1", 10, True), ("icontains", "ul", None, True),
    ("icontains", "", "anything", True), ("starts_with", "tr", True, True),
]):  # fmt: skip
    add(one(f"text-{i}", p("email", op, value), {"email": given}, expected))
add(one("text-missing", p("email", "icontains", "a"), {}, ASK))

# -- regex ----------------------------------------------------------------------------------------
for i, (op, pattern, given, expected) in enumerate([
    ("regex", "^ent", "enterprise", True), ("regex", "^ent", "Enterprise", False),
    ("regex", "acme\\.com$", "a@acme.com", True), ("regex", "c$", "abc\n", False),
    ("regex", "\\d{3}", "ab123", True), ("not_regex", "\\d{3}", "ab12", True),
    ("regex", "(pro|team)", "a team", True), ("regex", "[unclosed", "[unclosed", False),
    ("not_regex", "[unclosed", "x", False), ("regex", "", "anything", True),
    ("not_regex", "", "anything", False), ("regex", "^10$", 10, True),
    ("regex", "(?i)pro", "PRO", ASK), ("regex", "\\bpro", "pro", ASK), ("regex", "(a+)+b", "aab", ASK),
    ("regex", "\\w+", "a²", ASK), ("regex", "\\w+", "cafe", True), ("regex", "a{2}+", "aa", ASK),
    ("regex", "[[:alpha:]]", "a", ASK), ("regex", "ab|c$", "c\n", ASK),
]):  # fmt: skip
    add(one(f"regex-{i}", p("plan", op, pattern), {"plan": given}, expected))

# -- numbers ----------------------------------------------------------------------------------------
for i, (op, value, given, expected) in enumerate([
    ("gt", 10, 11, True), ("gt", 10, 10, False), ("gte", 10, 10, True), ("lt", 10, 9.5, True),
    ("lte", 10, "10", True), ("gt", "5", "1e1", True), ("gt", 5, "abc", False),
    ("gt", 5, True, False), ("lt", 5, " 4", False), ("gt", -1, 0, True), ("gt", 5, None, False),
    ("gt", "abc", 10, ASK), ("lt", 1.5, 1.25, True),
]):  # fmt: skip
    add(one(f"number-{i}", p("age", op, value), {"age": given}, expected))

# -- dates ------------------------------------------------------------------------------------------
for i, (op, value, given, expected) in enumerate([
    ("is_date_before", "-7d", ago(days=8), True), ("is_date_before", "-7d", ago(days=6), False),
    ("is_date_after", "-24h", ago(hours=2), True), ("is_date_after", "-2w", ago(days=20), False),
    ("is_date_before", "-1m", ago(days=40), True), ("is_date_after", "-1y", ago(days=300), True),
    ("is_date_before", "2024-01-01", "2023-12-31", True), ("is_date_after", "2024-01-01", "2023-12-31", False),
    ("is_date_after", "2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z", True),
    ("is_date_before", "2024-06-15 12:00:00 +02:00", "2024-06-15T09:59:00Z", True),
    ("is_date_before", "-7d", "not a date", ASK), ("is_date_before", "soon", "2024-01-01", ASK),
    ("is_date_before", "-7d", 12345, ASK), ("is_date_after", "-7d", None, False),
]):  # fmt: skip
    add(one(f"date-{i}", p("signup", op, value), {"signup": given}, expected))

# -- semver -----------------------------------------------------------------------------------------
for i, (op, value, given, expected) in enumerate([
    ("semver_eq", "1.2.3", "v1.2.3", True), ("semver_eq", "1.2", "1.2.0", True),
    ("semver_neq", "1.2.3", "1.2.4", True), ("semver_gt", "1.2.3", "1.10.0", True),
    ("semver_gte", "1.2.3", "1.2.3-beta", True), ("semver_lt", "2.0.0", "1.99.99", True),
    ("semver_lte", "1.0.0", "1.0.1", False), ("semver_tilde", "1.2.3", "1.2.9", True),
    ("semver_tilde", "1.2.3", "1.3.0", False), ("semver_caret", "1.2.3", "1.9.0", True),
    ("semver_caret", "1.2.3", "2.0.0", False), ("semver_caret", "0.2.3", "0.3.0", False),
    ("semver_caret", "0.0.3", "0.0.3", True), ("semver_caret", "0.0.3", "0.0.4", False),
    ("semver_wildcard", "1.2.*", "1.2.7", True), ("semver_wildcard", "1.*", "2.0.0", False),
    ("semver_eq", "1.2.3", "01.2.3", ASK), ("semver_gt", "nope", "1.0.0", ASK),
    ("semver_eq", "1.2.3", None, False), ("semver_eq", "1.2.3.4", "1.2.3", True),
]):  # fmt: skip
    add(one(f"semver-{i}", p("version", op, value), {"version": given}, expected))

add(one("unknown-operator", p("plan", "fuzzy", "x"), {"plan": "x"}, ASK))

# -- cohorts ----------------------------------------------------------------------------------------
PRO = {"type": "OR", "values": [{"type": "AND", "values": [p("plan", "exact", "pro")]}]}


def c(name: str, cohort: Any, person: dict[str, Any], expected: Any, operator: str | None = None, **kw: Any) -> Case:
    cohort_id = str(100 + len(CASES))
    prop = {"key": "id", "type": "cohort", "value": int(cohort_id)}
    if operator:
        prop["operator"] = operator
    return Case(name, [when(prop)], person, expected, cohorts={cohort_id: cohort}, **kw)


add(c("cohort-in", PRO, {"plan": "pro"}, True))
add(c("cohort-out", PRO, {"plan": "free"}, False))
add(c("cohort-not-in", PRO, {"plan": "free"}, True, "not_in"))
add(c("cohort-missing-property", PRO, {}, ASK, server=False))
add(c("cohort-negated", {"type": "AND", "values": [p("plan", "exact", "pro", negation=True)]}, {"plan": "pro"}, False))
add(c("cohort-or-decided-without-all", {"type": "OR", "values": [p("plan", "exact", "pro"), p("age", "gt", 5)]}, {"plan": "pro"}, True))
add(c("cohort-and-decided-by-a-miss", {"type": "AND", "values": [p("plan", "exact", "pro"), p("age", "gt", 5)]}, {"plan": "free"}, False))
add(c("cohort-and-undecided", {"type": "AND", "values": [p("plan", "exact", "pro"), p("age", "gt", 5)]}, {"plan": "pro"}, ASK, server=False))
add(c("cohort-empty", {}, {}, True))
add(c("cohort-nested", {"type": "AND", "values": [PRO, {"type": "OR", "values": [p("age", "lt", 30), p("age", "gt", 60)]}]}, {"plan": "pro", "age": 70}, True))
add(c("cohort-bad-operator", PRO, {"plan": "pro"}, ASK, "between"))
add(Case("cohort-static", [when({"key": "id", "type": "cohort", "value": 999}), when(p("plan", "exact", "pro"))], {"plan": "pro"}, ASK, server=True))
add(Case("cohort-static-after-a-match", [when(p("plan", "exact", "pro")), when({"key": "id", "type": "cohort", "value": 999})], {"plan": "pro"}, True))

# -- flag dependencies -------------------------------------------------------------------------------


def dep(target: str, value: Any, chain: list[str] | None = None, **more: Any) -> dict[str, Any]:
    prop = {"key": target, "type": "flag", "operator": "flag_evaluates_to", "value": value, **more}
    if chain is not None:
        prop["dependency_chain"] = chain
    return prop


def helper(key: str, conditions: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {"id": 9, "key": key, "version": 1, "active": True, "filters": {"groups": conditions, **more}}


ON, OFF = [when()], [when(rollout=0)]
add(Case("dep-true", [when(dep("h-on", True, ["h-on"]))], {}, True, others=[helper("h-on", ON)]))
add(Case("dep-false-expected", [when(dep("h-off", False, ["h-off"]))], {}, True, others=[helper("h-off", OFF)]))
add(Case("dep-false-miss", [when(dep("h-on", False, ["h-on"]))], {}, False, others=[helper("h-on", ON)]))
add(Case("dep-variant", [when(dep("h-var", "b", ["h-var"]))], {}, True, others=[helper("h-var", [when(variant="b")], multivariate={"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]})]))
add(Case("dep-variant-true", [when(dep("h-var", True, ["h-var"]))], {}, True))
add(Case("dep-variant-other", [when(dep("h-var", "a", ["h-var"]))], {}, False))
add(Case("dep-chain", [when(dep("h-mid", True, ["h-on", "h-mid"]))], {}, True, others=[helper("h-mid", [when(dep("h-on", True, ["h-on"]))])]))
add(Case("dep-on-property", [when(dep("h-pro", True, ["h-pro"]))], {"plan": "pro"}, True, others=[helper("h-pro", [when(p("plan", "exact", "pro"))])]))
add(Case("dep-undecided", [when(dep("h-pro", True, ["h-pro"]))], {}, ASK, server=False))
add(Case("dep-cycle", [when(dep("h-on", True, []))], {}, ASK))
add(Case("dep-no-such-flag", [when(dep("ghost", True, ["ghost"]))], {}, ASK))
add(Case("dep-malformed", [when(dep("h-on", True, ["h-on"], operator="exact")), when(p("plan", "exact", "pro"))], {"plan": "x"}, False))
add(Case("dep-inactive", [when(dep("h-inactive", False, ["h-inactive"]))], {}, True, others=[{**helper("h-inactive", ON), "active": False}]))
add(Case("dep-continuity", [when(dep("h-sticky", True, ["h-sticky"]))], {}, ASK, server=True, others=[{**helper("h-sticky", ON), "ensure_experience_continuity": True}]))

# -- groups ----------------------------------------------------------------------------------------------
ORG = {"aggregation_group_type_index": 0}
add(Case("group-given", [when(p("size", "gt", 10, type="group", group_type_index=0))], {}, True, filters=ORG, groups={"company": "acme"}, group_properties={"company": {"size": 50}}))
add(Case("group-not-given", [when()], {}, False, filters=ORG))
add(Case("group-without-properties", [when(p("size", "gt", 10, type="group"))], {}, ASK, filters=ORG, groups={"company": "acme"}))
add(Case("group-rollout-only", [when()], {}, True, filters=ORG, groups={"company": "acme"}))
add(Case("group-key-property", [when(p("$group_key", "exact", "acme"))], {}, True, filters=ORG, groups={"company": "acme"}))
add(Case("group-unknown-type", [when()], {}, ASK, filters={"aggregation_group_type_index": 7}, groups={"company": "acme"}))
add(Case("group-reads-group-not-person", [when(p("plan", "exact", "pro"))], {"plan": "pro"}, ASK, filters=ORG, groups={"company": "acme"}))
for i, company in enumerate(["acme", "globex", "initech"]):
    expected = in_rollout(f"group-rollout-{i}", company, 50)
    add(Case(f"group-rollout-{i}", [when(rollout=50)], {}, expected, filters=ORG, groups={"company": company}))
add(Case("mixed-group-condition", [when(p("size", "gt", 10), aggregation_group_type_index=0), when(p("plan", "exact", "pro"))], {"plan": "free"}, True, groups={"company": "acme"}, group_properties={"company": {"size": 20}}))
add(Case("mixed-group-condition-skipped", [when(aggregation_group_type_index=0), when(p("plan", "exact", "pro"))], {"plan": "free"}, False))

# -- rollout, variants, holdouts ---------------------------------------------------------------------------
for i in range(6):
    who = f"user-{i}"
    add(Case(f"rollout-{i}", [when(rollout=40)], {}, in_rollout(f"rollout-{i}", who, 40), distinct_id=who))
SHARES = [("control", 50), ("test", 30), ("blue", 20)]
MULTI = {"multivariate": {"variants": [{"key": k, "rollout_percentage": v} for k, v in SHARES]}}
for i in range(6):
    who = f"person-{i}"
    add(Case(f"variant-{i}", [when()], {}, variant_of(f"variant-{i}", who, SHARES), filters=MULTI, distinct_id=who))
add(Case("rollout-zero", [when(rollout=0)], {}, False))
add(Case("rollout-none", [when(rollout=None)], {}, True))
add(Case("variant-override", [when(variant="blue")], {}, "blue", filters=MULTI))
add(Case("variant-override-invalid", [when(variant="nope")], {}, variant_of("variant-override-invalid", "user-1", SHARES), filters=MULTI))
add(Case("variant-short", [when()], {}, variant_of("variant-short", "user-9", [("a", 10)]), distinct_id="user-9", filters={"multivariate": {"variants": [{"key": "a", "rollout_percentage": 10}]}}))
add(Case("holdout-all", [when()], {}, "holdout-4", filters={"holdout": {"id": 4, "exclusion_percentage": 100}}))
add(Case("holdout-none", [when()], {}, True, filters={"holdout": {"id": 4, "exclusion_percentage": 0}}))
add(Case("holdout-clamped", [when()], {}, "holdout-5", filters={"holdout": {"id": 5, "exclusion_percentage": 150}}))
for i in range(3):
    who = f"member-{i}"
    held = unit_hash(f"holdout-{who}") <= 0.5
    add(Case(f"holdout-half-{i}", [when()], {}, "holdout-6" if held else True, distinct_id=who, filters={"holdout": {"id": 6, "exclusion_percentage": 50}}))
OUT_FIRST = [when(p("plan", "exact", "pro"), rollout=0), when(p("plan", "exact", "pro"))]
add(Case("early-exit", OUT_FIRST, {"plan": "pro"}, False, filters={"early_exit": True}))
add(Case("no-early-exit", OUT_FIRST, {"plan": "pro"}, True))
add(Case("first-match-wins", [when(p("plan", "exact", "pro"), variant="control"), when(variant="test")], {"plan": "pro"}, "control", filters=MULTI))
add(Case("undecided-then-match", [when(p("age", "gt", 1)), when(p("plan", "exact", "pro"))], {"plan": "pro"}, True))
add(Case("undecided-then-miss", [when(p("age", "gt", 1)), when(p("plan", "exact", "pro"))], {"plan": "free"}, ASK, server=False))
add(Case("a-failing-filter-decides", [when(p("age", "gt", 1), p("plan", "exact", "pro"))], {"plan": "free"}, False))

# -- the flag itself --------------------------------------------------------------------------------------------
add(Case("inactive", [when()], {}, False, flag={"active": False}))
add(Case("continuity", [when()], {}, ASK, server=True, flag={"ensure_experience_continuity": True}))
add(Case("no-conditions", [], {}, False))
add(Case("device-bucketing", [when(rollout=50)], {}, ASK, server=in_rollout("device-bucketing", "user-1", 50), flag={"bucketing_identifier": "device_id"}))
add(Case("enrolled", [], {"$feature_enrollment/enrolled": True}, True, filters={"feature_enrollment": True}))
add(Case("enrolled-text", [], {"$feature_enrollment/enrolled-text": "true"}, True, filters={"feature_enrollment": True}))
add(Case("not-enrolled", [], {}, ASK, filters={"feature_enrollment": True}))
add(Case("distinct-id-property", [when(p("distinct_id", "exact", "user-1"))], {}, True))
add(Case("person-distinct-id-wins", [when(p("distinct_id", "exact", "user-1"))], {"distinct_id": "other"}, False))

# -- payloads (checked by the payload test) ------------------------------------------------------------------
PAYLOADS = {
    "payload-true": ({"payloads": {"true": json.dumps({"limit": 5})}}, [when()], {"limit": 5}),
    "payload-false": ({"payloads": {"false": json.dumps("off")}}, [when(rollout=0)], "off"),
    "payload-variant": ({**MULTI, "payloads": {"blue": json.dumps([1, 2])}}, [when(variant="blue")], [1, 2]),
    "payload-text": ({"payloads": {"true": "not json"}}, [when()], "not json"),
    "payload-none": ({"payloads": {"false": "1"}}, [when()], None),
}
for name, (filters, conditions, _) in PAYLOADS.items():
    add(Case(name, conditions, {}, conditions[0].get("variant") or conditions[0]["rollout_percentage"] == 100, filters=filters))

# fmt: on


def document() -> dict[str, Any]:
    """Every case's flag (and the flags they depend on) in one definitions document."""
    flags: dict[str, dict[str, Any]] = {}
    cohorts: dict[str, Any] = {}
    for case in CASES:
        flags[case.name] = case.definition()
        for other in case.others:
            flags[other["key"]] = other
        cohorts.update(case.cohorts)
    return {
        "flags": list(flags.values()),
        "group_type_mapping": {"0": "company", "1": "project"},
        "cohorts": cohorts,
    }
