"""The flag provider with local evaluation, against the devserver: polling and its cost,
failures, the fallback to PostHog, exposures and traces, fork and shutdown."""

from __future__ import annotations

import copy
import logging
import os
import signal
import time

import pytest

from posthog_otel import ConfigurationError, PostHogClient, PostHogFlagProvider, identify
from tests.support.server import API_KEY, wait_until

SECRET = "phs_local_Secret_0123456789"
BETA = {
    "id": 7,
    "key": "beta",
    "version": 2,
    "active": True,
    "filters": {
        "groups": [{"properties": [], "rollout_percentage": 100}],
        "payloads": {"true": '{"limit": 5}'},
    },
}
PRO_ONLY = {
    "id": 8,
    "key": "pro-only",
    "version": 1,
    "active": True,
    "filters": {
        "groups": [
            {
                "properties": [{"key": "plan", "type": "person", "value": "pro"}],
                "rollout_percentage": 100,
            }
        ]
    },
}
CHECKOUT = {
    "id": 9,
    "key": "checkout",
    "version": 1,
    "active": True,
    "filters": {
        "groups": [{"properties": [], "rollout_percentage": 100}],
        "multivariate": {
            "variants": [
                {"key": "control", "rollout_percentage": 50},
                {"key": "test", "rollout_percentage": 50},
            ]
        },
    },
}
DEFINITIONS = {"flags": [BETA, PRO_ONLY, CHECKOUT], "group_type_mapping": {}, "cohorts": {}}
DEFINITION_PATHS = ("/flags/definitions", "/api/feature_flag/local_evaluation")


@pytest.fixture
def local_server(server):
    server.set_flags(DEFINITIONS)
    return server


@pytest.fixture
def make_local(local_server):
    made = []

    def make(*, secret_key=SECRET, client_secret=True, **options):
        client = PostHogClient(
            API_KEY,
            local_server.url,
            retry_delay=0.01,
            timeout=2.0,
            secret_key=secret_key if client_secret else None,
        )
        if not client_secret:
            options["secret_key"] = secret_key
        options.setdefault("send_feature_flag_events", False)
        provider = PostHogFlagProvider(client, **options)
        made.append((provider, client))
        return provider

    yield make
    for provider, client in made:
        provider.shutdown()
        client.close()


def decide_requests(server) -> int:
    return len(server.requests.matching("/decide"))


def definition_requests(server):
    return [r for r in server.requests.matching("/") if r.path.startswith(DEFINITION_PATHS)]


def test_loaded_definitions_answer_every_lookup_with_no_request(local_server, make_local):
    flags = make_local()
    assert flags.load_definitions(10)
    for i in range(1000):
        assert flags.is_enabled("beta", f"user-{i % 100}")
    assert decide_requests(local_server) == 0
    stats = flags.stats()
    assert (stats.local, stats.remote, stats.inconclusive) == (1000, 0, 0)
    assert stats.definitions_loaded and stats.definition_polls >= 1
    beta = flags.get_flag("beta", "u1")
    assert beta.reason.startswith("Evaluated locally") and (beta.id, beta.version) == (7, 2)
    assert flags.get_payload("beta", "u1") == {"limit": 5}
    assert flags.get_flag("checkout", "u1").variant in ("control", "test")
    assert repr(flags).endswith("local_evaluation=True)")


def test_each_poll_sends_the_etag_and_costs_a_304_while_nothing_changes(local_server, make_local):
    make_local(poll_interval=0.05)
    wait_until(lambda: len(definition_requests(local_server)) >= 4)
    first, *later = definition_requests(local_server)[:4]
    assert first.status == 200 and "If-None-Match" not in first.headers
    assert "token=" in first.path and "send_cohorts" in first.path
    assert all(r.status == 304 and r.body == b"" for r in later)
    assert all(r.headers["If-None-Match"] == local_server.flags.etag for r in later)
    assert all(r.headers["Authorization"] == f"Bearer {SECRET}" for r in [first, *later])


def test_changed_definitions_are_used_and_observers_hear_which_flags(local_server, make_local):
    flags = make_local(poll_interval=0.05)
    events = []
    assert flags.load_definitions(10)
    flags.on_definitions_change(events.append)
    assert flags.is_enabled("pro-only", "u1", person_properties={"plan": "pro"})
    changed = copy.deepcopy(DEFINITIONS)
    changed["flags"][1]["filters"]["groups"][0]["properties"][0]["value"] = "team"
    local_server.set_flags(changed)
    wait_until(lambda: any(e.kind == "changed" for e in events))
    (event,) = [e for e in events if e.kind == "changed"]
    assert event.changed == {"pro-only"} and event.status.loaded
    assert not flags.is_enabled("pro-only", "u1", person_properties={"plan": "pro"})
    assert flags.is_enabled("pro-only", "u1", person_properties={"plan": "team"})


