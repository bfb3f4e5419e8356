"""Shared fixtures: one devserver per session on 127.0.0.1, reset before every test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from posthog_otel import PostHogClient
from posthog_otel.devserver import DevServer

API_KEY = "phc_test_Secret_Key_0123456789"


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
