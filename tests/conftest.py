"""Shared fixtures: one devserver per session on 127.0.0.1, reset before every test."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from posthog_otel import PostHogClient
from posthog_otel.devserver import DevServer

if TYPE_CHECKING:
    from services import Services  # imported lazily: it imports this module

API_KEY = "phc_test_Secret_Key_0123456789"

# The suite's own process keeps its SIGTERM handler: processors made here must not take
# charge of it. SIGTERM is tested in subprocesses, whose environment the tests set.
os.environ.setdefault("POSTHOG_FLUSH_ON_SIGTERM", "false")


@pytest.fixture(scope="session")
def devserver() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


@pytest.fixture
def server(devserver: DevServer) -> Iterator[DevServer]:
    """The shared devserver, emptied, with no flags, faults or key restriction."""
    devserver.clear()
    devserver.set_flags(None)
    devserver.api_key = None
    devserver.secret_key = None
    yield devserver
    devserver.faults.clear()


@pytest.fixture
def client(server: DevServer) -> Iterator[PostHogClient]:
    """A client with short waits, so retry tests stay fast."""
    with PostHogClient(API_KEY, server.url, timeout=2.0, retry_delay=0.01) as c:
        yield c


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record from every logger, at every level."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def unused_port() -> int:
    """A loopback port with nothing listening on it."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_pipeline(server: DevServer):
    """Build TracerProvider + PostHogSpanProcessor pairs that are shut down after the test."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from posthog_otel import PostHogSpanProcessor

    made = []

    def make(host: str | None = None, *, sampler=None, client_options=None, **options):
        client = PostHogClient(
            API_KEY,
            host or server.url,
            **{"timeout": 2.0, "retry_delay": 0.01, **(client_options or {})},
        )
        processor = PostHogSpanProcessor(client, **options)
        kwargs = {"resource": Resource.create({"service.name": "shop"})}
        if sampler is not None:
            kwargs["sampler"] = sampler
        provider = TracerProvider(**kwargs)
        provider.add_span_processor(processor)
        made.append((provider, client, processor))
        return provider.get_tracer("tests"), processor

    yield make
    from posthog_otel._pipeline.processor import pipeline_of

    for provider, client, processor in made:
        provider.shutdown()
        # A send still in flight must not land in the next test's store.
        wait_until(lambda p=processor: pipeline_of(p).worker.state == "stopped", 30)
        client.close()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll ``predicate`` until it is true; fail the test if it never is."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture(params=["orjson", "stdlib json"])
def json_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the orjson extra, and again with the standard library alone."""
    import posthog_otel._json as encoding

    if request.param == "stdlib json":
        monkeypatch.setattr(encoding, "_orjson", None)
    elif encoding._orjson is None:
        pytest.skip("orjson is not installed")
    return str(request.param)


@pytest.fixture(params=["isal", "zlib"])
def deflate_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the isal extra's deflate, and again with the standard library's."""
    import zlib

    import posthog_otel._client.compress as compress

    if request.param == "zlib":
        monkeypatch.setattr(compress, "_deflate", zlib)
    elif compress._deflate is zlib:
        pytest.skip("isal is not installed")
    return str(request.param)


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


@pytest.fixture
def services(server: DevServer) -> Iterator[Services]:
    """Start the apps in tests/apps as real subprocesses exporting to the devserver
    (``services.flask()``, ``services.fastapi()``; see tests/services.py); whatever is
    still running at the end of the test is killed."""
    from services import Services

    started = Services(server.url)
    yield started
    started.close()
