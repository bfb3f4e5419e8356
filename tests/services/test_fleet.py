"""A fleet of real processes sharing flag definitions through Redis or a file, against
the devserver and Debian's redis-server: one poll per interval for the fleet, a leader
killed with SIGKILL and replaced, Redis stopped mid-run, and a mixed fleet with
posthog-python on the same cache."""

from __future__ import annotations

import json
import signal
import sys
import time

import posthog
import pytest

from posthog_otel import (
    FileFlagDefinitionCache,
    PostHogClient,
    PostHogFlagProvider,
    RedisFlagDefinitionCache,
)
from posthog_otel._limits import FLEET_CHECK_SECONDS
from tests.support.server import API_KEY, wait_until
from tests.support.services import APPS, Service, service_env, start_redis

SECRET = "phs_fleet_Secret_0123456789"
INTERVAL = 0.5
BETA = {
    "id": 7,
    "key": "beta",
    "version": 1,
    "active": True,
    "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]},
}
DEFINITIONS = {"flags": [BETA], "group_type_mapping": {}, "cohorts": {}}
BETA_OFF = {**DEFINITIONS, "flags": [{**BETA, "active": False, "version": 2}]}


def definition_requests(server) -> int:
    return sum(
        1
        for r in server.requests.matching("/")
        if r.path.startswith(("/flags/definitions", "/api/feature_flag/local_evaluation"))
    )


class Fleet:
    """``fleet_worker.py`` processes sharing one cache; their last printed states."""

    def __init__(self, server, where: str) -> None:
        self.server, self.where, self.workers = server, where, []

    def start(self, count: int) -> None:
        env = service_env(self.server.url, "fleet", POSTHOG_SECRET_KEY=SECRET)
        argv = [sys.executable, str(APPS / "fleet_worker.py"), self.where, str(INTERVAL)]
        started = [Service(argv, env, 0) for _ in range(count)]
        self.workers += started
        for worker in started:
            worker.wait_printed("ready")

    def states(self) -> dict[int, dict]:
        found = {}
        for worker in self.alive():
            lines = [x for x in worker.output().splitlines() if x.startswith("state ")]
            if lines:
                found[worker.pid] = json.loads(lines[-1][6:])
        return found

    def alive(self) -> list[Service]:
        return [w for w in self.workers if w.process.poll() is None]

    def all_see(self, beta: bool) -> bool:
        states = self.states()
        return len(states) == len(self.alive()) and all(s["beta"] is beta for s in states.values())

    def polls(self) -> int:
        return sum(s["polls"] for s in self.states().values())

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()


@pytest.fixture
def redis():
    service = start_redis()
    yield service
    service.kill()


@pytest.fixture
def fleet_of(server):
    server.set_flags(DEFINITIONS)
    made = []

    def make(where: str) -> Fleet:
        made.append(Fleet(server, where))
        return made[-1]

    yield make
    for fleet in made:
        fleet.close()


def redis_url(redis) -> str:
    return f"redis://127.0.0.1:{redis.port}/0"


def measure(fleet: Fleet, server, intervals: int) -> tuple[int, int]:
    """Definition requests at the devserver over ``intervals`` poll intervals, and how
    many processes made one (each a leader at some point)."""
    before, start_polls = (
        definition_requests(server),
        {p: s["polls"] for p, s in fleet.states().items()},
    )
    deadline = time.monotonic() + intervals * INTERVAL
    wait_until(lambda: time.monotonic() >= deadline, timeout=intervals * INTERVAL + 5)
    polled = {p for p, s in fleet.states().items() if s["polls"] > start_polls.get(p, 0)}
    return definition_requests(server) - before, len(polled)