def test_the_first_load_is_announced_with_every_flag(local_server, make_local):
    local_server.secret_key = "phs_not_yet"  # refused until the test says so
    flags = make_local(poll_interval=0.05)
    events = []
    flags.on_definitions_change(events.append)
    wait_until(lambda: any(e.kind == "failing" for e in events))
    local_server.secret_key = None
    wait_until(lambda: any(e.kind == "loaded" for e in events))
    kinds = [e.kind for e in events]
    assert kinds[0] == "failing" and kinds.index("recovered") < kinds.index("loaded")
    loaded = next(e for e in events if e.kind == "loaded")
    assert loaded.changed == {"beta", "pro-only", "checkout"}
    assert flags.definitions_status().failing_since is None


def test_a_refused_key_means_asking_posthog_logged_once_without_the_key(
    local_server, make_local, all_logs
):
    local_server.secret_key = "phs_the_right_one"
    flags = make_local(poll_interval=0.05)
    assert flags.is_enabled("beta", "u1")  # from PostHog, until the key is accepted
    assert flags.is_enabled("beta", "u2")
    wait_until(lambda: flags.definitions_status().polls >= 3)
    assert decide_requests(local_server) == 2
    stats = flags.stats()
    assert (stats.local, stats.remote, stats.inconclusive) == (0, 2, 2)
    assert not stats.definitions_loaded
    refused = [r for r in all_logs.records if "refused the secret key" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.ERROR
    not_loaded = [r for r in all_logs.records if "not loaded yet" in r.getMessage()]
    assert len(not_loaded) == 1
    assert all(SECRET not in r.getMessage() for r in all_logs.records)
    status = flags.definitions_status()
    assert status.failing_since is not None and "401" in status.error and SECRET not in status.error
    local_server.secret_key = SECRET
    wait_until(lambda: flags.definitions_status().loaded)
    assert flags.is_enabled("beta", "u3") and decide_requests(local_server) == 2


def test_over_quota_clears_the_definitions(local_server, make_local, all_logs):
    flags = make_local(poll_interval=0.05)
    events = []
    assert flags.load_definitions(10)
    flags.on_definitions_change(events.append)
    local_server.faults.respond(402, times=10_000, paths="/flags/definitions")
    wait_until(lambda: len(events) >= 2)  # told after the definitions are dropped
    assert [e.kind for e in events][:2] == ["failing", "cleared"]
    assert not flags.definitions_status().loaded
    assert flags.is_enabled("beta", "u1") and decide_requests(local_server) == 1
    polls = flags.definitions_status().polls
    wait_until(lambda: flags.definitions_status().polls >= polls + 3)
    assert len([r for r in all_logs.records if "quota" in r.getMessage()]) == 1
    local_server.faults.clear()
    wait_until(lambda: flags.definitions_status().loaded)


def test_other_failures_keep_the_last_definitions(local_server, make_local, all_logs):
    flags = make_local(poll_interval=0.05)
    assert flags.load_definitions(10)
    polls = flags.definitions_status().polls
    local_server.faults.respond(500, times=10_000, paths="/flags/definitions")
    wait_until(lambda: flags.definitions_status().polls >= polls + 3)
    status = flags.definitions_status()
    assert status.loaded and status.failing_since is not None
    assert flags.is_enabled("beta", "u1") and decide_requests(local_server) == 0
    warnings = [r for r in all_logs.records if "could not be loaded" in r.getMessage()]
    assert len(warnings) == 1 and "keeping the last ones" in warnings[0].getMessage()
    local_server.faults.clear()
    wait_until(lambda: any("load again" in r.getMessage() for r in all_logs.records))
    assert flags.definitions_status().failing_since is None


def test_only_local_never_asks_posthog(local_server, make_local):
    local_server.secret_key = "phs_refused"
    flags = make_local(only_local=True)
    assert flags.get_flag("beta", "u1") is None  # not loaded: the default
    assert flags.is_enabled("beta", "u1", default=True)
    local_server.secret_key = None
    flags = make_local(only_local=True)
    assert flags.load_definitions(10)
    assert flags.get_flag("pro-only", "u1") is None  # undecided without the plan
    assert flags.get_flag("pro-only", "u1", person_properties={"plan": "pro"}).enabled
    assert flags.get_flag("no-such-flag", "u1") is None
    assert flags.get_flags("u1").keys() == {"beta", "checkout"}
    assert decide_requests(local_server) == 0


def test_an_undecided_flag_is_asked_once_per_user_and_ttl(local_server, make_local):
    flags = make_local()
    assert flags.load_definitions(10)
    assert not flags.is_enabled("pro-only", "u1")  # PostHog: the property is absent
    assert not flags.is_enabled("pro-only", "u1")
    assert decide_requests(local_server) == 1
    assert flags.stats().inconclusive == 2 and flags.stats().remote == 2
    assert not flags.get_flag("no-such-flag", "u1")  # one answer serves every flag
    assert decide_requests(local_server) == 1


def test_get_flags_asks_posthog_only_for_what_it_cannot_decide(local_server, make_local):
    flags = make_local()
    assert flags.load_definitions(10)
    decided = flags.get_flags("u1", person_properties={"plan": "free"})
    assert decide_requests(local_server) == 0
    assert decided.keys() == {"beta", "pro-only", "checkout"}
    assert all(f.reason.startswith("Evaluated locally") for f in decided.values())
    merged = flags.get_flags("u1")
    assert decide_requests(local_server) == 1
    assert merged["pro-only"].enabled is False and "locally" not in (
        merged["pro-only"].reason or ""
    )
    assert merged["beta"].reason.startswith("Evaluated locally")


def test_exposure_events_say_they_were_evaluated_locally(local_server, make_local):
    flags = make_local(send_feature_flag_events=True)
    assert flags.load_definitions(10)
    assert flags.is_enabled("beta", "u1", groups={"company": "acme"})
    assert flags.flush(10)
    (event,) = local_server.wait_for_events(1, event="$feature_flag_called")
    props = event["properties"]
    assert props["locally_evaluated"] is True
    assert (props["$feature_flag_id"], props["$feature_flag_version"]) == (7, 2)
    assert props["$feature_flag_reason"].startswith("Evaluated locally")
    assert props["$feature_flag_payload"] == {"limit": 5}
    assert props["$feature/beta"] is True and props["$groups"] == {"company": "acme"}


def test_local_answers_show_on_the_trace_and_on_later_events(
    local_server, make_local, make_pipeline
):
    tracer, processor = make_pipeline()
    flags = make_local(processor=processor)
    assert flags.load_definitions(10)
    with identify("user-5"), tracer.start_as_current_span("GET /checkout") as span:
        variant = flags.get_flag("checkout").variant
        with tracer.start_as_current_span("pay", attributes={"posthog.event": "paid"}):
            pass
    (event,) = [e for e in span.events if e.name == "feature_flag.evaluation"]
    assert event.attributes["feature_flag.result.variant"] == variant
    assert event.attributes["feature_flag.result.reason"] == "targeting_match"
    (paid,) = local_server.wait_for_events(1, event="paid")
    assert paid["properties"]["$feature/checkout"] == variant
    assert decide_requests(local_server) == 0


def test_openfeature_resolves_from_local_evaluation(local_server, make_local):
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import Reason

    from posthog_otel.openfeature import PostHogProvider

    flags = make_local()
    assert flags.load_definitions(10)
    api.set_provider_and_wait(PostHogProvider(flags))
    try:
        client = api.get_client()
        pro = EvaluationContext(targeting_key="u1", attributes={"plan": "pro"})
        details = client.get_boolean_details("pro-only", False, pro)
        assert (details.value, details.reason) == (True, Reason.TARGETING_MATCH)
        assert details.flag_metadata["flag_id"] == 8
        assert client.get_string_value("checkout", "none", pro) in ("control", "test")
        assert client.get_object_value("beta", {}, pro) == {"limit": 5}
        assert decide_requests(local_server) == 0
    finally:
        api.clear_providers()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_polls_on_its_own(local_server, make_local):
    flags = make_local(poll_interval=0.05)
    assert flags.load_definitions(10)
    condition = flags._local.poller._cond
    condition.acquire()  # as if the poller thread were inside it at the moment of fork
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(10)  # a deadlock fails the child instead of hanging the suite
            polls = flags.definitions_status().polls
            assert flags.is_enabled("beta", "child")  # starts the child's own poller
            deadline = time.monotonic() + 8
            while flags.definitions_status().polls <= polls + 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            code = 0
        finally:
            os._exit(code)
    condition.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_shutdown_stops_the_poller(local_server, make_local):
    flags = make_local(poll_interval=0.05)
    assert flags.load_definitions(10)
    thread = flags._local.poller._thread
    assert thread.is_alive()
    flags.shutdown()
    assert not thread.is_alive()


def test_configuration(local_server, make_local, monkeypatch):
    plain = PostHogClient(API_KEY, local_server.url)
    try:
        with pytest.raises(ConfigurationError, match="secret_key"):
            PostHogFlagProvider(plain, local_evaluation=True)
        with pytest.raises(ConfigurationError, match="only_local"):
            PostHogFlagProvider(plain, only_local=True)
        with pytest.raises(ConfigurationError, match="poll_interval"):
            PostHogFlagProvider(plain, secret_key=SECRET, poll_interval=0)
        assert not PostHogFlagProvider(plain).load_definitions(0.1)  # no key: off
    finally:
        plain.close()
    off = make_local(local_evaluation=False)
    assert off.definitions_status() is None and not off.load_definitions(0.1)
    given = make_local(client_secret=False)  # the provider's key, the client's host
    assert given.load_definitions(10)
    monkeypatch.setenv("POSTHOG_API_KEY", API_KEY)
    monkeypatch.setenv("POSTHOG_HOST", local_server.url)
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", "phx_from_the_environment")
    from_env = PostHogFlagProvider()
    try:
        assert from_env.load_definitions(10)
        assert "phx_from_the_environment" not in repr(from_env)
    finally:
        from_env.shutdown()
    auth = {r.headers["Authorization"] for r in definition_requests(local_server)}
    assert auth == {f"Bearer {SECRET}", "Bearer phx_from_the_environment"}
