"""The pieces of local evaluation with rules of their own: the regex syntax Python and
the flag service share, calendar arithmetic for relative dates, JSON text of values."""

from __future__ import annotations

import datetime as dt

import pytest

from posthog_otel._flags.local import dates, regex, semver
from posthog_otel._flags.local.predicate import InconclusiveError
from posthog_otel._flags.local.properties import json_text, number_or_none

SHARED = ["^ent", "a.c", "[a-z]+", "(pro|team)", "(?:ab)+", r"\d{2,3}", r"\w\s\W", r"[\-\]]", "x?"]
UNSHARED = [
    "(?i)pro",  # flags
    "(?P<n>a)",  # a named group
    "(?=a)",  # lookahead
    r"\bword",  # word boundary
    r"\p{L}",  # a Unicode class
    r"\0",  # an escape the engines read differently
    r"[\d-z]",  # a shorthand in a range
    "[[:alpha:]]",  # a class in a class
    "[a&&b]",  # class set operations
    "[]a]",  # an empty class first
    "(a+)+",  # a repeated group that repeats
    "a{2}+",  # a repetition then +
    "^*",  # a quantifier after ^
    "(){2}",  # a repetition of nothing
    r"\x4",  # \x without two digits
    "a{99999999999}",  # a count this large
]


@pytest.mark.parametrize("pattern", SHARED)
def test_shared_syntax_compiles(pattern):
    assert regex.compile_shared(pattern) is not None


@pytest.mark.parametrize("pattern", UNSHARED)
def test_syntax_the_engines_could_read_apart_is_undecided(pattern):
    with pytest.raises(InconclusiveError):
        regex.compile_shared(pattern)


@pytest.mark.parametrize("pattern", ["[unclosed", "(", "a**", "\\"])
def test_syntax_neither_engine_accepts_matches_nothing(pattern):
    assert regex.compile_shared(pattern) is None


def test_dollar_is_strict_and_risky_values_are_undecided():
    assert not regex.search(regex.compile_shared("c$"), "abc\n")  # Python's $ would match
    with pytest.raises(InconclusiveError):
        regex.search(regex.compile_shared("b+$"), "abb\n")
    with pytest.raises(InconclusiveError):
        regex.search(regex.compile_shared(r"\w+"), "e\u0301")  # a combining mark
    assert regex.search(regex.compile_shared(r"\w+"), "été")  # letters agree
    with pytest.raises(InconclusiveError):
        regex.search(regex.compile_shared(r"\s"), "a\x1cb")


@pytest.mark.parametrize(
    ("now", "months", "expected"),
    [
        (dt.datetime(2024, 3, 31), 2, dt.datetime(2024, 1, 29)),  # through Feb 29
        (dt.datetime(2023, 3, 31), 2, dt.datetime(2023, 1, 28)),  # through Feb 28
        (dt.datetime(2024, 5, 31), 1, dt.datetime(2024, 4, 30)),
        (dt.datetime(2024, 1, 15), 13, dt.datetime(2022, 12, 15)),
        (dt.datetime(2024, 1, 15), 0, dt.datetime(2024, 1, 15)),
    ],
)
def test_months_count_back_clamping_on_the_way(now, months, expected):
    assert dates._months_back(now, months) == expected


def test_years_count_back_and_a_leap_day_becomes_the_28th():
    assert dates._years_back(dt.datetime(2024, 2, 29), 1) == dt.datetime(2023, 2, 28)
    assert dates._years_back(dt.datetime(2024, 2, 29), 4) == dt.datetime(2020, 2, 28)
    assert dates._years_back(dt.datetime(2024, 6, 1), 3000) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01", dt.datetime(2024, 5, 1)),
        ("2024-05-01T10:00:00Z", dt.datetime(2024, 5, 1, 10, tzinfo=dt.timezone.utc)),
        ("2024-05-01 10:00:00 UTC", dt.datetime(2024, 5, 1, 10, tzinfo=dt.timezone.utc)),
        (
            "2024-05-01 12:00:00 +02:00",
            dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        ),
    ],
)
def test_filter_dates(text, expected):
    assert dates.parse_datetime(text) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (10, "10"),
        (1.0, "1.0"),
        (1e16, "1e+16"),
        (1.5e-05, "0.000015"),
        (1e-07, "1e-7"),
        ([1, "a", None], '[1,"a",null]'),
        ({"b": 1, "a": [True]}, '{"a":[true],"b":1}'),
        ("as is", "as is"),
    ],
)
def test_values_compare_in_the_flag_services_json_text(value, text):
    assert json_text(value, "missing_context") == text


def test_values_json_cannot_hold_are_undecided():
    for value in (float("nan"), float("inf"), object(), {1: "a"}):
        with pytest.raises(InconclusiveError):
            json_text(value, "missing_context")


@pytest.mark.parametrize(
    ("value", "number"),
    [("10", 10.0), ("-1.5e2", -150.0), (".5", 0.5), (" 5", None), ("1,000", None), (True, None)],
)
def test_numbers_are_numbers_or_strings_that_spell_one(value, number):
    assert number_or_none(value) == number


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("v1.2.3", (1, 2, 3)),
        (" 1.2 ", (1, 2, 0)),
        ("1.2.3-rc.1+b5", (1, 2, 3)),
        ("4.5.6.7", (4, 5, 6)),
    ],
)
def test_versions(text, version):
    assert semver.parse_version(text) == version


@pytest.mark.parametrize("text", ["", "v", "01.2.3", "1.02", "a.b.c", "-1.2.3"])
def test_not_versions(text):
    with pytest.raises(ValueError, match="version"):
        semver.parse_version(text)