@pytest.mark.parametrize("store", ["redis", "file"])
def test_a_fleet_polls_once_per_interval_and_every_process_sees_a_change(
    store, redis, fleet_of, server, tmp_path
):
    where = redis_url(redis) if store == "redis" else str(tmp_path / "definitions.json")
    fleet = fleet_of(where)
    fleet.start(6)
    # Started together, they made one request between them: the others waited for it.
    assert definition_requests(server) <= 2
    assert sum(s["from_cache"] for s in fleet.states().values()) >= 5
    requests, leaders = measure(fleet, server, intervals=8)
    # One per interval for the fleet (jitter: intervals as short as 0.9), plus one per
    # leader change; six processes polling alone would have made about 48.
    assert requests <= 8 / 0.9 + 1 + (leaders - 1), (requests, leaders)
    assert requests < 20
    changed_at = time.monotonic()
    server.set_flags(BETA_OFF)
    wait_until(lambda: fleet.all_see(False), timeout=10)
    took = time.monotonic() - changed_at
    print(f"all saw the change in {took:.2f} s; {requests} requests, {leaders} leaders")
    assert took < 3 * INTERVAL + 5, took


def test_a_leader_killed_is_replaced_and_the_fleet_follows_changes(redis, fleet_of, server):
    fleet = fleet_of(redis_url(redis))
    fleet.start(6)
    wait_until(lambda: any(s["leader"] for s in fleet.states().values()))
    (leader,) = [w for w in fleet.alive() if fleet.states()[w.pid]["leader"]][:1]
    leader_polls = fleet.states()[leader.pid]["polls"]
    assert leader.stop(signal.SIGKILL).returncode == -signal.SIGKILL
    others = {p: s["polls"] for p, s in fleet.states().items()}
    killed_at = time.monotonic()
    wait_until(
        lambda: any(s["leader"] and s["polls"] > others[p] for p, s in fleet.states().items()),
        timeout=10,
    )
    took_over = time.monotonic() - killed_at
    print(f"a new leader polled {took_over:.2f} s after the kill")
    assert took_over < 2 * INTERVAL * 1.15 + 2, took_over  # the lease, then a poll
    assert leader_polls >= 1
    server.set_flags(BETA_OFF)
    wait_until(lambda: fleet.all_see(False), timeout=10)


def test_redis_stopped_each_process_polls_for_itself_and_keeps_serving(redis, fleet_of, server):
    fleet = fleet_of(redis_url(redis))
    fleet.start(4)
    redis.stop(signal.SIGKILL)
    before = {p: s["polls"] for p, s in fleet.states().items()}
    wait_until(
        lambda: all(s["polls"] >= before[p] + 2 for p, s in fleet.states().items()), timeout=15
    )
    assert fleet.all_see(True)  # still serving what they had
    server.set_flags(BETA_OFF)
    wait_until(lambda: fleet.all_see(False), timeout=10)
    for worker in fleet.alive():
        stopped = worker.stop()
        assert stopped.returncode == 0, stopped.output
        assert stopped.output.count("flag definition cache failed in should_fetch") == 1
        assert "stopped" in stopped.output


@pytest.fixture
def ours(server):
    server.set_flags(DEFINITIONS)
    made = []

    def make(cache) -> PostHogFlagProvider:
        client = PostHogClient(API_KEY, server.url, secret_key=SECRET, timeout=2.0)
        provider = PostHogFlagProvider(
            client,
            poll_interval=INTERVAL,
            send_feature_flag_events=False,
            flag_definition_cache_provider=cache,
        )
        made.append((provider, client))
        return provider

    yield make
    for provider, client in made:
        provider.shutdown()
        client.close()


@pytest.fixture
def theirs(server):
    made = []

    def make(cache) -> posthog.Posthog:
        client = posthog.Posthog(
            API_KEY,
            host=server.url,
            secret_key=SECRET,
            poll_interval=INTERVAL,
            sync_mode=True,
            flag_definition_cache_provider=cache,
        )
        made.append(client)
        client.load_feature_flags()  # the first load, then its poller
        return client

    yield make
    for client in made:
        client.shutdown()


def sdk_beta(sdk: posthog.Posthog) -> bool:
    return bool(sdk.evaluate_flags("u1", only_evaluate_locally=True).is_enabled("beta"))


