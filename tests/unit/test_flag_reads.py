"""What the fast paths of a flag read remember, and that they answer as the slow ones do:
the counters' per-thread cells, each thread's memory of reported exposures, a cached
answer's evaluations, and the checks a plain read skips."""

from __future__ import annotations

import threading

import pytest

from posthog_otel._flagdata import ExposureLog, FeatureFlag, FlagsResponse
from posthog_otel._flags.provider import (
    INCONCLUSIVE,
    LOCAL,
    NO_CONTEXT,
    REMOTE,
    FlagCounters,
    distinct_id_for,
    flag_context,
)
from posthog_otel._flags.remote import FlagCache, evaluation
from posthog_otel._limits import FLAG_EXPOSURES_PER_THREAD
from tests.support.server import FakeClock


def test_counts_from_many_threads_add_up_exactly_and_outlive_their_threads():
    counts = FlagCounters()

    def read() -> None:
        for _ in range(1000):
            counts.add(1, LOCAL)
        counts.add(1, REMOTE)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts.add(1, INCONCLUSIVE)  # a new cell here folds the finished threads' cells
    assert counts.totals() == (8000, 8, 1)


def test_an_exposure_is_first_once_across_threads_and_past_a_threads_memory():
    log = ExposureLog()
    firsts = []

    def read() -> None:
        for _ in range(50):
            firsts.append(log.first("u1", "beta", True, {"company": "acme"}))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert firsts.count(True) == 1
    for i in range(FLAG_EXPOSURES_PER_THREAD + 5):  # past this thread's memory: emptied
        log.first(f"user-{i}", "beta", True, None)
    assert not log.first("u1", "beta", True, {"company": "acme"})  # the shared log knows
    assert log.first("u1", "beta", "test", {"company": "acme"})  # another value is new
    assert log.first("u1", "beta", True, {"company": "other"})  # so are other groups


def test_a_cached_answers_evaluations_are_remembered_and_stale_ones_are_not():
    clock = FakeClock()
    cache = FlagCache(ttl=30.0, size=10, grace=60.0, clock=clock, wait_timeout=1.0)
    flags = {"f": FeatureFlag("f", True, reason="matched")}
    cache.lookup("u", lambda: FlagsResponse(flags))
    hit = cache.fresh("u")
    assert hit is not None and hit.source == "cached"
    first = evaluation(hit, "f")
    assert evaluation(cache.lookup("u", _never), "f") is first  # remembered with the answer
    assert (first.flag, first.source, first.error) == (flags["f"], "cached", None)
    missing = evaluation(hit, "nope")
    assert (missing.flag, missing.error) == (None, "flag_missing")
    assert "nope" not in hit.entry.reads  # only the answer's own flags are remembered

    clock.now += 31  # expired, and the service is down: served stale, marked so
    stale = cache.lookup("u", _down)
    read = evaluation(stale, "f")
    assert read.source == "stale" and read.flag.reason == "stale: matched"
    assert cache.fresh("u") is None


def _never() -> FlagsResponse:
    raise AssertionError("a fresh answer must not be fetched again")


def _down() -> FlagsResponse:
    raise OSError("down")


@pytest.mark.parametrize(
    ("properties", "checked"),
    [
        ({"plan": "pro", "n": 3, "ok": True, "none": None}, "as given"),
        ({"when": 1.5}, "converted"),  # a float is not one of the plain types
        ({1: "x"}, "converted"),  # nor is a key that is not a string
        ({}, "as given"),
    ],
)
def test_a_read_with_plain_properties_skips_the_conversion(properties, checked):
    context = flag_context(None, properties, None)
    assert (context.person_properties is properties) == (checked == "as given")
    assert context.person_properties == {str(k): v for k, v in properties.items()}


def test_the_shortcuts_check_what_the_full_checks_do():
    assert flag_context(None, None, None) is NO_CONTEXT
    assert flag_context({"company": 7}, None, None).groups == {"company": "7"}
    assert distinct_id_for("u1") == "u1"
    for bad in ("", "   "):
        with pytest.raises(ValueError, match="distinct_id"):
            distinct_id_for(bad)
    with pytest.raises(TypeError, match="distinct_id"):
        distinct_id_for(7)  # type: ignore[arg-type]


def _prop(key: str, operator: str, value: object) -> dict[str, object]:
    return {"key": key, "type": "person", "operator": operator, "value": value}


MIXED = {
    "flags": [
        {
            "id": 1,
            "key": "mixed",
            "active": True,
            "filters": {
                "groups": [
                    # missing "plan" is inconclusive, but "age" may still fail the condition
                    {"properties": [_prop("plan", "exact", "pro"), _prop("age", "gt", 30)]},
                    {
                        "properties": [_prop("email", "icontains", "@acme")],
                        "rollout_percentage": 40,
                    },
                    {"properties": [_prop("country", "exact", ["DE", "FR"])], "variant": "b"},
                    {"properties": [], "rollout_percentage": 0},
                ],
                "multivariate": {
                    "variants": [
                        {"key": "a", "rollout_percentage": 50},
                        {"key": "b", "rollout_percentage": 50},
                    ]
                },
            },
        },
        {
            "id": 2,
            "key": "dependent",
            "active": True,
            "filters": {
                "groups": [
                    {
                        "properties": [
                            {
                                "key": "missing-flag",
                                "type": "flag",
                                "operator": "flag_evaluates_to",
                                "value": True,
                                "dependency_chain": ["missing-flag"],
                            }
                        ]
                    },
                    {"properties": [_prop("age", "lt", 18)]},
                ]
            },
        },
    ],
    "group_type_mapping": {},
    "cohorts": {},
}
SUBJECTS = [
    {},
    {"age": 20},
    {"age": 40},
    {"plan": "pro", "age": 40},
    {"email": "x@acme.com"},
    {"email": "x@acme.com", "plan": "free"},
    {"country": "fr", "plan": "free"},
    {"age": 12},
    {"age": "not a number", "plan": "pro"},
    # every filter read is given: decided in one frame
    {"plan": "free", "age": 40, "email": "x@acme.com", "country": "US"},
    {"plan": "free", "age": 40, "email": "x@other.com", "country": "DE"},
    {"plan": "free", "age": 40, "email": "x@other.com", "country": "US"},
    {"plan": "pro", "age": 50, "email": "x@other.com", "country": "US"},
]


@pytest.mark.parametrize("properties", SUBJECTS, ids=str)
def test_the_one_frame_match_decides_as_the_careful_loop(properties):
    from posthog_otel._flagdata import parse_definitions
    from posthog_otel._flags.local.evaluator import LocalFlags

    fast = LocalFlags(parse_definitions(MIXED))
    careful = LocalFlags(parse_definitions(MIXED))
    assert all(flag.direct for flag in fast.flags.values())
    for flag in careful.flags.values():
        flag.direct = False
    for user in (f"user-{i}" for i in range(40)):
        subject = fast.subject(user, properties)
        for key in fast.flags:
            assert fast.decide(key, subject) == careful.decide(key, subject), (key, user)
        assert fast.decide_all(subject) == careful.decide_all(subject)
