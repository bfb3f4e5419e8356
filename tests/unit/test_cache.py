"""The flag cache on its own: TTL, LRU, single flight, stale grace and the breaker."""

from __future__ import annotations

import logging
import threading

import pytest

from posthog_otel._flagdata import FeatureFlag, FlagsResponse
from posthog_otel._flags.remote import FlagCache
from posthog_otel.errors import APIError, TransportError
from tests.support.server import FakeClock


def answer(value: bool = True, errors: bool = False) -> FlagsResponse:
    return FlagsResponse({"f": FeatureFlag("f", value)}, errors_while_computing_flags=errors)


class Fetcher:
    """Counts calls; answers from a script of responses and exceptions."""

    def __init__(self, *script) -> None:
        self.script = list(script)
        self.calls = 0

    def __call__(self) -> FlagsResponse:
        self.calls += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def cache(clock, **kw) -> FlagCache:
    options = {"ttl": 30.0, "size": 100, "grace": 60.0, "clock": clock, "wait_timeout": 5.0, **kw}
    return FlagCache(**options)


def test_fresh_then_cached_then_refetched_after_ttl(clock):
    c, fetch = cache(clock), Fetcher(answer(True), answer(False))
    assert c.lookup("u", fetch).source == "fresh"
    clock.now += 29.9
    hit = c.lookup("u", fetch)
    assert (hit.source, fetch.calls) == ("cached", 1)
    clock.now += 0.2
    again = c.lookup("u", fetch)
    assert (again.source, fetch.calls) == ("fresh", 2)
    assert again.entry.answer.flags["f"].enabled is False


def test_least_recently_used_is_evicted(clock):
    c = cache(clock, size=2)
    fetch = Fetcher(answer())
    for key in ("a", "b", "a", "c"):
        c.lookup(key, fetch)
    assert fetch.calls == 3
    c.lookup("a", fetch)
    assert fetch.calls == 3  # a was used recently and kept
    c.lookup("b", fetch)
    assert fetch.calls == 4  # b was evicted


def test_concurrent_identical_lookups_share_one_fetch(clock):
    c = cache(clock)
    release = threading.Event()
    calls = []

    def slow_fetch():
        calls.append(1)
        release.wait(5)
        return answer()

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(c.lookup("u", slow_fetch)))
        for _ in range(20)
    ]
    for t in threads:
        t.start()
    threading.Timer(0.2, release.set).start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 20
    assert {r.entry.answer.flags["f"].enabled for r in results} == {True}


def test_failure_serves_stale_within_grace_then_nothing(clock):
    c = cache(clock)
    fetch = Fetcher(answer(), TransportError("down"))
    c.lookup("u", fetch)
    clock.now += 31
    stale = c.lookup("u", fetch)
    assert stale.source == "stale"
    assert "down" in stale.error
    assert stale.entry.answer.flags["f"].enabled is True
    clock.now += 60
    gone = c.lookup("u", fetch)
    assert (gone.source, gone.entry) == ("unavailable", None)


def test_the_breaker_stops_fetching_and_backs_off(clock, caplog):
    caplog.set_level(logging.INFO, logger="posthog_otel")
    c = cache(clock)
    fetch = Fetcher(TransportError("down"))
    assert c.lookup("u", fetch).source == "unavailable"
    for _ in range(50):
        c.lookup("u", fetch)
        c.lookup("other-user", fetch)
    assert fetch.calls == 1  # blocked for 1 s
    clock.now += 1.01
    c.lookup("u", fetch)
    assert fetch.calls == 2  # tried again, failed: now blocked for 2 s
    clock.now += 1.5
    c.lookup("u", fetch)
    assert fetch.calls == 2
    warnings = [r for r in caplog.records if "feature flags unavailable" in r.getMessage()]
    assert len(warnings) == 1
    fetch.script = [answer()]
    clock.now += 1
    assert c.lookup("u", fetch).source == "fresh"
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_rate_limit_retry_after_sets_the_breaker(clock):
    c = cache(clock)
    fetch = Fetcher(APIError(429, None, headers={"retry-after": "20"}), answer())
    c.lookup("u", fetch)
    clock.now += 19
    c.lookup("u", fetch)
    assert fetch.calls == 1
    clock.now += 1.1
    assert c.lookup("u", fetch).source == "fresh"


def test_a_day_long_retry_after_is_capped_at_five_minutes(clock):
    c = cache(clock)
    fetch = Fetcher(APIError(429, None, headers={"retry-after": "86400"}), answer())
    c.lookup("u", fetch)
    clock.now += 299
    assert c.lookup("u", fetch).source == "unavailable"
    assert fetch.calls == 1
    clock.now += 1.1
    assert c.lookup("u", fetch).source == "fresh"


@pytest.mark.parametrize("error", [RecursionError("too deep"), KeyError("flags"), TypeError()])
def test_any_exception_from_a_fetch_is_a_failed_fetch(clock, error, caplog):
    c = cache(clock)
    fetch = Fetcher(answer(True), error, answer(False))
    c.lookup("u", fetch)
    clock.now += 31
    stale = c.lookup("u", fetch)  # raises nothing into the caller
    assert stale.source == "stale" and stale.entry.answer.flags["f"].enabled is True
    assert type(error).__name__ in caplog.text
    c.lookup("u", fetch)
    assert fetch.calls == 2  # the breaker holds the next fetch back
    clock.now += 1.1
    assert c.lookup("u", fetch).source == "fresh"


def test_a_partial_answer_keeps_the_previous_one(clock):
    c = cache(clock)
    fetch = Fetcher(answer(True), FlagsResponse({}, errors_while_computing_flags=True))
    c.lookup("u", fetch)
    clock.now += 31
    partial = c.lookup("u", fetch)
    assert partial.entry.answer.flags == {}
    assert partial.entry.previous.answer.flags["f"].enabled is True


def test_settings_are_checked():
    with pytest.raises(ValueError, match="cache"):
        FlagCache(ttl=-1, size=1, grace=0, clock=FakeClock(), wait_timeout=1)