@pytest.mark.parametrize("first", ["posthog-python", "posthog-otel"])
@pytest.mark.parametrize("store", ["redis", "file"])
def test_posthog_python_and_ours_share_one_cache(
    first, store, redis, server, ours, theirs, tmp_path
):
    def cache():
        if store == "redis":
            return RedisFlagDefinitionCache(redis_url(redis), poll_interval=INTERVAL)
        return FileFlagDefinitionCache(tmp_path / "definitions.json", poll_interval=INTERVAL)

    if first == "posthog-python":
        sdk = theirs(cache())
        wait_until(lambda: bool(sdk.feature_flags))
        flags = ours(cache())
        assert flags.load_definitions(10)
        assert flags.stats().definitions_from_cache >= 1 and flags.stats().definition_polls == 0
    else:
        flags = ours(cache())
        assert flags.load_definitions(10) and flags.stats().definitions_leader
        sdk = theirs(cache())
        wait_until(lambda: bool(sdk.feature_flags))
    assert definition_requests(server) == 1  # the leader's
    assert flags.is_enabled("beta", "u1")
    assert sdk_beta(sdk)
    server.set_flags(BETA_OFF)
    wait_until(lambda: not flags.is_enabled("beta", "u1"), timeout=10)
    wait_until(lambda: not sdk_beta(sdk), timeout=10)


def test_the_redis_lease_is_released_only_by_its_owner_and_lapses(redis):
    url = redis_url(redis)
    a = RedisFlagDefinitionCache(url, key_prefix="lease", poll_interval=60)
    b = RedisFlagDefinitionCache(url, key_prefix="lease", poll_interval=60)
    assert a.should_fetch_flag_definitions() and a.should_fetch_flag_definitions()
    assert not b.should_fetch_flag_definitions()
    b.shutdown()  # compare-and-delete: not b's
    assert not b.should_fetch_flag_definitions()
    a.shutdown()
    assert b.should_fetch_flag_definitions()
    short = RedisFlagDefinitionCache(url, key_prefix="short", poll_interval=0.05)
    other = RedisFlagDefinitionCache(url, key_prefix="short", poll_interval=0.05)
    assert short.should_fetch_flag_definitions()
    wait_until(other.should_fetch_flag_definitions, timeout=5)  # PX: a crashed owner's lapses
    assert short.get_flag_definitions() is None
    short.on_flag_definitions_received(
        {"flags": [], "group_type_mapping": {}, "cohorts": {}, "etag": "e"}
    )
    assert other.get_flag_definitions()["etag"] == "e"


@pytest.mark.parametrize("store", ["redis", "file"])
def test_followers_of_our_caches_see_a_change_within_a_second_of_the_leader(
    store, redis, server, tmp_path
):
    """Followers check the cache's version every FLEET_CHECK_SECONDS between their polls,
    so a change reaches the fleet within one interval and about a second (reading the
    whole cache once per interval, a follower could lag the leader by a whole interval)."""
    interval = 4.0
    server.set_flags(DEFINITIONS)
    where = redis_url(redis) if store == "redis" else str(tmp_path / "definitions.json")
    fleet = Fleet(server, where)
    try:
        env = service_env(server.url, "fleet", POSTHOG_SECRET_KEY=SECRET)
        argv = [sys.executable, str(APPS / "fleet_worker.py"), where, str(interval)]
        fleet.workers = [Service(argv, env, 0) for _ in range(4)]
        for worker in fleet.workers:
            worker.wait_printed("ready")
        requests_before = definition_requests(server)
        server.set_flags(BETA_OFF)
        seen: dict[int, float] = {}

        def note_who_sees_it() -> bool:
            for pid, state in fleet.states().items():
                if state["beta"] is False:
                    seen.setdefault(pid, time.monotonic())
            return len(seen) == 4

        wait_until(note_who_sees_it, timeout=3 * interval, interval=0.02)
        spread = max(seen.values()) - min(seen.values())
        print(f"{store}: the last process saw the change {spread:.2f} s after the first")
        assert spread < FLEET_CHECK_SECONDS + 0.6, seen
        assert definition_requests(server) - requests_before <= 2  # still the leader's alone
    finally:
        fleet.close()
