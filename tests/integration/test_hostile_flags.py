"""Hostile flag definitions, against the devserver: a regex never freezes the process, and
one odd flag is undecided (asked of PostHog, or its default with ``only_local``) while
every other flag is still decided locally, with no exception reaching the caller."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from posthog_otel import PostHogClient, PostHogFlagProvider
from posthog_otel._flagdata import parse_definitions
from posthog_otel._flags.local.evaluator import LocalFlags, Undecided
from posthog_otel._limits import (
    FLAG_MAX_ITEMS,
    FLAG_MAX_NESTING,
    REGEX_MAX_PATTERN_CHARS,
    REGEX_MAX_VALUE_CHARS,
)
from tests.support.server import API_KEY

SECRET = "phs_hostile_0123456789"
GOOD = {
    "id": 1,
    "key": "good",
    "active": True,
    "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]},
}
# Over the automaton's step budget: twenty ambiguous loops, ten thousand characters.
DEAR = "(?:a|a)*" * 20 + "b"


def flag(key, *filters, payloads=None):
    found = {"id": 2, "key": key, "active": True, "filters": {}}
    found["filters"]["groups"] = [{"properties": list(filters), "rollout_percentage": 100}]
    if payloads:
        found["filters"]["payloads"] = payloads
    return found


def person(key, operator, value):
    return {"key": key, "type": "person", "operator": operator, "value": value}


def depends(key, chain):
    return {
        "key": key,
        "type": "flag",
        "operator": "flag_evaluates_to",
        "value": True,
        "dependency_chain": chain,
    }


def nested(depth):
    value = "x"
    for _ in range(depth):
        value = [value]
    return value


def cohort_chain(depth):
    """Cohort 0 names cohort 1, which names cohort 2, ... down to a property filter."""
    cohorts = {
        str(i): {"type": "AND", "values": [{"type": "cohort", "key": "id", "value": i + 1}]}
        for i in range(depth)
    }
    cohorts[str(depth)] = {"type": "AND", "values": [person("email", "exact", "a@b.c")]}
    return cohorts


def group_tower(depth):
    """One cohort whose property groups nest ``depth`` deep."""
    group = {"type": "AND", "values": [person("email", "exact", "a@b.c")]}
    for _ in range(depth):
        group = {"type": "OR", "values": [group]}
    return {"1": group}


EMAIL = {"email": "a@b.c"}
EMAIL_IS = person("email", "exact", "a@b.c")
# name: (the odd flag, the cohorts, the properties the lookup passes)
ODD = {
    "a list as a property key": (flag("odd", person(["email"], "exact", "x")), {}, EMAIL),
    "a list as an operator": (flag("odd", person("email", ["exact"], "x")), {}, EMAIL),
    "a list in a dependency chain": (flag("odd", depends("good", [["good"]])), {}, EMAIL),
    "an object in a dependency chain": (flag("odd", depends("good", [{"k": 1}])), {}, EMAIL),
    "a list as a dependency's key": (flag("odd", depends(["good"], ["good"])), {}, EMAIL),
    "a relative date of 5000 digits": (
        flag("odd", person("email", "is_date_before", "-" + "9" * 5000 + "d")),
        {},
        {"email": "2024-01-01"},
    ),
    "a cohort chain 250 deep": (
        flag("odd", {"type": "cohort", "key": "id", "value": 0}),
        cohort_chain(250),
        EMAIL,
    ),
    "a regex search over its budget": (
        flag("odd", person("email", "regex", DEAR)),
        {},
        {"email": "a" * 9000},
    ),
    f"a regex over {REGEX_MAX_PATTERN_CHARS} characters": (
        flag("odd", person("email", "regex", "a" * (REGEX_MAX_PATTERN_CHARS + 1))),
        {},
        {"email": "a" * (REGEX_MAX_PATTERN_CHARS + 1)},
    ),
    f"a value over {REGEX_MAX_VALUE_CHARS} characters under a regex": (
        flag("odd", person("email", "regex", "a")),
        {},
        {"email": "a" * (REGEX_MAX_VALUE_CHARS + 1)},
    ),
    f"over {FLAG_MAX_ITEMS} filters in all conditions": (
        {
            **flag("odd"),
            "filters": {
                "groups": [
                    {"properties": [person("email", "exact", "a@b.c")] * 600},
                    {"properties": [person("email", "exact", "a@b.c")] * 600},
                ]
            },
        },
        {},
        EMAIL,
    ),
    f"a cohort of over {FLAG_MAX_ITEMS} entries": (
        flag("odd", {"type": "cohort", "key": "id", "value": 1}),
        {"1": {"type": "OR", "values": [{"type": "AND", "values": [EMAIL_IS] * 600}] * 2}},
        EMAIL,
    ),
    f"a condition of over {FLAG_MAX_ITEMS} filters": (
        flag("odd", *[person("email", "exact", "a@b.c")] * (FLAG_MAX_ITEMS + 1)),
        {},
        EMAIL,
    ),
}


@pytest.fixture
def make_provider(server):
    made = []

    def make(*, local=True, **options):
        client = PostHogClient(API_KEY, server.url, retry_delay=0.01, timeout=5.0)
        if local:
            options["secret_key"] = SECRET
        options.setdefault("send_feature_flag_events", False)
        provider = PostHogFlagProvider(client, **options)
        made.append((provider, client))
        return provider

    yield make
    for provider, client in made:
        provider.shutdown()
        client.close()


class Heartbeat:
    """A thread that ticks every 5 ms: the longest gap between ticks says how long the
    process stood still."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.ticks.append(time.monotonic())
            self.stop.wait(0.005)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        while not self.ticks:
            time.sleep(0.001)
        return self

    def __exit__(self, *exc) -> None:
        self.ticks.append(time.monotonic())
        self.stop.set()
        self.thread.join(5)

    @property
    def longest_gap(self) -> float:
        return max(b - a for a, b in itertools.pairwise(self.ticks))


