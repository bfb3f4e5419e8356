"""The one encoder, and the lenient conversion the pipeline relies on."""

from __future__ import annotations

import json

import pytest

from posthog_otel._json import dumps, lenient


def test_dumps_is_compact_utf8(json_backend):
    assert dumps({"a": [1, "é"], "t": (1, 2)}) == '{"a":[1,"é"],"t":[1,2]}'.encode()


def test_nan_is_null_or_an_error_never_invalid_json(json_backend):
    if json_backend == "orjson":
        assert dumps({"x": float("nan")}) == b'{"x":null}'
    else:
        with pytest.raises(ValueError, match="JSON"):
            dumps({"x": float("nan")})


def test_what_orjson_refuses_falls_back_to_the_standard_library(json_backend):
    assert json.loads(dumps({"s": "bad \ud800 char"}))["s"].startswith("bad ")
    assert json.loads(dumps({"big": 2**70})) == {"big": 2**70}
    with pytest.raises(TypeError):
        dumps({"b": b"bytes"})


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


def test_lone_surrogates_become_the_replacement_character(json_backend):
    # Never "?": "user\udc80" must not become the same id as a real "user?".
    assert json.loads(dumps({"id": "user\udc80", "s": "a\ud800b"})) == {
        "id": "user\ufffd",
        "s": "a\ufffdb",
    }
    assert json.loads(dumps({"pair": "\ud83d\ude00"})) == {"pair": "\U0001f600"}
    assert json.loads(dumps(["\ud800", 2**70])) == ["\ufffd", 2**70]  # on the fallback path too
