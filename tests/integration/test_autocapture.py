"""The autocapture rate limit, set by the application: its own bucket, or none at all."""

from __future__ import annotations

import sys

import pytest

from posthog_otel import ConfigurationError, PostHogSpanProcessor


class FatalError(Exception):
    pass


def crash_five_times(previous: list[str]) -> None:
    """Five uncaught exceptions of one type, through whatever ``sys.excepthook`` is now."""
    for n in range(5):
        try:
            raise FatalError(f"crash {n}")
        except FatalError:
            sys.excepthook(*sys.exc_info())
    assert previous == [f"crash {n}" for n in range(5)]  # the hook before ours saw every one


@pytest.fixture
def previous_hook(monkeypatch):
    """The hook that was there before ours: records what it was given."""
    seen: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda _type, value, _tb: seen.append(str(value)))
    return seen


@pytest.mark.parametrize(
    ("limit", "sent", "limited"), [((2, 1, 60.0), 2, 3), (None, 5, 0), ((5, 1, 60.0), 5, 0)]
)
def test_the_rate_limit_is_the_applications_to_set(
    server, make_pipeline, previous_hook, limit, sent, limited
):
    _, processor = make_pipeline(exception_autocapture=True, exception_rate_limit=limit)
    crash_five_times(previous_hook)
    processor.force_flush()
    assert len(server.events("$exception")) == sent
    assert processor.stats().dropped.get("rate_limited", 0) == limited


@pytest.mark.parametrize(
    "limit", [(0, 1, 10.0), (50, 10), (50, 10, 0), (50, 10, float("inf")), (True, 1, 1.0), "50"]
)
def test_a_bad_rate_limit_is_a_configuration_error(limit):
    with pytest.raises(ConfigurationError, match="exception_rate_limit"):
        PostHogSpanProcessor(api_key="phc_x", host="http://127.0.0.1:9", exception_rate_limit=limit)
