"""Exception objects to PostHog's ``$exception_list`` (autocapture): the chain in
PostHog's SDK's order, frames with in-app marking and source context, masked code
variables, the per-type token bucket, and the hooks chained and undone."""

from __future__ import annotations

import builtins
import os
import sys
import sysconfig
import threading
from typing import Any

import pytest

from posthog_otel._limits import (
    MAX_CODE_VARIABLES_TOTAL,
    MAX_CONTEXT_LINE_CHARS,
)
from posthog_otel._mapping.convention import DEFAULT_DENYLIST, denylist_pattern
from posthog_otel._mapping.exceptions import (
    FrameOptions,
    code_variables,
    exception_list_from,
    is_in_app,
)
from posthog_otel._pipeline.autocapture import Autocapture, TokenBuckets

ROOT = os.getcwd()
OPTIONS = FrameOptions(project_root=ROOT)
MASK = "$$_posthog_redacted_based_on_masking_rules_$$"


def caught(fn: Any) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def cause_and_context() -> None:
    try:
        try:
            int("x")
        except ValueError as exc:
            raise KeyError("k") from exc
    except KeyError:
        raise RuntimeError("outer")  # noqa: B904 - its __context__ is the point


def group() -> None:
    first = caught(cause_and_context)
    second = caught(lambda: 1 / 0)
    raise builtins.ExceptionGroup("many", [first, second])


def shape(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            e["type"],
            e["mechanism"].get("exception_id"),
            e["mechanism"].get("parent_id"),
            e["mechanism"].get("type"),
            e["mechanism"].get("source"),
        )
        for e in entries
    ]


@pytest.mark.parametrize("fn", [cause_and_context, group], ids=["cause-context", "group"])
def test_the_chain_is_in_posthog_s_sdk_order(fn):
    exception_utils = pytest.importorskip("posthog.exception_utils")
    if fn is group and sys.version_info < (3, 11):
        pytest.skip("ExceptionGroup is Python 3.11's")
    exc = caught(fn)
    theirs = exception_utils.exceptions_from_error_tuple((type(exc), exc, exc.__traceback__))
    ours = exception_list_from(exc, "generic", handled=True, options=OPTIONS)
    assert shape(ours) == shape(theirs)
    assert len(ours) > 2


def test_cycles_and_repeats_are_listed_once():
    a, b = ValueError("a"), KeyError("b")
    a.__context__, b.__context__ = b, a
    entries = exception_list_from(a, "generic", handled=True, options=OPTIONS)
    assert [e["type"] for e in entries] == ["ValueError", "KeyError"]


def test_frames_carry_module_lines_and_source_context():
    exc = caught(cause_and_context)
    (outer, *_) = exception_list_from(exc, "generic", handled=False, options=OPTIONS)
    frame = outer["stacktrace"]["frames"][-1]
    assert frame["function"] == "cause_and_context"
    assert frame["module"] == __name__
    assert frame["abs_path"] == __file__
    assert frame["filename"] == os.path.relpath(__file__, ROOT)
    assert frame["in_app"] is True
    assert frame["context_line"].strip().startswith('raise RuntimeError("outer")')
    assert frame["pre_context"][-1].strip() == "except KeyError:"
    assert len(frame["pre_context"]) == len(frame["post_context"]) == 5


def test_long_source_lines_are_cut(tmp_path):
    path = tmp_path / "long.py"
    path.write_text("def f():\n    x = '" + "y" * 5000 + "'; 1 / 0\n")
    namespace: dict[str, Any] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    exc = caught(namespace["f"])
    (entry,) = exception_list_from(
        exc, "generic", handled=True, options=FrameOptions(project_root=str(tmp_path))
    )
    frame = entry["stacktrace"]["frames"][-1]
    assert frame["in_app"] is True
    assert len(frame["context_line"]) == MAX_CONTEXT_LINE_CHARS


