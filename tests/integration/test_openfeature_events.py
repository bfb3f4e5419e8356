"""The OpenFeature provider's lifecycle: initialize() and the provider events, as the
OpenFeature SDK reports them, driven by a devserver that fails, refuses and changes."""

from __future__ import annotations

import contextlib
import copy
import threading

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.provider import ProviderStatus

from posthog_otel import PostHogClient, PostHogFlagProvider
from posthog_otel.openfeature import PostHogProvider
from tests.support.server import API_KEY, wait_until

SECRET = "phs_events_0123456789"
DEFINITION_PATHS = ("/flags/definitions", "/api/feature_flag/local_evaluation")


IDS = {"beta": 1, "gamma": 2, "delta": 3, "omega": 4}


def flag(key, rollout=100):
    return {
        "id": IDS[key],
        "key": key,
        "version": 1,
        "active": True,
        "filters": {"groups": [{"properties": [], "rollout_percentage": rollout}]},
    }


DEFINITIONS = {"flags": [flag("beta"), flag("gamma")], "group_type_mapping": {}, "cohorts": {}}


class Events:
    """Every event our provider sends, as the OpenFeature API hands them to its handlers
    (on its own threads; events here come far enough apart to arrive in order)."""

    def __init__(self) -> None:
        self.seen: list[tuple[ProviderEvent, EventDetails]] = []
        self._lock = threading.Lock()
        for kind in ProviderEvent:
            api.add_handler(kind, lambda details, kind=kind: self._note(kind, details))

    def _note(self, kind: ProviderEvent, details: EventDetails) -> None:
        if details.provider_name != "posthog":  # the default provider, READY on arrival
            return
        with self._lock:
            self.seen.append((kind, details))

    def kinds(self) -> list[ProviderEvent]:
        with self._lock:
            return [kind for kind, _ in self.seen]

    def settle_on(self, expected: list[ProviderEvent]) -> None:
        """Assert the events delivered are ``expected``, giving OpenFeature's handler
        threads time to deliver them (a hang guard, not a wait for something to change)."""
        with contextlib.suppress(AssertionError):
            wait_until(lambda: self.kinds() == expected, timeout=10)
        assert self.kinds() == expected

    def last(self, kind: ProviderEvent) -> EventDetails:
        """The latest event of ``kind``, waiting for it: the provider's status changes
        before OpenFeature's handler threads deliver the event."""

        def delivered() -> list[EventDetails]:
            with self._lock:
                return [d for k, d in self.seen if k == kind]

        wait_until(lambda: delivered(), timeout=10)
        return delivered()[-1]


@pytest.fixture
def events():
    seen = Events()
    yield seen
    api.clear_providers()  # and every handler


@pytest.fixture
def make(server):
    made = []

    def make(*, local=True, api_key=API_KEY, poll_interval=30.0, **options):
        client = PostHogClient(
            api_key,
            server.url,
            timeout=2.0,
            retry_delay=0.01,
            secret_key=SECRET if local else None,
        )
        flags = PostHogFlagProvider(
            client, send_feature_flag_events=False, poll_interval=poll_interval
        )
        made.append((client, flags))
        return PostHogProvider(flags, **{"init_timeout": 5.0, **options})

    server.set_flags(DEFINITIONS)
    yield make
    api.clear_providers()
    for client, flags in made:
        flags.shutdown(timeout=2.0)
        client.close()


def status():
    return api.get_client().get_provider_status()


@pytest.mark.parametrize("local", [True, False])
def test_ready_once_posthog_answers(make, events, server, local):
    api.set_provider_and_wait(make(local=local))
    assert status() == ProviderStatus.READY
    events.settle_on([ProviderEvent.PROVIDER_READY])
    paths = DEFINITION_PATHS if local else ("/decide",)
    assert sum(len(server.requests.matching(p)) for p in paths) == 1


@pytest.mark.parametrize("local", [True, False])
def test_error_when_posthog_fails_at_start(make, events, server, local):
    server.faults.respond(503, times=1, paths=DEFINITION_PATHS if local else "/decide")
    api.set_provider(make(local=local))
    wait_until(lambda: status() != ProviderStatus.NOT_READY)
    assert status() == ProviderStatus.ERROR
    error = events.last(ProviderEvent.PROVIDER_ERROR)
    assert error.error_code == ErrorCode.GENERAL
    assert "503" in error.message
    if local:  # the flag service answered the check, so reads have somewhere to go
        assert "flags are asked of PostHog" in error.message


def test_ready_again_when_the_definitions_load_later(make, events, server):
    server.faults.respond(503, times=1, paths=DEFINITION_PATHS)
    api.set_provider(make(poll_interval=0.05))
    wait_until(lambda: ProviderEvent.PROVIDER_READY in events.kinds())
    events.settle_on([ProviderEvent.PROVIDER_ERROR, ProviderEvent.PROVIDER_READY])
    assert status() == ProviderStatus.READY


