"""Generated flag definitions and subjects, and PostHog's own evaluator as the oracle.

``documents(seed)`` yields random definitions documents (flags with every operator,
cohorts, dependencies, groups, variants, holdouts, payloads) each with subjects to
evaluate; ``Oracle`` evaluates them with the ``posthog`` package's local evaluation,
through its public API (a definitions cache provider, then ``evaluate_flags`` with
``only_evaluate_locally=True``). Values are drawn from small shared pools so that
filters both match and miss, and properties are often missing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

KEYS = ["plan", "email", "age", "version", "signup", "country", "score", "tags"]
GROUP_TYPES = {"0": "company", "1": "project"}
VARIANTS = ["control", "test", "blue"]

_NOW = dt.datetime.now(dt.timezone.utc)
_DATES = [
    (_NOW - dt.timedelta(days=3)).isoformat(),
    (_NOW - dt.timedelta(days=40)).strftime("%Y-%m-%d"),
    (_NOW - dt.timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    (_NOW + dt.timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S +02:00"),
    "2024-01-15",
    "2024-01-15T10:00:00",
    "2024-13-45",
    "yesterday",
]
STRINGS = [
    "pro", "Pro", "team", "free", "", "true", "FALSE", "ent-42", "enterprise",
    "a@acme.com", "B@ACME.COM", "someone@example.org", "İstanbul", "straße", "café\n",
    "10", "3.5", "1e3", " 7", "-2", "null", "1.2.3", "v1.2.0", "1.2", "2", "01.2.3",
    "1.2.3-beta", "0.2.5", "0.0.3", "2.0.0+build", "abc", "x\x1c", "ab12", "αβγ",
    *_DATES,
]  # fmt: skip
NUMBERS = [0, 1, 10, -5, 3.5, 42, 1e16, 1.5e-7, 2**53, 0.1]
OTHERS = [True, False, None, [], ["pro", "team"], [1, 2], ["true"], {"a": 1}, {"b": [1, "x"]}]
VALUES = STRINGS + NUMBERS + OTHERS

REGEXES = [
    "^ent", "acme\\.com$", "^[a-z]+$", "(pro|team)", "\\d{2}", "a.*b", "^$", "[^a-z]",
    "\\w+@\\w+", "\\s", "(?i)pro", "\\bpro", "(a+)+", "[\\w-z]", "a{2}+", "[unclosed", "(",
    "*a", "", "x{1,3}", "(?:ab)+c", "^\\x41", "[[:alpha:]]", "(?=a)", "\\p{L}", "a$",
    "ab|cd$", ".", "\\.", "[a-c]{2,}",
]  # fmt: skip
DATE_FILTERS = [
    "-7d", "-24h", "-2w", "-1m", "-1y", "-10000d", "-3x", "7d", "2024-01-01",
    "2024-01-01T00:00:00Z", "2024-06-15 12:00:00 +02:00", "2023", "not a date", 20240101,
]  # fmt: skip
VERSIONS = ["1.2.3", "v1.2.0", "1.2", "1", "01.2.3", "1.2.3-beta", "0.2.5", "0.0.3", "abc", ""]
WILDCARDS = ["1.*", "1.2.*", "0.*", "*", "1.2.3.*", "v2.*"]

OPERATORS = {
    "exact": 12, "is_not": 6, "is_set": 3, "is_not_set": 3, "icontains": 3,
    "not_icontains": 2, "regex": 4, "not_regex": 2, "starts_with": 2, "not_starts_with": 1,
    "ends_with": 2, "not_ends_with": 1, "gt": 3, "gte": 2, "lt": 3, "lte": 2,
    "is_date_before": 3, "is_date_after": 3, "semver_eq": 1, "semver_neq": 1, "semver_gt": 1,
    "semver_gte": 1, "semver_lt": 1, "semver_lte": 1, "semver_tilde": 1, "semver_caret": 1,
    "semver_wildcard": 1, "in": 1, "fuzzy": 1,
}  # fmt: skip


@dataclass
class Subject:
    distinct_id: str
    person_properties: dict[str, Any]
    groups: dict[str, str] = field(default_factory=dict)
    group_properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    device_id: str | None = None


@dataclass
class Document:
    body: dict[str, Any]
    subjects: list[Subject]

    @property
    def keys(self) -> list[str]:
        return [flag["key"] for flag in self.body["flags"]]


class _Generator:
    def __init__(self, rng: random.Random, flag_count: int) -> None:
        self.rng = rng
        self.keys = [f"f{i}" for i in range(flag_count)]
        self.dependencies: list[dict[str, Any]] = []  # chains are filled in at the end

    def pick(self, items: list[Any]) -> Any:
        return self.rng.choice(items)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def value_for(self, operator: str) -> Any:
        rng = self.rng
        if operator in ("exact", "is_not", "in", "fuzzy"):
            if self.chance(0.3):
                return rng.sample(STRINGS + NUMBERS, rng.randint(0, 3))
            return self.pick(VALUES)
        if operator in ("is_set", "is_not_set"):
            return self.pick([operator, None, True])
        if operator.endswith(("icontains", "starts_with", "ends_with")):
            return self.pick(["acme", "@ACME.com", "PRO", "", "ß", "1", 1, True, "İ", None])
        if "regex" in operator:
            return self.pick(REGEXES)
        if operator in ("gt", "gte", "lt", "lte"):
            return self.pick([10, "10", 3.5, "abc", "1e3", " 5", True, None, -1, "0.1"])
        if "date" in operator:
            return self.pick(DATE_FILTERS)
        if operator == "semver_wildcard":
            return self.pick(WILDCARDS + VERSIONS[:3])
        return self.pick(VERSIONS)

    def property_filter(self, kind: str = "person") -> dict[str, Any]:
        operator = self.rng.choices(list(OPERATORS), weights=list(OPERATORS.values()))[0]
        prop: dict[str, Any] = {"key": self.pick(KEYS), "type": kind, "value": None}
        if operator != "exact" or self.chance(0.7):
            prop["operator"] = operator
        prop["value"] = self.value_for(operator)
        if self.chance(0.02):
            prop["key"] = "distinct_id"
        return prop

    def dependency(self) -> dict[str, Any]:
        target = self.pick([*self.keys, "ghost"])
        prop: dict[str, Any] = {
            "key": target,
            "type": "flag",
            "operator": "flag_evaluates_to",
            "value": self.pick([True, False, *VARIANTS]),
        }
        if self.chance(0.05):
            prop["operator"] = "exact"
        self.dependencies.append(prop)
        return prop

    def condition_filter(self, cohorts: list[str]) -> dict[str, Any]:
        roll = self.rng.random()
        if roll < 0.1 and cohorts:
            return {
                "key": "id",
                "type": "cohort",
                "value": int(self.pick([*cohorts, "99"])),
                **(
                    {"operator": self.pick(["in", "not_in", "exact", "bad"])}
                    if self.chance(0.5)
                    else {}
                ),
            }
        if roll < 0.2:
            return self.dependency()
        return self.property_filter()

    def cohort(self, lower: list[str]) -> dict[str, Any]:
        if self.chance(0.05):
            return {}
        groups = []
        for _ in range(self.rng.randint(1, 2)):
            entries: list[dict[str, Any]] = []
            for _ in range(self.rng.randint(0, 3)):
                if lower and self.chance(0.15):
                    entries.append({"key": "id", "type": "cohort", "value": self.pick(lower)})
                elif self.chance(0.05):
                    entries.append(self.dependency())
                else:
                    entries.append(self.property_filter())
                if self.chance(0.2):
                    entries[-1]["negation"] = True
            groups.append({"type": self.pick(["AND", "OR"]), "values": entries})
        return {"type": self.pick(["AND", "OR"]), "values": groups}

    def flag(self, key: str, cohorts: list[str], flag_id: int) -> dict[str, Any]:
        rng = self.rng
        filters: dict[str, Any] = {"groups": []}
        aggregation = rng.choices([None, 0, 1, 7], weights=[14, 3, 2, 1])[0]
        if aggregation is not None:
            filters["aggregation_group_type_index"] = aggregation
        variants: list[str] = []
        if self.chance(0.4):
            variants = rng.sample(VARIANTS, rng.randint(2, 3))
            shares = [100 // len(variants)] * len(variants)
            shares[-1] += 100 - sum(shares)
            if self.chance(0.1):
                shares[0] -= 10  # not adding up to 100: some land on no variant
            filters["multivariate"] = {
                "variants": [
                    {"key": v, "rollout_percentage": s}
                    for v, s in zip(variants, shares, strict=True)
                ]
            }
        for _ in range(rng.randint(0, 3)):
            condition: dict[str, Any] = {
                "properties": [self.condition_filter(cohorts) for _ in range(rng.randint(0, 3))],
                "rollout_percentage": self.pick([None, 0, 10, 50, 100, 33.3, 100]),
            }
            if variants and self.chance(0.2):
                condition["variant"] = self.pick([*variants, "nope"])
            if aggregation is None and self.chance(0.1):
                condition["aggregation_group_type_index"] = self.pick([0, 1, 5, None])
            filters["groups"].append(condition)
        if self.chance(0.1):
            filters["holdout"] = {
                "id": rng.randint(1, 9),
                "exclusion_percentage": self.pick([0, 10, 50, 100, 130]),
            }
        if self.chance(0.2):
            filters["early_exit"] = True
        if self.chance(0.03):
            filters["feature_enrollment"] = True
        if self.chance(0.5):
            names = variants or ["true", "false"]
            filters["payloads"] = {
                n: json.dumps(self.pick([{"n": n}, [1, 2], 5, "text"]))
                for n in names
                if self.chance(0.7)
            }
        flag: dict[str, Any] = {
            "id": flag_id,
            "key": key,
            "version": rng.randint(1, 9),
            "active": self.chance(0.9),
            "ensure_experience_continuity": self.chance(0.05),
            "filters": filters,
        }
        if aggregation is None and self.chance(0.05):
            flag["bucketing_identifier"] = "device_id"
        return flag

    def fill_chains(self, flags: list[dict[str, Any]], cohorts: dict[str, Any]) -> None:
        """Each dependency's chain, as PostHog computes it: its flag's dependencies
        (also those inside the cohorts it uses), depth first, then the flag; empty when
        they form a cycle."""
        depends: dict[str, list[str]] = {f["key"]: [] for f in flags}

        def collect(node: Any, owner: str, seen: set[str]) -> None:
            if isinstance(node, dict):
                if node.get("type") == "flag" and isinstance(node.get("key"), str):
                    depends[owner].append(node["key"])
                cohort = str(node.get("value"))
                if node.get("type") == "cohort" and cohort in cohorts and cohort not in seen:
                    collect(cohorts[cohort], owner, seen | {cohort})
                for value in node.values():
                    collect(value, owner, seen)
            elif isinstance(node, list):
                for value in node:
                    collect(value, owner, seen)

        for flag in flags:
            collect(flag["filters"], flag["key"], set())

        def chain(key: str, path: tuple[str, ...]) -> list[str] | None:
            if key in path:
                return None
            order: list[str] = []
            for dep in depends.get(key, []):
                sub = chain(dep, (*path, key))
                if sub is None:
                    return None
                order += [k for k in sub if k not in order]
            return [*order, key]

        for prop in self.dependencies:
            found = chain(prop["key"], ())
            if self.chance(0.02):
                continue  # no chain at all: malformed
            prop["dependency_chain"] = found or []

    def subject(self) -> Subject:
        rng = self.rng
        person = {k: self.pick(VALUES) for k in rng.sample(KEYS, rng.randint(0, len(KEYS)))}
        if self.chance(0.03):
            person[f"$feature_enrollment/{self.pick(self.keys)}"] = self.pick([True, "true", False])
        if self.chance(0.02):
            person["score"] = float("nan")
        if self.chance(0.05):
            person["signup"] = _NOW - dt.timedelta(days=self.pick([1, 10, 800]))
        groups: dict[str, str] = {}
        group_properties: dict[str, dict[str, Any]] = {}
        for name in ("company", "project"):
            if self.chance(0.5):
                groups[name] = self.pick(["acme", "globex", "initech", "p-1"])
                if self.chance(0.6):
                    group_properties[name] = {
                        k: self.pick(VALUES) for k in rng.sample(KEYS, rng.randint(0, 4))
                    }
        return Subject(
            distinct_id=self.pick([f"user-{rng.randint(0, 999)}", f"{rng.getrandbits(64):x}"]),
            person_properties=person,
            groups=groups,
            group_properties=group_properties,
            device_id=self.pick([None, None, f"device-{rng.randint(0, 99)}"]),
        )


def documents(seed: int, count: int, flags: int = 12, subjects: int = 25) -> Iterator[Document]:
    """``count`` documents of ``flags`` flags, each with ``subjects`` subjects."""
    rng = random.Random(seed)
    for _ in range(count):
        gen = _Generator(rng, flags)
        cohort_ids: list[str] = []
        cohorts: dict[str, Any] = {}
        for i in range(rng.randint(0, 3)):
            cohorts[str(i + 1)] = gen.cohort(cohort_ids[:])
            cohort_ids.append(str(i + 1))
        flag_list = [gen.flag(key, cohort_ids, i + 1) for i, key in enumerate(gen.keys)]
        gen.fill_chains(flag_list, cohorts)
        body = {
            "flags": flag_list,
            "group_type_mapping": dict(GROUP_TYPES),
            "cohorts": cohorts,
            "property_matching_version": gen.pick([1, 1, 2]),
        }
        yield Document(body, [gen.subject() for _ in range(subjects)])


class Oracle:
    """PostHog's Python SDK evaluating locally, fed definitions through its public cache
    provider interface; nothing is sent anywhere."""

    def __init__(self) -> None:
        import posthog

        self._logger = logging.getLogger("posthog")
        self._was_disabled, self._logger.disabled = self._logger.disabled, True  # its warnings
        self._data: dict[str, Any] = {}
        self.client = posthog.Client(
            "phc_oracle",
            host="http://127.0.0.1:9",
            secret_key="phx_oracle",
            send=False,
            enable_local_evaluation=False,
            flag_definition_cache_provider=self,
        )

    # The cache provider protocol: always serve what ``load`` was given.
    def get_flag_definitions(self) -> dict[str, Any]:
        return self._data

    def should_fetch_flag_definitions(self) -> bool:
        return False

    def on_flag_definitions_received(self, data: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def load(self, body: dict[str, Any]) -> None:
        self._data = {
            "flags": body["flags"],
            "group_type_mapping": body["group_type_mapping"],
            "cohorts": body["cohorts"],
            "property_matching_version": body.get("property_matching_version", 1),
        }
        self.client.load_feature_flags()

    def evaluate(self, subject: Subject, keys: list[str]) -> dict[str, tuple[Any, Any]]:
        """Flag key to (value or None when unresolved, payload)."""
        snapshot = self.client.evaluate_flags(
            subject.distinct_id,
            groups=subject.groups,
            person_properties=dict(subject.person_properties),
            group_properties={k: dict(v) for k, v in subject.group_properties.items()},
            only_evaluate_locally=True,
            device_id=subject.device_id,
        )
        return {
            key: (
                snapshot.get_flag(key, send_feature_flag_events=False),
                snapshot.get_flag_payload(key),
            )
            for key in keys
        }

    def close(self) -> None:
        self.client.shutdown()
        self._logger.disabled = self._was_disabled
