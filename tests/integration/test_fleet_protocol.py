"""PostHog's FlagDefinitionCacheProvider protocol on our flag provider, against the
devserver: sync and async providers, the fail-safe rules (a provider that raises in
every method), the ETag carried from one leader to the next, bad cache data."""

from __future__ import annotations

import logging
import time

import pytest

from posthog_otel import (
    ConfigurationError,
    FileFlagDefinitionCache,
    PostHogClient,
    PostHogFlagProvider,
)
from tests.support.server import API_KEY, wait_until

SECRET = "phs_fleet_Secret_0123456789"
INTERVAL = 0.1
BETA = {
    "id": 7,
    "key": "beta",
    "version": 1,
    "active": True,
    "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]},
}
DEFINITIONS = {"flags": [BETA], "group_type_mapping": {}, "cohorts": {}}
METHODS = (
    "should_fetch_flag_definitions",
    "get_flag_definitions",
    "on_flag_definitions_received",
    "shutdown",
)


def definition_requests(server):
    return [r for r in server.requests.matching("/") if r.path.startswith("/flags/definitions")]


@pytest.fixture
def make(server):
    server.set_flags(DEFINITIONS)
    made = []

    def make(cache, **options) -> PostHogFlagProvider:
        client = PostHogClient(API_KEY, server.url, secret_key=SECRET, timeout=2.0)
        options.setdefault("poll_interval", INTERVAL)
        provider = PostHogFlagProvider(
            client, send_feature_flag_events=False, flag_definition_cache_provider=cache, **options
        )
        made.append((provider, client))
        return provider

    yield make
    for provider, client in made:
        provider.shutdown()
        client.close()


class Raising:
    """A cache provider that raises in every method; counts the calls."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = dict.fromkeys(METHODS, 0)

    def _fail(self, name: str):
        self.calls[name] += 1
        raise RuntimeError(f"{name} is broken")

    def should_fetch_flag_definitions(self):
        return self._fail("should_fetch_flag_definitions")

    def get_flag_definitions(self):
        return self._fail("get_flag_definitions")

    def on_flag_definitions_received(self, data):
        return self._fail("on_flag_definitions_received")

    def shutdown(self):
        return self._fail("shutdown")


class Following(Raising):
    """Never the leader; its cache raises: every poll falls back to a fetch."""

    def should_fetch_flag_definitions(self):
        self.calls["should_fetch_flag_definitions"] += 1
        return False


class AsyncRaising(Raising):
    async def should_fetch_flag_definitions(self):
        return self._fail("should_fetch_flag_definitions")

    async def get_flag_definitions(self):
        return self._fail("get_flag_definitions")

    async def on_flag_definitions_received(self, data):
        return self._fail("on_flag_definitions_received")

    async def shutdown(self):
        return self._fail("shutdown")


class AsyncMemory:
    """posthog-python's protocol with coroutines, over a dict: one leader at a time."""

    def __init__(self, shared: dict) -> None:
        self.shared, self.me = shared, object()

    async def should_fetch_flag_definitions(self):
        return self.shared.setdefault("leader", self.me) is self.me

    async def get_flag_definitions(self):
        return self.shared.get("data")

    async def on_flag_definitions_received(self, data):
        self.shared["data"] = data

    async def shutdown(self):
        if self.shared.get("leader") is self.me:
            del self.shared["leader"]


@pytest.mark.parametrize("kind", [Raising, Following, AsyncRaising])
def test_a_cache_that_raises_everywhere_never_breaks_flags(kind, make, server, caplog):
    cache = kind()
    caplog.set_level(logging.INFO, logger="posthog_otel")
    flags = make(cache)
    assert flags.load_definitions(10)
    assert flags.is_enabled("beta", "u1")
    wait_until(lambda: flags.stats().definition_polls >= 3)
    assert not flags.stats().definitions_leader  # it fetched because the cache failed
    flags.shutdown()  # the shutdown error is logged, not raised
    assert cache.calls["shutdown"] == 1
    assert cache.calls["should_fetch_flag_definitions"] >= 3
    failed = [r.getMessage() for r in caplog.records if "cache failed" in r.getMessage()]
    # Each method's run of failures logged once, however many polls.
    assert len(failed) == len(set(failed)) and any("in shutdown" in m for m in failed)
    assert all(SECRET not in m for m in caplog.messages)


def test_async_providers_share_one_poll(make, server):
    shared: dict = {}
    leader = make(AsyncMemory(shared))
    assert leader.load_definitions(10)
    follower = make(AsyncMemory(shared))
    assert follower.load_definitions(10)
    assert follower.is_enabled("beta", "u1")
    assert follower.stats().definition_polls == 0 and follower.stats().definitions_from_cache == 1
    assert leader.stats().definitions_leader
    assert "etag" in shared["data"] and isinstance(shared["data"]["flags"], list)


def test_the_next_leader_asks_with_the_etag_it_found_in_the_cache(make, server, tmp_path):
    path = tmp_path / "definitions.json"
    first = make(FileFlagDefinitionCache(path, poll_interval=INTERVAL))
    assert first.load_definitions(10)
    second = make(FileFlagDefinitionCache(path, poll_interval=INTERVAL))
    assert second.load_definitions(10) and second.stats().definition_polls == 0
    first.shutdown()  # releases its lease: the second leads from its next poll
    wait_until(lambda: second.stats().definition_polls >= 1)
    wait_until(lambda: len(definition_requests(server)) >= 2)
    _, taken_over, *_ = definition_requests(server)
    assert taken_over.headers["If-None-Match"] == server.flags.etag
    assert taken_over.status == 304


@pytest.mark.parametrize(
    "data", [["not", "a", "dict"], {"flags": "nope"}, {"no": "flags"}, {"flags": [1, {"x": {1}}]}]
)
def test_unusable_cache_data_means_fetch(data, make, server):
    class Bad(AsyncMemory):
        async def should_fetch_flag_definitions(self):
            return False

        async def get_flag_definitions(self):
            return data

    flags = make(Bad({}))
    assert flags.load_definitions(10)
    assert flags.is_enabled("beta", "u1") and flags.stats().definition_polls >= 1


def test_an_object_without_the_protocol_is_refused(server):
    client = PostHogClient(API_KEY, server.url, secret_key=SECRET)
    try:
        with pytest.raises(ConfigurationError, match="flag_definition_cache_provider"):
            PostHogFlagProvider(client, flag_definition_cache_provider=object())
    finally:
        client.close()


def test_a_follower_with_an_empty_cache_waits_for_the_leader_then_fetches(make, server):
    class Empty(AsyncMemory):
        async def should_fetch_flag_definitions(self):
            return False  # another process leads, but never stores anything

    flags = make(Empty({}), poll_interval=0.5)
    started = time.monotonic()
    assert flags.load_definitions(10)
    waited = time.monotonic() - started
    assert 0.4 <= waited < 5, waited  # about one interval for the leader, then its own
    assert flags.stats().definition_polls == 1 and not flags.stats().definitions_leader
    assert len(definition_requests(server)) == 1
