"""Property-based tests of flag definitions and flag answers from outside, with a fixed seed
and a bounded time: no exception escapes, every lookup returns within a bound, and the
regex engines agree with Python's ``re``.

Every test runs ``derandomize=True`` (the same examples on every run); together they
take about 12 s here. For a longer hunt, raise ``FUZZ_EXAMPLES`` in the environment.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posthog_otel import PostHogClient, PostHogFlagProvider
from posthog_otel._flagdata import parse_definitions, parse_flags_response
from posthog_otel._flags.local import automaton, backtrack, regex
from posthog_otel._flags.local.evaluator import Decision, LocalFlags, Undecided
from posthog_otel._flags.local.predicate import InconclusiveError
from posthog_otel._flags.local.properties import OPERATORS
from tests.support.server import API_KEY

SCALE = int(os.environ.get("FUZZ_EXAMPLES", "1"))
BOUND = 1.0  # seconds for any one lookup: generous, for a loaded machine
# Hypothesis warns when it describes the deliberately huge values.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


def fuzz(examples: int):
    return settings(
        max_examples=examples * SCALE,
        derandomize=True,
        deadline=None,  # timed by the tests themselves, against BOUND
        database=None,
        # too_slow and data_too_large: the shapes are big on purpose; the fixture is the
        # session's devserver, reset by each example itself.
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


# -- regexes: a small grammar, nested quantifiers included ----------------------------------

ATOMS = ["a", "b", "@", ".", "[ab]", "[^a]", "[a-c]", r"\d", r"\w", r"\s", r"\.", "^", "$", ""]
QUANTIFIERS = ["*", "+", "?", "*?", "+?", "{2}", "{0,3}", "{1,}", "{2,40}"]


def _grow(inner):
    return st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}|{t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"(?:{t[0]}|{t[1]})"),
        st.tuples(inner, st.sampled_from(QUANTIFIERS)).map(lambda t: f"(?:{t[0]}){t[1]}"),
        st.tuples(inner, st.sampled_from(QUANTIFIERS)).map(lambda t: f"({t[0]}){t[1]}"),
    )


PATTERNS = st.recursive(st.sampled_from(ATOMS), _grow, max_leaves=10)
SHORT_TEXT = st.text(alphabet="ab@.1 \nc_", max_size=10)
HOSTILE_TEXT = st.sampled_from(["a" * 26, "a" * 1000, "ab" * 2500, "a" * 9999 + "!", "@" * 5000])


@fuzz(1500)
@given(PATTERNS, SHORT_TEXT)
def test_the_automaton_finds_what_re_finds(pattern, text):
    """The automaton reads the pattern as ``re`` does: same answer on every text."""
    try:
        shared = regex.compile_shared(pattern)
    except InconclusiveError:
        return
    if shared is None:
        return
    machine = automaton.build(automaton.parse(shared.compiled.pattern))
    assert machine is not None
    assert machine.search(text) == (shared.compiled.search(text) is not None), (pattern, text)


@fuzz(300)
@given(PATTERNS, st.one_of(SHORT_TEXT, HOSTILE_TEXT))
def test_any_pattern_on_any_value_is_decided_in_bounded_time(pattern, text):
    started = time.monotonic()
    try:
        shared = regex.compile_shared(pattern)
        if shared is not None:
            found = regex.search(shared, text)
            if len(text) <= 10:  # re itself is safe on a text this short
                assert found == (shared.compiled.search(text) is not None)
    except InconclusiveError:
        pass
    assert time.monotonic() - started < BOUND, pattern


@fuzz(150)
@given(PATTERNS.map(lambda p: p + "!"))
def test_re_is_used_only_where_it_is_cheap(pattern):
    """At the longest length the cost model allows ``re``, ``re`` is fast on texts that
    make backtracking engines work hardest (no match: every way is tried)."""
    try:
        compiled = re.compile(pattern)
    except re.error:
        return
    try:
        length = backtrack.re_safe_length(automaton.parse(pattern))
    except automaton.UnreadError:
        return
    for text in ("a" * length, "ab" * (length // 2), "@" * length):
        started = time.monotonic()
        compiled.search(text)
        assert time.monotonic() - started < 0.1, (pattern, length)


def test_the_process_keeps_running_while_hostile_regexes_are_searched():
    """A heartbeat thread ticks every 5 ms while the hostile patterns run."""
    hostile = [
        "(a|a)*@example",
        "(a|aa)*b",
        "(?:a|a)*" * 20 + "b",
        "(.*a){12}",
        "(a?){30}a{30}",
        "([a-z]+)*=",
        "(\\w|\\d)+@" * 5,
    ]
    ticks: list[float] = []
    stop = threading.Event()

    def beat():
        while not stop.is_set():
            ticks.append(time.monotonic())
            stop.wait(0.005)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    decided = refused = 0
    try:
        for pattern in hostile:
            try:
                shared = regex.compile_shared(pattern)
            except InconclusiveError:
                refused += 1  # refused outright, as PostHog's step limit would
                continue
            assert shared is not None
            for text in ("a" * 26, "a" * 5000, "a" * 10_000):
                started = time.monotonic()
                try:
                    regex.search(shared, text)
                    decided += 1
                except InconclusiveError:
                    pass
                assert time.monotonic() - started < BOUND
    finally:
        ticks.append(time.monotonic())
        stop.set()
        thread.join(5)
    assert refused < len(hostile) - 2
    assert decided > 0
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.5


# -- flag definitions: plausible shapes with junk anywhere ----------------------------------

KEYS = ["f0", "f1", "f2"]
JUNK = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([10**30, -(10**30), 2**63, 1e308, float("inf"), float("nan")]),
        st.floats(),
        st.text(max_size=12),
        st.sampled_from(["-" + "9" * 5000 + "d", "9" * 5000, "x" * 20_000, "1.2.3", "-7d"]),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def deep(levels: int, inner=None):
    value = inner
    for _ in range(levels):
        value = [value]
    return value


ODD_DEPTH = st.sampled_from([40, 600, 2000]).map(lambda levels: deep(levels, "x"))


CONTAINERS = st.one_of(
    st.lists(JUNK, min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=4), JUNK, min_size=1, max_size=2),
    ODD_DEPTH,
)


def _either(strategy, right: int, odd: int):
    """``right`` in ``right + odd`` draws from ``strategy``, else an odd value. (``one_of``
    would merge repeated branches, so the weights are drawn first.)"""
    choices = [strategy] * right + [CONTAINERS, JUNK] * odd
    return st.sampled_from(choices).flatmap(lambda chosen: chosen)


def maybe(strategy):
    """For a leaf: half the time the right shape, else any JSON value (a list or object
    most often)."""
    return _either(strategy, 2, 1)


def seldom(strategy):
    """For the structure around the leaves: rarely odd, so that most examples reach them."""
    return _either(strategy, 16, 1)


VALUES = st.one_of(
    st.sampled_from(["pro", "a@b.c", "10", "2024-01-01", "-7d", "1.2.3", True, 5, ["pro", "x"]]),
    PATTERNS,
)
PROPERTY = st.fixed_dictionaries(
    {
        "key": maybe(st.sampled_from(["email", "plan", "distinct_id"])),
        "type": maybe(st.sampled_from(["person", "group", "cohort", "flag"])),
        "operator": maybe(st.sampled_from([*sorted(OPERATORS), "flag_evaluates_to", "in"])),
        "value": maybe(VALUES | st.sampled_from(["1", "2", "3"])),
    },
    optional={
        "dependency_chain": maybe(st.lists(maybe(st.sampled_from(KEYS)), max_size=3)),
        "negation": maybe(st.booleans()),
    },
)
CONDITION = st.fixed_dictionaries(
    {
        "properties": seldom(st.lists(PROPERTY, min_size=1, max_size=3)),
        "rollout_percentage": maybe(st.sampled_from([0, 50, 100, None])),
    },
    optional={
        "variant": maybe(st.sampled_from(["a", "b"])),
        "aggregation_group_type_index": seldom(st.sampled_from([0, None])),
    },
)
FILTERS = st.fixed_dictionaries(
    {"groups": seldom(st.lists(CONDITION, min_size=1, max_size=3))},
    optional={
        "multivariate": maybe(
            st.just(
                {
                    "variants": [
                        {"key": "a", "rollout_percentage": 50},
                        {"key": "b", "rollout_percentage": 50},
                    ]
                }
            )
        ),
        "payloads": maybe(st.dictionaries(st.sampled_from(["true", "a"]), st.text(max_size=8))),
        "holdout": maybe(st.just({"id": 1, "exclusion_percentage": 10})),
        "aggregation_group_type_index": maybe(st.sampled_from([0, None])),
        "feature_enrollment": seldom(st.just(False)),
        "early_exit": seldom(st.booleans()),
    },
)
FLAG = st.fixed_dictionaries(
    {"key": st.sampled_from(KEYS), "active": seldom(st.just(True)), "filters": seldom(FILTERS)},
    optional={
        "ensure_experience_continuity": seldom(st.just(False)),
        "bucketing_identifier": maybe(st.sampled_from(["device_id", "distinct_id"])),
        "id": JUNK,
        "version": JUNK,
    },
)
GROUP = st.recursive(
    st.fixed_dictionaries(
        {"type": maybe(st.sampled_from(["AND", "OR"])), "values": st.lists(PROPERTY, max_size=3)}
    ),
    lambda inner: st.fixed_dictionaries(
        {
            "type": st.sampled_from(["AND", "OR"]),
            "values": maybe(st.lists(inner | PROPERTY, max_size=3)),
        }
    ),
    max_leaves=6,
)
DOCUMENT = st.fixed_dictionaries(
    {
        "flags": seldom(st.lists(FLAG, min_size=1, max_size=4)),
        "cohorts": maybe(
            st.dictionaries(st.sampled_from(["1", "2", "3"]), maybe(GROUP), max_size=3)
        ),
        "group_type_mapping": seldom(st.just({"0": "company"})),
    },
    optional={"property_matching_version": JUNK},
)
PERSON = st.dictionaries(
    st.sampled_from(["email", "plan", "distinct_id", "$feature_enrollment/f0"]),
    st.one_of(VALUES, JUNK, ODD_DEPTH, st.sampled_from(["a" * 26, "a" * 9999, 10**5000])),
    max_size=3,
)


def decide_everything(local: LocalFlags, person, groups) -> None:
    for server_side in (False, True):
        subject = local.subject("u1", person, groups, {"company": person}, "device-1")
        started = time.monotonic()
        answers = local.decide_all(subject, server_side=server_side)
        for key in KEYS:
            one = local.decide(key, subject, server_side=server_side)
            assert one is None or isinstance(one, (Decision, Undecided))
        assert time.monotonic() - started < BOUND
        assert all(isinstance(a, (Decision, Undecided)) for a in answers.values())


@fuzz(400)
@given(DOCUMENT, PERSON, st.sampled_from([None, {"company": "acme"}]))
def test_no_definition_makes_a_lookup_raise_or_hang(document, person, groups):
    try:
        definitions = parse_definitions(document)
    except ValueError:
        return  # not a definitions document: a failed poll
    local = LocalFlags(definitions)  # never raises: an odd flag is compiled as broken
    decide_everything(local, person, groups)


@fuzz(300)
@given(
    JUNK
    | ODD_DEPTH
    | st.dictionaries(
        st.sampled_from(
            [
                "flags",
                "featureFlags",
                "featureFlagPayloads",
                "quotaLimited",
                "requestId",
                "errorsWhileComputingFlags",
            ]
        ),
        JUNK | st.dictionaries(st.sampled_from(KEYS), JUNK),
    )
)
def test_a_flags_answer_is_read_or_refused_never_raises_otherwise(body):
    try:
        answer = parse_flags_response(body)
    except ValueError:
        return
    for flag in answer.flags.values():
        assert isinstance(flag.enabled, (bool, str))


# -- the same through HTTP: the provider never raises, whatever the devserver says ----------

ANSWERS = st.one_of(
    JUNK.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=40),
    st.just(b"[" * 50_000 + b"]" * 50_000),
)


@fuzz(20)
@given(ANSWERS, st.sampled_from(["/flags/definitions", "/flags", "/decide"]))
def test_the_provider_never_raises_on_any_answer(server, body, path):
    server.faults.clear()
    server.set_flags({"flags": [], "group_type_mapping": {}, "cohorts": {}})
    server.faults.respond(200, body=body, paths=path, times=100)
    client = PostHogClient(API_KEY, server.url, retry_delay=0.01, timeout=2.0)
    flags = PostHogFlagProvider(client, secret_key="phs_fuzz", send_feature_flag_events=False)
    try:
        flags.load_definitions(0.2)
        started = time.monotonic()
        flags.is_enabled("f0", "u1")
        flags.get_flags("u1")
        assert time.monotonic() - started < 2 * BOUND + 2.0  # two requests, each with a timeout
    finally:
        flags.shutdown()
        client.close()


def test_definitions_deeper_than_the_stack_cost_one_flag():
    """Deeper than Python's recursion limit: only a document built in code gets here."""
    group = {"type": "AND", "values": [{"key": "plan", "type": "person", "value": "pro"}]}
    for _ in range(5000):
        group = {"type": "OR", "values": [group]}
    cohort = {"key": "id", "type": "cohort", "value": 1}
    filters = {"groups": [{"properties": [cohort], "rollout_percentage": 100}]}
    odd = {"key": "f0", "active": True, "filters": filters}
    plain = {"key": "f1", "active": True, "filters": {"groups": [{"rollout_percentage": 100}]}}
    local = LocalFlags(parse_definitions({"flags": [odd, plain], "cohorts": {"1": group}}))
    subject = local.subject("u1", {"plan": "pro"})
    assert isinstance(local.decide("f0", subject), Undecided)
    assert local.decide("f1", subject) == Decision(True, "condition_match", 0)
