"""Shared fixtures: one devserver per session on 127.0.0.1, reset before every test."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from posthog_otel import PostHogClient
from posthog_otel.devserver import DevServer
from tests.support.server import API_KEY, wait_until

if TYPE_CHECKING:
    from tests.support.services import Services

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
    from posthog_otel._pipeline.spans import pipeline_of

    for provider, client, processor in made:
        provider.shutdown()
        # A send still in flight must not land in the next test's store.
        wait_until(lambda p=processor: pipeline_of(p).worker.state == "stopped", 30)
        client.close()


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

    import posthog_otel._client.batch as compress

    if request.param == "zlib":
        monkeypatch.setattr(compress, "_deflate", zlib)
    elif compress._deflate is zlib:
        pytest.skip("isal is not installed")
    return str(request.param)


@pytest.fixture
def services(server: DevServer) -> Iterator[Services]:
    """Start the apps in tests/support/apps as real subprocesses exporting to the devserver
    (``services.flask()``, ``services.fastapi()``; see tests/support/services.py); whatever is
    still running at the end of the test is killed."""
    from tests.support.services import Services

    started = Services(server.url)
    yield started
    started.close()


KINDS = ("unit", "integration", "services", "conformance")


def pytest_configure(config: pytest.Config) -> None:
    for kind in KINDS:
        config.addinivalue_line("markers", f"{kind}: a test in tests/{kind} (select with -m)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its kind, its folder's name: ``pytest -m unit`` runs those."""
    for item in items:
        kind = item.path.parent.name
        if kind in KINDS:
            item.add_marker(kind)
