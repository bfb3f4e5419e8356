"""Python traceback text to PostHog's $exception_list."""

from __future__ import annotations

import traceback

from posthog_otel._mapping.exceptions import exception_list


def formatted(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def raise_chain() -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        raise ValueError("could not load") from exc


def test_a_simple_traceback():
    try:
        int("x")
    except ValueError as exc:
        text = formatted(exc)
    (entry,) = exception_list("ValueError", "invalid literal", text, handled=True)
    assert entry["type"] == "ValueError"
    assert entry["module"] == "builtins"
    assert entry["value"] == "invalid literal"
    assert entry["mechanism"] == {"type": "generic", "handled": True, "synthetic": False}
    (frame,) = entry["stacktrace"]["frames"]
    assert entry["stacktrace"]["type"] == "raw"
    assert frame["function"] == "test_a_simple_traceback"
    assert frame["context_line"] == 'int("x")'
    assert frame["abs_path"] == __file__
    assert frame["filename"] == "tests/unit/test_exceptions.py"
    assert frame["module"] == "tests.unit.test_exceptions"
    assert frame["lineno"] > 0
    assert frame["in_app"] is True
    assert frame["platform"] == "python"


def test_chained_exceptions_outermost_first():
    try:
        raise_chain()
    except ValueError as exc:
        text = formatted(exc)
    outer, cause = exception_list("ValueError", "could not load", text, handled=False)
    assert (outer["type"], outer["value"]) == ("ValueError", "could not load")
    assert (cause["type"], cause["value"]) == ("KeyError", "'missing'")
    assert outer["mechanism"]["type"] == "generic"
    assert cause["mechanism"] == {"type": "chained", "handled": False, "synthetic": False}
    assert [f["function"] for f in outer["stacktrace"]["frames"]] == [
        "test_chained_exceptions_outermost_first",
        "raise_chain",
    ]
    assert cause["stacktrace"]["frames"][-1]["context_line"] == '{}["missing"]'


def test_library_and_standard_library_frames_are_not_in_app():
    text = (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/handlers.py", line 10, in checkout\n'
        "    client.charge()\n"
        '  File "/venv/lib/python3.11/site-packages/stripe/api.py", line 88, in charge\n'
        "    raise stripe.error.CardError(msg)\n"
        '  File "/usr/lib/python3.11/json/decoder.py", line 3, in decode\n'
        "    ^^^^^^^^^^\n"
        "stripe.error.CardError: declined\n"
    )
    (entry,) = exception_list("CardError", "declined", text, handled=True)
    assert entry["type"] == "CardError"
    assert entry["module"] == "stripe.error"
    app, library, stdlib = entry["stacktrace"]["frames"]
    assert app["in_app"] is True
    assert library["in_app"] is False
    assert library["filename"] == "stripe/api.py"
    assert library["module"] == "stripe.api"
    assert stdlib["in_app"] is False
    assert "context_line" not in stdlib  # the caret line is not code


def test_a_multi_line_message():
    text = (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/x.py", line 1, in <module>\n'
        "    f()\n"
        "app.errors.Invalid: first line\n"
        "second line\n"
    )
    (entry,) = exception_list("app.errors.Invalid", "first line\nsecond line", text, handled=True)
    assert entry["module"] == "app.errors"
    assert entry["value"] == "first line\nsecond line"


def test_text_that_is_not_a_traceback_gives_one_synthetic_frame():
    for text in ("", "something went wrong", "   \n\n"):
        (entry,) = exception_list("TimeoutError", "took too long", text, handled=True)
        assert entry["type"] == "TimeoutError"
        assert entry["mechanism"]["synthetic"] is True
        (frame,) = entry["stacktrace"]["frames"]
        assert frame["synthetic"] is True and frame["in_app"] is False


def test_missing_type_still_makes_an_entry():
    (entry,) = exception_list("", "", "", handled=True)
    assert entry["type"] == "Exception"


def test_in_app_frames_parsed_from_text_get_the_lines_around_them():
    try:
        raise_chain()
    except ValueError as exc:
        text = formatted(exc)
    entries = exception_list("ValueError", "could not load", text, handled=True)
    frame = entries[0]["stacktrace"]["frames"][-1]
    assert frame["function"] == "raise_chain"
    assert frame["pre_context"][-1].strip() == "except KeyError as exc:"
    assert len(frame["pre_context"]) == 5 and frame["post_context"]


def test_a_changed_file_or_one_outside_the_project_gives_no_lines(tmp_path):
    changed = 'Traceback (most recent call last):\n  File "%s", line 3, in f\n    not what is there\nValueError: x\n'
    (entry,) = exception_list("ValueError", "x", changed % __file__, handled=True)
    assert "pre_context" not in entry["stacktrace"]["frames"][0]
    outside = tmp_path / "elsewhere.py"
    outside.write_text("a = 1\nb = 2\nraise ValueError('x')\n")
    text = changed.replace("not what is there", "raise ValueError('x')") % outside
    (entry,) = exception_list("ValueError", "x", text, handled=True)
    assert "pre_context" not in entry["stacktrace"]["frames"][0]
