"""The one encoder, and the lenient conversion the pipeline relies on."""

from __future__ import annotations

import json

import pytest

from posthog_otel._json import dumps, lenient


def test_dumps_is_compact_utf8():
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


def test_dumps_refuses_nan():
    with pytest.raises(ValueError, match="JSON"):
        dumps({"x": float("nan")})


def test_lone_surrogates_do_not_break_encoding():
    data = dumps({"s": "bad \ud800 char"})
    assert json.loads(data)["s"].startswith("bad ")


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), None),
        (float("-inf"), None),
        (b"caf\xc3\xa9", "café"),
        (b"\xff", "\ufffd"),
        ((1, (2, 3)), [1, [2, 3]]),
        ({"k": {"n": float("inf")}}, {"k": {"n": None}}),
        ({1: "a"}, {"1": "a"}),
        (Unprintable(), None),
    ],
)
def test_lenient_never_raises(value, expected):
    assert lenient(value) == expected
    dumps(lenient(value))


def test_lenient_stringifies_unknown_objects():
    class Thing:
        def __str__(self) -> str:
            return "thing"

    assert lenient(Thing()) == "thing"