def test_initialize_waits_no_longer_than_init_timeout(make, events, server):
    server.faults.delay(seconds=1.5, times=1, paths=DEFINITION_PATHS)
    provider = make(init_timeout=0.1)
    api.set_provider(provider)
    wait_until(lambda: status() != ProviderStatus.NOT_READY, timeout=1.0)  # well before 1.5 s
    assert status() == ProviderStatus.ERROR
    assert "none within 0.1 s" in events.last(ProviderEvent.PROVIDER_ERROR).message
    wait_until(lambda: status() == ProviderStatus.READY)  # the held poll answers


@pytest.mark.parametrize("local", [True, False])
def test_fatal_when_posthog_refuses_the_project_key(make, events, server, local):
    server.api_key = API_KEY
    api.set_provider(make(local=local, api_key="phc_another_project_0123"))
    wait_until(lambda: status() != ProviderStatus.NOT_READY)
    assert status() == ProviderStatus.FATAL
    details = events.last(ProviderEvent.PROVIDER_ERROR)
    assert details.error_code == ErrorCode.PROVIDER_FATAL
    assert "phc_another" not in details.message  # never the key itself
    read = api.get_client().get_boolean_details("beta", True)
    assert (read.value, read.error_code) == (True, ErrorCode.PROVIDER_FATAL)


def test_configuration_changed_names_the_flags(make, events, server):
    api.set_provider_and_wait(make(poll_interval=0.05))
    changed = copy.deepcopy(DEFINITIONS)
    changed["flags"][1] = flag("gamma", rollout=50)
    changed["flags"].append(flag("delta"))
    server.set_flags(changed)
    wait_until(lambda: ProviderEvent.PROVIDER_CONFIGURATION_CHANGED in events.kinds())
    details = events.last(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)
    assert details.flags_changed == ["delta", "gamma"]
    assert status() == ProviderStatus.READY


def test_stale_after_polls_fail_long_enough_then_ready(make, events, server):
    api.set_provider_and_wait(make(poll_interval=0.05, stale_after=0.3))
    server.faults.respond(503, times=10_000, paths=DEFINITION_PATHS)
    wait_until(lambda: status() == ProviderStatus.STALE)
    assert "not refreshed for 0.3 s" in events.last(ProviderEvent.PROVIDER_STALE).message
    # Still served from the last definitions meanwhile.
    read = api.get_client().get_boolean_value("beta", False, EvaluationContext("u1"))
    assert read is True
    server.faults.clear()
    wait_until(lambda: status() == ProviderStatus.READY)
    events.settle_on(
        [
            ProviderEvent.PROVIDER_READY,
            ProviderEvent.PROVIDER_STALE,
            ProviderEvent.PROVIDER_READY,
        ]
    )


def test_a_short_outage_is_not_stale(make, events, server):
    api.set_provider_and_wait(make(poll_interval=0.05, stale_after=30))
    polls = len(server.requests.matching(DEFINITION_PATHS[0]))
    server.faults.respond(503, times=3, paths=DEFINITION_PATHS)
    wait_until(lambda: len(server.requests.matching(DEFINITION_PATHS[0])) >= polls + 5)
    events.settle_on([ProviderEvent.PROVIDER_READY])


def test_withdrawn_definitions_are_an_error(make, events, server):
    api.set_provider_and_wait(make(poll_interval=0.05))
    server.secret_key = "phs_some_other_key_0123"  # ours is now refused: 401
    wait_until(lambda: status() == ProviderStatus.ERROR)
    assert "withdrew" in events.last(ProviderEvent.PROVIDER_ERROR).message
    server.secret_key = None
    wait_until(lambda: status() == ProviderStatus.READY)


def test_shutdown_stops_events_and_what_the_provider_started(make, events, server, monkeypatch):
    monkeypatch.setenv("POSTHOG_API_KEY", API_KEY)
    monkeypatch.setenv("POSTHOG_HOST", server.url)
    monkeypatch.setenv("POSTHOG_SECRET_KEY", SECRET)
    before = set(threading.enumerate())
    provider = PostHogProvider()  # makes (and owns) its flag provider
    api.set_provider_and_wait(provider)
    started = {t for t in set(threading.enumerate()) - before if "flag" in t.name}
    assert started  # the definitions poller
    api.shutdown()
    wait_until(lambda: not any(t.is_alive() for t in started))
    server.set_flags({"flags": [flag("omega")], "group_type_mapping": {}, "cohorts": {}})
    events.settle_on([ProviderEvent.PROVIDER_READY])


@pytest.mark.parametrize("option", ["init_timeout", "stale_after"])
@pytest.mark.parametrize("bad", [-1, "5", True])
def test_bad_settings_are_refused(make, option, bad):
    from posthog_otel import ConfigurationError

    with pytest.raises(ConfigurationError, match=option):
        make(**{option: bad})
