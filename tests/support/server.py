"""What tests share besides fixtures: the devserver's key, waiting on a condition, a clock
moved by hand, and the pipeline's accounting check."""

from __future__ import annotations

import time

API_KEY = "phc_test_Secret_Key_0123456789"


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll ``predicate`` until it is true; fail the test if it never is."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class FakeClock:
    """A monotonic clock the test moves by hand (``clock.now += 5``)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def assert_accounted(stats, offered: int | None = None) -> None:
    """Every accepted event was counted once, as sent or dropped; with ``offered``, every
    event offered was also either accepted or refused at the door."""
    from posthog_otel._pipeline.stats import REFUSED

    settled = sum(n for reason, n in stats.dropped.items() if reason not in REFUSED)
    assert stats.events_sent + settled == stats.events_queued, stats
    assert stats.in_flight == 0, stats
    if offered is not None:
        refused = sum(n for reason, n in stats.dropped.items() if reason in REFUSED)
        assert stats.events_queued + refused == offered, stats