@pytest.mark.parametrize(
    ("path", "module", "modules", "expected"),
    [
        (f"{ROOT}/app/views.py", "app.views", (), True),
        (f"{ROOT}/.venv/lib/python3.11/site-packages/flask/app.py", "flask.app", (), False),
        ("/usr/lib/python3/dist-packages/yaml/__init__.py", "yaml", (), False),
        (os.path.join(sysconfig.get_paths()["stdlib"], "json", "decoder.py"), "json", (), False),
        ("/elsewhere/tool.py", "tool", (), False),
        ("<string>", "__main__", (), False),
        ("/opt/lib/site-packages/mycorp/core.py", "mycorp.core", ("mycorp",), True),
        ("/opt/lib/site-packages/mycorpx/core.py", "mycorpx.core", ("mycorp",), False),
    ],
)
def test_in_app(path, module, modules, expected):
    assert (
        is_in_app(path, module, FrameOptions(in_app_modules=modules, project_root=ROOT)) is expected
    )


def test_library_frames_have_no_context_and_no_variables():
    import json

    exc = caught(lambda: json.loads("{"))
    options = FrameOptions(project_root=ROOT, code_variables=True)
    entries = exception_list_from(exc, "generic", handled=True, options=options)
    library = [f for e in entries for f in e["stacktrace"]["frames"] if not f["in_app"]]
    assert library
    assert not any("context_line" in f or "code_variables" in f for f in library)


def test_code_variables_are_masked_and_off_by_default():
    def leaky() -> None:
        api_key = "phc_secret"
        dsn = "postgres://app:pa55word@db:5432/app"
        headers = {"Authorization": "Bearer x", "Accept": "json"}
        n = 42
        raise RuntimeError(f"{api_key}{dsn}{headers}{n}")

    exc = caught(leaky)
    (plain,) = exception_list_from(exc, "generic", handled=True, options=OPTIONS)
    assert not any("code_variables" in f for f in plain["stacktrace"]["frames"])
    options = FrameOptions(
        project_root=ROOT, code_variables=True, denylist=denylist_pattern(DEFAULT_DENYLIST)
    )
    (entry,) = exception_list_from(exc, "generic", handled=True, options=options)
    variables = entry["stacktrace"]["frames"][-1]["code_variables"]
    assert variables["api_key"] == MASK
    assert variables["n"] == "42"
    assert "pa55word" not in variables["dsn"] and "db:5432/app" in variables["dsn"]
    assert "Bearer" not in variables["headers"] and "'json'" in variables["headers"]


def test_code_variables_stay_within_their_total():
    big = {f"v{i}": "x" * 5000 for i in range(100)}
    budget = [MAX_CODE_VARIABLES_TOTAL, 10]
    out = code_variables(big, None, budget)
    assert 0 < len(out) < 100
    assert sum(len(k) + len(v) for k, v in out.items()) < MAX_CODE_VARIABLES_TOTAL + 1100


def test_the_token_bucket_allows_a_burst_then_refills():
    now = [0.0]
    buckets = TokenBuckets(size=3, refill=2, interval=10.0, clock=lambda: now[0])
    assert [buckets.take("E") for _ in range(4)] == [True, True, True, False]
    assert buckets.take("Other") is True  # one bucket per type
    now[0] = 9.9
    assert buckets.take("E") is False
    now[0] = 10.0
    assert [buckets.take("E") for _ in range(3)] == [True, True, False]


class FakePipeline:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.dropped: list[str] = []

    def put(self, item: Any) -> bool:
        self.events.append(item)
        return True

    def drop(self, reason: str, n: int = 1, detail: str = "") -> None:
        self.dropped.append(reason)

    def flush(self, timeout: float) -> bool:
        return True


