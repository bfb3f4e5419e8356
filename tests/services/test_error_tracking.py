"""Exception autocapture in real processes: a script dies of an uncaught exception (at
start-up, in a thread, in an asyncio task, with secrets in its locals, in a crash loop)
and the devserver receives each ``$exception`` once, with the hook's mechanism, frames
from the exception object, and the hooks that were there before still called."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

import pytest
import requests

from tests.support.services import APPS, BIN, service_env

MASK = "$$_posthog_redacted_based_on_masking_rules_$$"


def crash(server: Any, *args: str, autocapture: str = "true") -> subprocess.CompletedProcess[str]:
    env = service_env(server.url, "crashing", POSTHOG_EXCEPTION_AUTOCAPTURE=autocapture)
    return subprocess.run(
        [sys.executable, str(APPS / "crashing.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def in_app(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in entry["stacktrace"]["frames"] if f["in_app"]]


def test_an_uncaught_exception_at_start_up_arrives_once_with_its_chain(server):
    result = crash(server, "startup")
    assert result.returncode == 1
    assert "previous sys hook" in result.stdout  # chained, not replaced
    # Delivered by the hook before the process ended (the flush interval is a minute).
    (event,) = server.events("$exception")
    props = event["properties"]
    assert props["$exception_level"] == "fatal"
    assert props["$process_person_profile"] is False
    outer, cause = props["$exception_list"]
    assert outer["type"] == "RuntimeError"
    assert outer["mechanism"] == {
        "exception_id": 0,
        "synthetic": False,
        "type": "sys.excepthook",
        "handled": False,
    }
    assert cause["type"] == "ValueError"
    assert cause["mechanism"]["parent_id"] == 0
    assert cause["mechanism"]["source"] == "cause"
    frame = in_app(cause)[-1]
    assert frame["function"] == "parse_config"
    assert frame["module"] == "__main__"
    assert frame["filename"] == "tests/support/apps/crashing.py"
    assert frame["context_line"] == "    return int(text)  # the innermost frame: a ValueError"
    assert len(frame["pre_context"]) == 5 and len(frame["post_context"]) == 5
    assert "code_variables" not in frame  # off unless asked for


def test_a_thread_s_uncaught_exception_carries_the_thread_s_user(server):
    result = crash(server, "thread")
    assert result.returncode == 0, result.stderr
    assert "previous thread hook" in result.stdout
    (event,) = server.events("$exception")
    assert event["distinct_id"] == "thread-user"  # the failing thread's baggage
    (entry,) = event["properties"]["$exception_list"]
    assert entry["type"] == "LookupError"
    assert entry["mechanism"]["type"] == "threading.excepthook"
    assert entry["mechanism"]["handled"] is False
    frames = entry["stacktrace"]["frames"]
    assert [f["in_app"] for f in frames] == [False, False, True]  # threading.py is not the app
    assert frames[-1]["function"] == "worker"


def test_an_asyncio_task_s_exception_arrives_through_sys_excepthook(server):
    result = crash(server, "asyncio")
    assert result.returncode == 1
    assert "previous sys hook" in result.stdout
    (event,) = server.events("$exception")
    (entry,) = event["properties"]["$exception_list"]
    assert entry["type"] == "ConnectionError"
    assert entry["mechanism"]["type"] == "sys.excepthook"
    assert in_app(entry)[-1]["function"] == "failing_task"


def test_a_crash_loop_is_rate_limited_and_counted(server):
    result = crash(server, "loop", "60")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("previous thread hook") == 60  # every one still reported
    assert "dropped: {'rate_limited': 10}" in result.stdout
    assert len({e["uuid"] for e in server.events("$exception")}) == 50


def test_code_variables_are_sent_masked(server):
    result = crash(server, "variables")
    assert result.returncode == 1
    (event,) = server.events("$exception")
    (entry,) = event["properties"]["$exception_list"]
    frame = in_app(entry)[-1]
    assert frame["function"] == "with_secrets"
    variables = frame["code_variables"]
    assert variables["password"] == MASK  # a credential's name
    assert variables["count"] == "3"
    assert "s3cret" not in variables["url"] and "db.internal/app" in variables["url"]
    assert "phc_live" not in variables["settings"] and "'eu'" in variables["settings"]
    assert "code_variables" not in in_app(entry)[0]  # the module's globals are not sent


@pytest.mark.parametrize("autocapture", ["false", ""])
def test_nothing_is_captured_when_autocapture_is_off(server, autocapture):
    result = crash(server, "thread", autocapture=autocapture)
    assert result.returncode == 0, result.stderr
    assert "previous thread hook" in result.stdout
    assert server.events("$exception") == []


def test_under_opentelemetry_instrument_the_variable_alone_turns_it_on(server):
    # The exporter OTEL_TRACES_EXPORTER=posthog builds attaches a processor that reads
    # POSTHOG_EXCEPTION_AUTOCAPTURE: no code in the app, and Python's own hook still prints.
    env = service_env(
        server.url,
        "crashing",
        POSTHOG_EXCEPTION_AUTOCAPTURE="true",
        OTEL_TRACES_EXPORTER="posthog",
        POSTHOG_SIGTERM_TIMEOUT="10",
    )
    argv = [str(BIN / "opentelemetry-instrument"), sys.executable, str(APPS / "crashing.py")]
    result = subprocess.run(
        [*argv, "instrumented"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "RuntimeError: start-up failed" in result.stderr  # the default hook ran
    (event,) = server.events("$exception")
    types = [e["type"] for e in event["properties"]["$exception_list"]]
    assert types == ["RuntimeError", "ValueError"]


def test_a_flask_handlers_error_arrives_with_its_user_under_opentelemetry_instrument(
    server, services
):
    """Flask catches the error and answers 500, so no hook sees it: its instrumentation
    records it on the server span, and the variable alone (no code) sends it, once, with
    the user the handler named and the request's trace."""
    flask = services.flask(env={"POSTHOG_CAPTURE_EXCEPTIONS": "true"})
    response = requests.get(f"{flask.url}/fail?user=u-err", timeout=30)
    assert response.status_code == 500

    (event,) = server.wait_for_events(1, event="$exception", timeout=30)
    assert event["distinct_id"] == "u-err"
    (exception,) = event["properties"]["$exception_list"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"] == "payment service refused the card"
    frames = exception["stacktrace"]["frames"]
    assert any(f["function"] == "fail" and f["in_app"] for f in frames), frames
    assert len(event["properties"]["$trace_id"]) == 32
    flask.stop(signal.SIGTERM)
    assert len(server.events("$exception")) == 1


def test_without_the_variable_a_flask_handlers_error_sends_nothing(server, services):
    flask = services.flask()
    assert requests.get(f"{flask.url}/fail?user=u-err", timeout=30).status_code == 500
    assert requests.get(f"{flask.url}/items/1", timeout=30).status_code == 200
    server.wait_for_events(1, event="item_viewed", timeout=30)
    flask.stop(signal.SIGTERM)
    assert server.events("$exception") == []