HOSTILE_REGEX = flag("promo", person("email", "regex", "(a|a)*@example"))


def test_a_hostile_regex_never_freezes_the_process(server, make_provider):
    """On the old code this lookup held the GIL for about 9 s."""
    server.set_flags({"flags": [HOSTILE_REGEX, GOOD], "group_type_mapping": {}, "cohorts": {}})
    flags = make_provider()
    assert flags.load_definitions(10)
    with Heartbeat() as beat:
        started = time.monotonic()
        enabled = flags.is_enabled("promo", "u1", person_properties={"email": "a" * 26})
        took = time.monotonic() - started
    assert enabled is False  # decided, and right: no "@example" in the value
    assert flags.stats().local == 1 and flags.stats().remote == 0
    assert took < 1.0, took
    assert beat.longest_gap < 0.5, beat.longest_gap


def test_the_devservers_flags_answer_never_freezes_on_a_hostile_regex(server, make_provider):
    """``/flags`` evaluates with the same evaluator, in this process."""
    server.set_flags({"flags": [HOSTILE_REGEX, GOOD], "group_type_mapping": {}, "cohorts": {}})
    flags = make_provider(local=False)
    with Heartbeat() as beat:
        started = time.monotonic()
        enabled = flags.is_enabled("promo", "u1", person_properties={"email": "a" * 28})
        took = time.monotonic() - started
    assert enabled is False and flags.stats().remote == 1
    assert took < 2.0, took
    assert beat.longest_gap < 0.5, beat.longest_gap


def test_a_regex_search_over_budget_takes_little_time_and_only_its_flag(server, make_provider):
    server.set_flags({"flags": [flag("odd", person("email", "regex", DEAR)), GOOD]})
    flags = make_provider(only_local=True)
    assert flags.load_definitions(10)
    started = time.monotonic()
    assert flags.is_enabled("odd", "u1", person_properties={"email": "a" * 9000}, default=True)
    assert time.monotonic() - started < 0.5
    assert flags.is_enabled("good", "u1")


@pytest.mark.parametrize("case", list(ODD))
def test_an_odd_flag_is_asked_of_posthog_and_the_others_stay_local(server, make_provider, case):
    odd, cohorts, properties = ODD[case]
    server.set_flags({"flags": [odd, GOOD], "group_type_mapping": {}, "cohorts": cohorts})
    remote = make_provider(local=False).is_enabled("odd", "u1", person_properties=properties)
    flags = make_provider()
    assert flags.load_definitions(10)
    started = time.monotonic()
    assert flags.is_enabled("odd", "u1", person_properties=properties) == remote
    assert time.monotonic() - started < 1.0
    stats = flags.stats()
    assert (stats.local, stats.inconclusive, stats.remote) == (0, 1, 1)
    assert flags.is_enabled("good", "u1", person_properties=properties)
    assert flags.stats().local == 1  # local evaluation is still on for the others
    every = flags.get_flags("u1", person_properties=properties)
    assert every["good"].enabled and every["good"].reason.startswith("Evaluated locally")
    assert "odd" in every and not every["odd"].reason.startswith("Evaluated locally")