def test_hooks_chain_and_are_restored_only_while_still_ours():
    calls: list[str] = []
    before_sys, before_thread = sys.excepthook, threading.excepthook
    try:
        sys.excepthook = lambda *a: calls.append("sys")
        threading.excepthook = lambda a: calls.append("thread")
        previous_sys, previous_thread = sys.excepthook, threading.excepthook
        pipeline = FakePipeline()
        capture = Autocapture(pipeline, OPTIONS, flush_timeout=1.0)  # type: ignore[arg-type]
        assert capture.install()
        assert not Autocapture(FakePipeline(), OPTIONS, flush_timeout=1.0).install()  # type: ignore[arg-type]
        exc = caught(lambda: 1 / 0)
        sys.excepthook(type(exc), exc, exc.__traceback__)
        thread = threading.Thread(target=lambda: 1 / 0)
        thread.start()
        thread.join()
        assert calls == ["sys", "thread"]
        mechanisms = [
            e["properties"]["$exception_list"][0]["mechanism"]["type"] for e in pipeline.events
        ]
        assert mechanisms == ["sys.excepthook", "threading.excepthook"]
        capture.uninstall()
        assert sys.excepthook is previous_sys and threading.excepthook is previous_thread
        # Something chained on top of ours: ours stays, passing through, capturing nothing.
        again = Autocapture(pipeline, OPTIONS, flush_timeout=1.0)  # type: ignore[arg-type]
        assert again.install()
        ours = sys.excepthook
        sys.excepthook = lambda *a: ours(*a)
        on_top = sys.excepthook
        again.uninstall()
        assert sys.excepthook is on_top
        sys.excepthook(type(exc), exc, exc.__traceback__)
        assert calls[-1] == "sys" and len(pipeline.events) == 2
    finally:
        sys.excepthook, threading.excepthook = before_sys, before_thread


class BrokenPipeline(FakePipeline):
    def put(self, item: Any) -> bool:
        raise RuntimeError("the queue is broken")


def test_the_previous_hook_runs_even_when_capturing_fails():
    calls: list[str] = []
    before = sys.excepthook
    try:
        sys.excepthook = lambda *a: calls.append("previous")
        capture = Autocapture(BrokenPipeline(), OPTIONS, flush_timeout=1.0)  # type: ignore[arg-type]
        assert capture.install()
        exc = caught(lambda: 1 / 0)
        sys.excepthook(type(exc), exc, exc.__traceback__)
        assert calls == ["previous"]
        capture.uninstall()
    finally:
        sys.excepthook = before


def test_the_event_has_the_user_session_and_trace_of_the_current_span():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from posthog_otel._pipeline.autocapture import uncaught_event

    tracer = TracerProvider().get_tracer("test")
    attributes = {"posthog.distinct_id": "user-7", "posthog.session_id": "s-1"}
    with tracer.start_as_current_span("job", attributes=attributes) as span:
        event = uncaught_event({"$exception_list": []})
    assert event["event"] == "$exception"
    assert event["distinct_id"] == "user-7"
    assert event["properties"]["$session_id"] == "s-1"
    assert event["properties"]["$trace_id"] == trace.format_trace_id(
        span.get_span_context().trace_id
    )
    nobody = uncaught_event({})
    assert nobody["properties"]["$process_person_profile"] is False


def test_source_context_has_a_total_and_the_innermost_frames_keep_theirs(tmp_path):
    from posthog_otel._limits import MAX_SOURCE_CONTEXT_TOTAL
    from posthog_otel._mapping.bounds import Trims

    # 60 nested functions, each on lines of 900 characters: ~600 KB of context unbounded.
    padding = "  # " + "x" * 900
    source = "".join(f"def f{i}():{padding}\n    f{i + 1}(){padding}\n" for i in range(60))
    source += "def f60():\n    raise ValueError('deep')\n"
    path = tmp_path / "deep.py"
    path.write_text(source)
    namespace: dict[str, Any] = {}
    exec(compile(source, str(path), "exec"), namespace)
    trims = Trims()
    options = FrameOptions(project_root=str(tmp_path))
    (entry,) = exception_list_from(
        caught(namespace["f0"]), "generic", handled=True, options=options, trims=trims
    )
    frames = entry["stacktrace"]["frames"]
    with_lines = [f for f in frames if "context_line" in f]
    total = sum(
        len(f["context_line"]) + sum(map(len, f["pre_context"] + f["post_context"]))
        for f in with_lines
    )
    assert total < MAX_SOURCE_CONTEXT_TOTAL + 11 * 1000  # one frame may cross the line
    assert frames[-1]["function"] == "f60" and "context_line" in frames[-1]
    assert "context_line" not in frames[1]  # the outermost ones gave theirs up
    assert trims.take()["source_context"] == 1


@pytest.mark.parametrize(
    "value", [b"x" * 10_000_000, bytearray(10_000_000), "y" * 10_000_000, list(range(100_000))]
)
def test_a_huge_local_costs_a_bounded_repr(value):
    out = code_variables({"big": value}, None, [MAX_CODE_VARIABLES_TOTAL, 10])
    assert len(out["big"]) <= 1_024 + 3
