"""Which failures are retried, how long to wait, and when to give up.

Retried: no answer at all (connection refused or reset, timeouts) and HTTP 408,
429, 500, 502, 503, 504. Never other 4xx. Waits grow exponentially from
``delay`` with jitter, capped at ``max_delay``; a ``Retry-After`` header is a
floor on the wait, and one longer than the cap ends the retries (we never knock
again sooner than the server asked). A closed client interrupts the wait.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from posthog_otel._client.transport import HTTPResult
from posthog_otel.errors import NoAnswerError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_DELAY = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``retries`` retries, waiting ``delay`` x 2^n (jittered, capped) between them."""

    retries: int = 3
    delay: float = 1.0
    max_delay: float = MAX_DELAY

    def backoff(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (0-based): uniform in [base/2, base]."""
        base = min(self.max_delay, self.delay * (2.0 ** min(retry_number, 32)))
        return random.uniform(base / 2, base)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse ``Retry-After`` as delta-seconds or an HTTP date; ``None`` if absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def send_with_retries(
    attempt: Callable[[float], HTTPResult],
    policy: RetryPolicy,
    *,
    timeout: float,
    deadline: float | None = None,
    stop: threading.Event | None = None,
    on_retry: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> HTTPResult:
    """Call ``attempt(timeout)`` until it succeeds, fails for good, or time runs out.

    Returns the last answer (which may be a retryable status when retries ran
    out); raises the last ``NoAnswerError`` when no answer ever came.
    ``deadline`` is on ``clock``'s scale and bounds waits and request timeouts.
    """
    retry_number = 0
    while True:
        per_try = timeout if deadline is None else min(timeout, max(deadline - clock(), 0.001))
        result: HTTPResult | None = None
        failure: NoAnswerError | None = None
        try:
            result = attempt(per_try)
        except NoAnswerError as exc:
            if not exc.retryable:
                raise
            failure = exc
        if result is not None and result.status not in RETRY_STATUSES:
            return result
        wait = policy.backoff(retry_number)
        if result is not None:
            floor = retry_after_seconds(result.headers.get("retry-after"))
            if floor is not None:
                if floor > policy.max_delay:
                    return result
                wait = max(wait, floor)
        out_of_time = deadline is not None and clock() + wait >= deadline
        if retry_number >= policy.retries or out_of_time or (stop is not None and stop.wait(wait)):
            if result is not None:
                return result
            assert failure is not None
            raise failure
        if stop is None:
            time.sleep(wait)
        retry_number += 1
        if on_retry is not None:
            on_retry()