@pytest.mark.parametrize("case", list(ODD))
def test_an_odd_flag_is_its_default_with_only_local(server, make_provider, case):
    odd, cohorts, properties = ODD[case]
    server.set_flags({"flags": [odd, GOOD], "group_type_mapping": {}, "cohorts": cohorts})
    flags = make_provider(only_local=True)
    assert flags.load_definitions(10)
    assert flags.is_enabled("odd", "u1", person_properties=properties, default=True)
    assert flags.get_flag("odd", "u1", person_properties=properties) is None
    assert flags.get_flags("u1", person_properties=properties).keys() == {"good"}
    assert server.requests.matching("/decide") == []  # PostHog is never asked


# Deeper than the client reads a definitions document (it refuses one over 64 levels as a
# whole), so these reach the evaluator only from the devserver or a caller's own document.
DEEP = {
    "a filter value nested 600 deep": (flag("odd", person("email", "exact", nested(600))), {}),
    "cohort groups nested 300 deep": (
        flag("odd", {"type": "cohort", "key": "id", "value": 1}),
        group_tower(300),
    ),
}


@pytest.mark.parametrize("case", list(DEEP))
def test_definitions_nested_deeper_than_the_client_reads_cost_only_their_flag(case):
    odd, cohorts = DEEP[case]
    local = LocalFlags(parse_definitions({"flags": [odd, GOOD], "cohorts": cohorts}))
    for server_side in (False, True):
        subject = local.subject("u1", EMAIL)
        answers = local.decide_all(subject, server_side=server_side)
        assert isinstance(answers["odd"], Undecided)
        assert isinstance(local.decide("odd", subject, server_side=server_side), Undecided)
        assert answers["good"].value is True


def test_a_payload_deeper_than_json_reads_costs_only_its_flag(server, make_provider):
    """Unreadable, as the same payload in a flags answer is (a failed fetch)."""
    deep = flag("deep", payloads={"true": "[" * 5000 + "]" * 5000})
    server.set_flags({"flags": [deep, GOOD], "group_type_mapping": {}, "cohorts": {}})
    flags = make_provider(only_local=True)
    assert flags.load_definitions(10)
    assert flags.get_flag("deep", "u1") is None
    assert flags.is_enabled("good", "u1")


def test_cohorts_nested_to_the_limit_are_still_decided(server, make_provider):
    depth = FLAG_MAX_NESTING - 1  # the chain, and the group holding the property
    odd = flag("odd", {"type": "cohort", "key": "id", "value": 0})
    server.set_flags({"flags": [odd], "group_type_mapping": {}, "cohorts": cohort_chain(depth)})
    flags = make_provider(only_local=True)
    assert flags.load_definitions(10)
    assert flags.is_enabled("odd", "u1", person_properties=EMAIL)
    assert not flags.is_enabled("odd", "u1", person_properties={"email": "x"}, default=True)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"flags": "all of them"}',
        b'{"flags": [], "cohorts": [1, 2]}',
        b'{"flags": [1, null, "x", {"key": ["k"]}], "group_type_mapping": 7}',
        b"\xff\xfe not json",
    ],
    ids=["nested 100,000 deep", "flags not a list", "cohorts a list", "odd flags", "not json"],
)
def test_an_absurd_definitions_document_is_a_failed_poll(server, make_provider, body):
    server.set_flags({"flags": [GOOD], "group_type_mapping": {}, "cohorts": {}})
    server.faults.respond(200, body=body, paths="/flags/definitions", times=1000)
    flags = make_provider(poll_interval=0.05)
    assert not flags.load_definitions(0.5)
    status = flags.definitions_status()
    assert status.polls >= 1 and status.failing_since is not None and status.error
    assert flags.is_enabled("good", "u1")  # asked of PostHog instead
    assert flags.stats().remote == 1


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"flags": {"a": {"enabled": [[[]]], "variant": {}, "metadata": 5}}}',
        b'{"featureFlags": {"good": [1]}, "featureFlagPayloads": "x"}',
        b'{"flags": {"good": {"enabled": true, "metadata": {"payload": "'
        + b"[" * 5000
        + b"]" * 5000
        + b'"}}}}',
    ],
    ids=["nested 100,000 deep", "odd detail", "odd legacy", "payload deeper than json reads"],
)
def test_an_absurd_flags_answer_never_raises(server, make_provider, body):
    server.faults.respond(200, body=body, paths=("/flags", "/decide"), times=1000)
    flags = make_provider(local=False)
    started = time.monotonic()
    flags.is_enabled("good", "u1")
    flags.get_flags("u1")
    assert time.monotonic() - started < 2.0
