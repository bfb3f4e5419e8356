"""PostHogFlagProvider against the devserver: caching, outages, exposure events, traces."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest
from opentelemetry import trace

from posthog_otel import APIError, PostHogClient, PostHogFlagProvider, capture, identify
from tests.support.server import API_KEY, FakeClock

FLAGS = {
    "beta": True,
    "off": False,
    "checkout": {"variants": {"control": 50, "test": 50}, "payloads": {"test": {"color": "green"}}},
    "limits": {"payload": {"max_items": 5}},
    "org-only": {"group_type": "company"},
}


@pytest.fixture
def flags_server(server):
    server.set_flags(FLAGS)
    return server


@pytest.fixture
def make_provider(flags_server):
    made = []

    def make(**options):
        client = PostHogClient(API_KEY, flags_server.url, retry_delay=0.01, flags_timeout=1.0)
        provider = PostHogFlagProvider(client, **options)
        made.append((provider, client))
        return provider

    yield make
    for provider, client in made:
        provider.shutdown()
        client.close()


def decide_requests(server):
    return len(server.requests.matching("/decide"))


def test_boolean_multivariate_and_payload_flags(flags_server, make_provider):
    flags = make_provider(send_feature_flag_events=False)
    assert flags.is_enabled("beta", "u1") is True
    assert flags.is_enabled("off", "u1") is False
    assert flags.is_enabled("missing", "u1") is False
    assert flags.is_enabled("missing", "u1", default=True) is True
    assert flags.get_flag("missing", "u1") is None
    assert flags.get_payload("limits", "u1") == {"max_items": 5}
    variants = {flags.get_flag("checkout", f"user-{i}").variant for i in range(40)}
    assert variants == {"control", "test"}
    test_user = next(
        f"user-{i}" for i in range(40) if flags.get_flag("checkout", f"user-{i}").variant == "test"
    )
    assert flags.get_payload("checkout", test_user) == {"color": "green"}
    assert set(flags.get_flags("u1")) == set(FLAGS)


def test_groups_and_properties_go_on_the_wire(flags_server, make_provider):
    flags = make_provider(send_feature_flag_events=False)
    assert flags.is_enabled("org-only", "u1") is False
    assert flags.is_enabled(
        "org-only",
        "u1",
        groups={"company": "acme"},
        person_properties={"plan": "pro"},
        group_properties={"company": {"size": 50}},
    )
    body = flags_server.requests.matching("/decide")[-1].json()
    assert body["groups"] == {"company": "acme"}
    assert body["person_properties"] == {"plan": "pro"}
    assert body["group_properties"] == {"company": {"size": 50}}
    assert "flag_keys_to_evaluate" not in body  # one answer serves every flag


def test_one_request_per_user_and_context_per_ttl(flags_server, make_provider):
    clock = FakeClock()
    flags = make_provider(cache_ttl=30, clock=clock, send_feature_flag_events=False)
    for _ in range(100):
        flags.is_enabled("beta", "u1")
        flags.get_flag("checkout", "u1")
    assert decide_requests(flags_server) == 1
    flags.is_enabled("beta", "u2")
    flags.is_enabled("beta", "u1", person_properties={"plan": "pro"})
    flags.is_enabled("beta", "u1", groups={"company": "acme"})
    assert decide_requests(flags_server) == 4
    clock.now += 29
    flags.is_enabled("beta", "u1")
    assert decide_requests(flags_server) == 4
    clock.now += 2
    flags.is_enabled("beta", "u1")
    assert decide_requests(flags_server) == 5


def test_identical_concurrent_lookups_make_one_request(flags_server, make_provider):
    flags = make_provider(send_feature_flag_events=False)
    flags_server.faults.delay(0.3, paths="/decide")
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(flags.is_enabled("beta", "same-user")))
        for _ in range(25)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 25
    assert decide_requests(flags_server) == 1


def test_stale_values_while_posthog_fails_then_defaults(flags_server, make_provider, caplog):
    clock = FakeClock()
    flags = make_provider(cache_ttl=30, stale_grace=60, clock=clock, send_feature_flag_events=False)
    assert flags.get_flag("beta", "u1").enabled is True
    flags_server.faults.respond(503, times=100, paths="/decide")
    clock.now += 31
    stale = flags.get_flag("beta", "u1")
    assert stale.enabled is True
    assert stale.reason.startswith("stale:")
    clock.now += 61
    assert flags.get_flag("beta", "u1") is None
    assert flags.is_enabled("beta", "u1", default=True) is True
    assert len([r for r in caplog.records if "feature flags unavailable" in r.getMessage()]) == 1


def test_posthog_down_with_an_empty_cache_never_raises(make_provider, unused_port, caplog):
    client = PostHogClient(API_KEY, f"http://127.0.0.1:{unused_port}", flags_timeout=0.5)
    flags = PostHogFlagProvider(client, send_feature_flag_events=False)
    assert flags.is_enabled("beta", "u1") is False
    assert flags.is_enabled("beta", "u1", default=True) is True
    assert flags.get_flag("beta", "u1") is None
    assert flags.get_payload("beta", "u1") is None
    assert flags.get_flags("u1") == {}
    warnings = [r for r in caplog.records if "feature flags unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert "could not connect" in warnings[0].getMessage()
    flags.shutdown()
    client.close()


def test_a_trickling_flag_service_holds_no_caller_past_flags_timeout(flags_server):
    client = PostHogClient(API_KEY, flags_server.url, flags_timeout=1.5)
    flags = PostHogFlagProvider(client, send_feature_flag_events=False)
    # The /decide answer, one byte a second: minutes, though every read returns in time.
    flags_server.faults.trickle(bytes_per_second=1, times=10, paths="/decide")
    took: dict[int, float] = {}
    answers: dict[int, bool] = {}

    def look(n: int) -> None:
        started = time.monotonic()
        answers[n] = flags.is_enabled("beta", "u1", default=True)
        took[n] = time.monotonic() - started

    threads = [threading.Thread(target=look, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    client.close()
    assert answers == dict.fromkeys(range(4), True)  # the default: no answer came in time
    # The leader's fetch is cut off at 1.5 s and the others wait for it at most 1.5 s;
    # the bound is a hang guard for a loaded machine.
    assert max(took.values()) < 3.5, took
    assert decide_requests(flags_server) == 1


def deeply_nested_payload_answer():
    payload = "[" * 100_000 + "]" * 100_000  # valid JSON, too deep for any parser's stack
    return {"flags": {"beta": {"enabled": True, "metadata": {"payload": payload}}}}


def test_an_answer_too_deep_to_parse_is_a_failed_fetch(flags_server, make_provider, caplog):
    clock = FakeClock()
    flags = make_provider(cache_ttl=30, clock=clock, send_feature_flag_events=False)
    assert flags.is_enabled("beta", "u1") is True
    flags_server.faults.respond(200, body=deeply_nested_payload_answer(), paths="/decide")
    clock.now += 31
    stale = flags.get_flag("beta", "u1")  # raises nothing into the application
    assert stale.enabled is True and stale.reason.startswith("stale:")
    assert flags.is_enabled("beta", "u2", default=True) is True  # nothing cached: the default
    assert "unreadable flags answer" in caplog.text


def test_the_client_raises_a_typed_error_for_an_unreadable_answer(flags_server):
    flags_server.faults.respond(200, body=deeply_nested_payload_answer(), paths="/decide")
    with PostHogClient(API_KEY, flags_server.url, retries=0) as client:
        with pytest.raises(
            APIError,
            match="unreadable flags answer: ValueError: a flag payload nests deeper than 64",
        ):
            client.feature_flags("u1")


def test_quota_limited(flags_server, make_provider):
    flags_server.faults.respond(
        200, body={"flags": {}, "quotaLimited": ["feature_flags"]}, paths="/decide"
    )
    flags = make_provider()
    assert flags.is_enabled("beta", "u1", default=True) is True
    assert flags.get_flag("beta", "u1") is None
    flags.flush(10)
    (called,) = flags_server.events("$feature_flag_called")
    assert called["properties"]["$feature_flag_error"] == "quota_limited"


def test_errors_while_computing_flags_is_not_off(flags_server, make_provider):
    clock = FakeClock()
    flags = make_provider(cache_ttl=30, clock=clock, send_feature_flag_events=False)
    assert flags.is_enabled("beta", "u1") is True
    partial = {
        "flags": {"off": {"key": "off", "enabled": False}},
        "errorsWhileComputingFlags": True,
    }
    flags_server.faults.respond(200, body=partial, paths="/decide", times=5)
    clock.now += 31
    beta = flags.get_flag("beta", "u1")  # missing from the partial answer: the last known value
    assert beta.enabled is True
    assert beta.reason.startswith("stale:")
    assert flags.is_enabled("off", "u1") is False
    assert flags.get_flag("never-seen", "u2") is None


def test_feature_flag_called_once_off_the_callers_thread(flags_server, make_pipeline):
    _, processor = make_pipeline(flush_interval=60)
    client = PostHogClient(API_KEY, flags_server.url)
    flags = PostHogFlagProvider(client, processor=processor)
    for _ in range(5):
        flags.is_enabled("beta", "u1")
        flags.get_flag("checkout", "u1")
    flags.is_enabled("beta", "u2")
    flags.is_enabled("beta", "u1", groups={"company": "acme"})
    assert flags_server.requests.matching("/batch") == []  # nothing sent on our thread
    assert processor.stats().events_queued == 4
    assert flags.flush(10)
    called = flags_server.events("$feature_flag_called")
    assert sorted((e["distinct_id"], e["properties"]["$feature_flag"]) for e in called) == [
        ("u1", "beta"),
        ("u1", "beta"),
        ("u1", "checkout"),
        ("u2", "beta"),
    ]
    grouped = [e for e in called if "$groups" in e["properties"]]
    assert grouped[0]["properties"]["$groups"] == {"company": "acme"}
    assert all(e["properties"]["$feature_flag_request_id"] for e in called)
    flags.shutdown()
    client.close()


def test_without_a_processor_events_use_a_queue_of_their_own(flags_server, make_provider):
    flags = make_provider()
    flags.is_enabled("beta", "u1")
    flags.is_enabled("beta", "u1")
    assert flags.flush(10)
    assert len(flags_server.events("$feature_flag_called")) == 1
    quiet = make_provider(send_feature_flag_events=False)
    quiet.is_enabled("beta", "u9")
    assert quiet.flush(10)
    assert flags_server.events("$feature_flag_called", distinct_id="u9") == []


def test_evaluations_show_on_the_trace_and_tag_later_events(flags_server, make_pipeline):
    tracer, processor = make_pipeline()
    client = PostHogClient(API_KEY, flags_server.url)
    flags = PostHogFlagProvider(client, processor=processor, send_feature_flag_events=False)
    with identify("u1"), tracer.start_as_current_span("request") as request:
        capture("before_flags")
        checkout = flags.get_flag("checkout")  # identity from identify()
        flags.is_enabled("beta")
        flags.is_enabled("missing")
        capture("in_same_span")
        with tracer.start_as_current_span("child"):
            capture("in_child_span")
        evaluation_events = [e for e in request.events if e.name == "feature_flag.evaluation"]
    first = dict(evaluation_events[0].attributes)
    assert first["feature_flag.key"] == "checkout"
    assert first["feature_flag.result.variant"] == checkout.variant
    assert first["feature_flag.provider.name"] == "posthog"
    assert first["feature_flag.context.id"] == "u1"
    assert dict(evaluation_events[1].attributes)["feature_flag.result.value"] is True
    assert dict(evaluation_events[2].attributes)["error.type"] == "flag_missing"
    processor.force_flush(10_000)
    by_name = {e["event"]: e["properties"] for e in flags_server.events()}
    assert not any(k.startswith("$feature/") for k in by_name["before_flags"])
    for name in ("in_same_span", "in_child_span"):
        assert by_name[name]["$feature/checkout"] == checkout.variant
        assert by_name[name]["$feature/beta"] is True
        assert "$feature/missing" not in by_name[name]
    client.close()


def test_a_flag_read_in_a_loop_records_one_span_event(flags_server, make_pipeline):
    tracer, processor = make_pipeline()
    client = PostHogClient(API_KEY, flags_server.url)
    flags = PostHogFlagProvider(client, processor=processor, send_feature_flag_events=False)
    with tracer.start_as_current_span("r", attributes={"posthog.distinct_id": "u1"}) as span:
        for _ in range(500):
            flags.is_enabled("beta")
        for i in range(100):
            capture("step", {"i": i})
        names = [e.name for e in span.events]
    assert names.count("feature_flag.evaluation") == 1
    assert names.count("step") == 100
    client.close()


def test_identity_comes_from_the_context(flags_server, make_provider, make_pipeline):
    tracer, _ = make_pipeline()
    flags = make_provider(send_feature_flag_events=False)
    with tracer.start_as_current_span("r", attributes={"posthog.distinct_id": "from-span"}):
        flags.is_enabled("beta")
    with tracer.start_as_current_span("r", attributes={"enduser.id": "from-enduser"}):
        flags.is_enabled("beta")
    sent = [r.json()["distinct_id"] for r in flags_server.requests.matching("/decide")]
    assert sent == ["from-span", "from-enduser"]
    assert trace.get_current_span().is_recording() is False
    with pytest.raises(ValueError, match="identify"):
        flags.is_enabled("beta")


def test_bad_arguments_are_typed_errors(make_provider):
    flags = make_provider()
    with pytest.raises(ValueError, match="flag key"):
        flags.get_flag("", "u1")
    with pytest.raises(TypeError, match="distinct_id"):
        flags.get_flag("beta", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="person_properties"):
        flags.get_flag("beta", "u1", person_properties={"x": object()})


def test_configured_from_the_environment(flags_server, monkeypatch):
    monkeypatch.setenv("POSTHOG_API_KEY", API_KEY)
    monkeypatch.setenv("POSTHOG_HOST", flags_server.url)
    flags = PostHogFlagProvider(send_feature_flag_events=False)
    assert flags.is_enabled("beta", "u1")
    assert API_KEY not in repr(flags)
    flags.shutdown()
    flags.shutdown()


def test_a_lookup_in_a_span_logs_nothing_at_warning(flags_server, make_provider, caplog):
    flags = make_provider()
    with caplog.at_level(logging.WARNING):
        flags.is_enabled("beta", "u1")
    assert caplog.records == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_never_inherits_a_held_lock(flags_server, make_provider):
    flags = make_provider()
    assert flags.is_enabled("beta", "parent")
    held = [
        flags._observer._reported._seen._lock,
        flags._observer._lock,
        flags._remote._cache._lock,
        flags._client._flag_events._seen._lock,
    ]
    for lock in held:  # as if another thread were inside them at the moment of fork
        lock.acquire()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(10)  # a deadlock fails the child instead of hanging the suite
            found = flags.is_enabled("beta", "child")
            code = 0 if found and flags.flush(10) else 2
        finally:
            os._exit(code)
    for lock in held:
        lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [
        e["distinct_id"] for e in flags_server.events("$feature_flag_called", distinct_id="child")
    ] == ["child"]
