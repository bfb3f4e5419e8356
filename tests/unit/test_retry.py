"""The retry policy as a pure function of answers, waits and a clock."""

from __future__ import annotations

import email.utils
import threading
import time

import pytest

from posthog_otel._client.retry import (
    RETRY_STATUSES,
    RetryPolicy,
    retry_after_seconds,
    send_with_retries,
)
from posthog_otel._client.transport import HTTPResult, NoAnswerError
from tests.support.server import FakeClock


def test_retry_statuses_are_exactly_the_transient_ones():
    assert frozenset({408, 429, 500, 502, 503, 504}) == RETRY_STATUSES


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    policy = RetryPolicy(retries=10, delay=1.0)
    for n, base in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 30.0), (40, 30.0)]:
        waits = [policy.backoff(n) for _ in range(200)]
        assert all(base / 2 <= w <= base for w in waits)
        assert max(waits) - min(waits) > base / 10  # jittered, not fixed


def test_zero_delay_never_waits():
    assert RetryPolicy(delay=0).backoff(3) == 0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_seconds(header, expected):
    assert retry_after_seconds(header) == expected


def test_retry_after_http_date():
    now = 1_800_000_000.0
    header = email.utils.formatdate(now + 120, usegmt=True)
    assert retry_after_seconds(header, now=now) == pytest.approx(120, abs=1)
    assert retry_after_seconds(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0


class Script:
    """Answers from a list: an int is a status, an exception is raised."""

    def __init__(self, *answers, headers=None):
        self.answers = list(answers)
        self.headers = headers or {}
        self.timeouts: list[float] = []

    def __call__(self, timeout: float) -> HTTPResult:
        self.timeouts.append(timeout)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return HTTPResult(answer, self.headers, b"")


FAST = RetryPolicy(retries=3, delay=0.001)


def test_retries_transient_statuses_then_returns_success():
    script = Script(503, 502, 200)
    retried = []
    result = send_with_retries(script, FAST, timeout=1, on_retry=lambda: retried.append(1))
    assert result.status == 200
    assert len(script.timeouts) == 3
    assert len(retried) == 2


def test_does_not_retry_other_client_errors():
    for status in (400, 401, 403, 404, 413, 422):
        script = Script(status, 200)
        assert send_with_retries(script, FAST, timeout=1).status == status
        assert len(script.timeouts) == 1


def test_returns_the_last_answer_when_retries_run_out():
    script = Script(503, 503, 503, 503, 200)
    assert send_with_retries(script, FAST, timeout=1).status == 503
    assert len(script.timeouts) == 4


def test_connection_failures_are_retried_and_the_last_one_raised():
    failure = NoAnswerError("refused", retryable=True)
    script = Script(failure, failure, 200)
    assert send_with_retries(script, FAST, timeout=1).status == 200
    script = Script(failure, failure, failure, failure)
    with pytest.raises(NoAnswerError, match="refused"):
        send_with_retries(script, FAST, timeout=1)


def test_non_retryable_failure_is_raised_at_once():
    script = Script(NoAnswerError("certificate verify failed", retryable=False), 200)
    with pytest.raises(NoAnswerError):
        send_with_retries(script, FAST, timeout=1)
    assert len(script.timeouts) == 1


def test_retry_after_is_a_floor_on_the_wait():
    script = Script(429, 200, headers={"retry-after": "0.3"})
    started = time.monotonic()
    assert send_with_retries(script, FAST, timeout=1).status == 200
    assert time.monotonic() - started >= 0.3  # a lower bound: load can only lengthen it


def test_retry_after_beyond_the_cap_ends_retries():
    script = Script(429, 200, headers={"retry-after": "3600"})
    assert send_with_retries(script, FAST, timeout=1).status == 429
    assert len(script.timeouts) == 1


def test_deadline_bounds_the_request_timeout_and_stops_retries():
    clock = FakeClock(100.0)
    policy = RetryPolicy(retries=10, delay=0.0)

    def attempt(timeout: float) -> HTTPResult:
        seen.append(timeout)
        clock.now += 1.0  # each attempt takes a second
        return HTTPResult(503, {}, b"")

    seen: list[float] = []
    result = send_with_retries(attempt, policy, timeout=5.0, deadline=103.5, clock=clock)
    assert result.status == 503
    assert seen == [3.5, 2.5, 1.5, 0.5]


def test_a_set_stop_event_interrupts_the_wait():
    stop = threading.Event()
    policy = RetryPolicy(retries=5, delay=30.0)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    result = send_with_retries(Script(503, 200), policy, timeout=1, stop=stop)
    assert result.status == 503
    assert time.monotonic() - started < 10  # a hang guard: the backoff alone is 15-30 s
