"""PostHogClient against the devserver over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid

import pytest

from posthog_otel import (
    APIError,
    Event,
    PostHogClient,
    PostHogError,
    PostHogFlagProvider,
    Response,
    TransportError,
)
from tests.support.server import API_KEY


def sent_bodies(server, prefix):
    return [r.json() for r in server.requests.matching(prefix)]


def test_capture_wire_body(server, client):
    when = dt.datetime(2026, 8, 22, 9, 0, 0, 123456, tzinfo=dt.timezone.utc)
    given = uuid.UUID("0190e7c4-0000-7000-8000-000000000001")
    response = client.capture(
        "signed_up",
        "user_123",
        {"plan": "pro"},
        timestamp=when,
        uuid=given,
        groups={"company": "acme"},
    )
    assert response.status == 200
    assert response.body == {"status": 1}
    (body,) = sent_bodies(server, "/capture/")
    sent_at = body.pop("sent_at")
    assert body == {
        "api_key": API_KEY,
        "event": "signed_up",
        "distinct_id": "user_123",
        "properties": {
            "plan": "pro",
            "$lib": "posthog-otel",
            "$lib_version": body["properties"]["$lib_version"],
            "$groups": {"company": "acme"},
        },
        "timestamp": "2026-08-22T09:00:00.123456+00:00",
        "uuid": str(given),
    }
    assert dt.datetime.fromisoformat(sent_at).tzinfo is not None
    (stored,) = server.events()
    assert stored["uuid"] == str(given)


def test_batch_wire_body(server, client):
    client.batch(
        [("page_view", "user_123", {}), Event("click", "user_123", {"button": "signup"})],
        timestamp="2026-08-22T09:00:00Z",
    )
    (body,) = sent_bodies(server, "/batch/")
    assert body["api_key"] == API_KEY
    assert body["historical_migration"] is False
    assert "sent_at" in body
    assert [(e["event"], e["timestamp"]) for e in body["batch"]] == [
        ("page_view", "2026-08-22T09:00:00.000000+00:00"),
        ("click", "2026-08-22T09:00:00.000000+00:00"),
    ]
    assert body["batch"][1]["properties"]["button"] == "signup"
    assert len(server.events()) == 2


def test_requests_are_gzipped_with_our_user_agent(server, client):
    client.capture("e", "u")
    (request,) = server.requests.matching("/capture/")
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["User-Agent"].startswith("posthog-otel/")
    assert request.headers["Content-Type"] == "application/json"


def test_gzip_can_be_turned_off(server):
    with PostHogClient(API_KEY, server.url, gzip=False) as plain:
        plain.capture("e", "u")
    (request,) = server.requests.matching("/capture/")
    assert "Content-Encoding" not in request.headers
    assert len(server.events()) == 1


def test_custom_headers(server):
    with PostHogClient(API_KEY, server.url, headers={"X-Team": "growth"}) as c:
        c.capture("e", "u", headers={"X-Forwarded-For": "127.0.0.1"})
        c.batch([("e", "u", {})], headers={"X-Request": "2"})
    first, second = server.requests.matching("/")
    assert (first.headers["X-Team"], first.headers["X-Forwarded-For"]) == ("growth", "127.0.0.1")
    assert (second.headers["X-Team"], second.headers["X-Request"]) == ("growth", "2")
    with pytest.raises(ValueError, match="headers"):
        c.capture("e", "u", headers={"Bad\nName": "x"})


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_with_the_same_uuid(server, client, status):
    server.faults.respond(status, times=2)
    assert client.capture("e", "u").status == 200
    uuids = {body["uuid"] for body in sent_bodies(server, "/capture/")}
    assert len(server.requests.matching("/capture/")) == 3
    assert len(uuids) == 1
    assert [e["uuid"] for e in server.events()] == list(uuids)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_other_client_errors_are_not_retried(server, client, status):
    server.faults.respond(status, body={"error": "nope"})
    with pytest.raises(APIError) as info:
        client.capture("e", "u")
    assert info.value.status == status
    assert info.value.body == {"error": "nope"}
    assert len(server.requests.matching("/capture/")) == 1


def test_retries_run_out(server):
    server.faults.respond(503, times=10)
    with (
        PostHogClient(API_KEY, server.url, retries=2, retry_delay=0.01) as c,
        pytest.raises(APIError) as info,
    ):
        c.capture("e", "u")
    assert info.value.status == 503
    assert len(server.requests.matching("/capture/")) == 3


def test_retry_after_seconds_is_honoured(server, client):
    server.faults.respond(429, retry_after=1)
    started = time.monotonic()
    client.capture("e", "u")
    assert time.monotonic() - started >= 1.0  # a lower bound: load can only lengthen it
    assert len(server.events()) == 1


def test_retry_after_beyond_the_cap_fails_without_hammering(server, client):
    server.faults.respond(429, retry_after=3600, times=5)
    started = time.monotonic()
    with pytest.raises(APIError, match="429"):
        client.capture("e", "u")
    assert time.monotonic() - started < 30  # a hang guard: it must not wait the hour asked
    assert len(server.requests.matching("/capture/")) == 1


def test_the_timeout_is_applied_to_every_attempt(server):
    server.faults.hang(10, times=3)
    with PostHogClient(API_KEY, server.url, timeout=0.3, retries=2, retry_delay=0.05) as c:
        started = time.monotonic()
        with pytest.raises(TransportError, match="timed out") as info:
            c.capture("e", "u")
        elapsed = time.monotonic() - started
    # Three attempts of 0.3 s each at least; the upper bound only guards against waiting
    # out the 10 s hangs (generous, for a loaded CI machine).
    assert 0.9 <= elapsed < 8, elapsed
    assert info.value.__cause__ is not None
    assert len(server.requests.matching("/capture/")) == 3


def test_a_stalled_response_body_times_out(server):
    server.faults.stall_body(10, times=5)
    with PostHogClient(API_KEY, server.url, timeout=0.3, retries=1, retry_delay=0.01) as c:
        started = time.monotonic()
        with pytest.raises(TransportError):
            c.capture("e", "u")
    assert time.monotonic() - started < 8  # a hang guard: the stalls last 10 s each


def test_timeout_bounds_each_capture_attempt_against_a_trickling_server(server):
    # {"status": 1} at one byte a second takes 13 s, though no single read is slow.
    server.faults.trickle(bytes_per_second=1, times=1, paths="/capture")
    with PostHogClient(API_KEY, server.url, timeout=1.5, retries=1, retry_delay=0.01) as c:
        started = time.monotonic()
        assert c.capture("e", "u").status == 200  # the retry answers at once
        elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 4.5, elapsed  # one attempt cut off at 1.5 s; a hang guard above
    assert len(server.requests.matching("/capture/")) == 2


def test_timeout_bounds_each_batch_attempt_against_a_trickling_server(server):
    server.faults.trickle(bytes_per_second=1, times=10, paths="/batch")
    with PostHogClient(API_KEY, server.url, timeout=1.5, retries=1, retry_delay=0.01) as c:
        started = time.monotonic()
        with pytest.raises(TransportError, match="timed out"):
            c.batch([("e", "u")])
        elapsed = time.monotonic() - started
    assert 3.0 <= elapsed < 6.0, elapsed  # two attempts of 1.5 s; a hang guard above
    assert len(server.requests.matching("/batch/")) == 2


def test_a_reset_of_a_reused_connection_is_retried_once_at_once(server):
    # A keep-alive connection the server closed as we reused it: not a failed attempt.
    with PostHogClient(API_KEY, server.url, retries=0) as c:
        c.capture("warm", "u")
        server.faults.reset(times=1)
        assert c.capture("e", "u").status == 200
    assert len(server.requests.matching("/capture/")) == 3
    assert sorted(e["event"] for e in server.events()) == ["e", "warm"]


def test_a_reset_costs_one_request_per_configured_try(server):
    server.faults.reset(times=10)
    with PostHogClient(API_KEY, server.url, retries=2, retry_delay=0.01) as c:
        with pytest.raises(TransportError, match="reset"):
            c.capture("e", "u")
    assert len(server.requests.matching("/capture/")) == 3  # the first try and two retries


def test_repeated_resets_and_garbage_fail_as_transport_errors(server):
    server.faults.reset(times=2)
    with PostHogClient(API_KEY, server.url, retries=0) as c, pytest.raises(TransportError):
        c.capture("e", "u")
    server.faults.garbage(times=10)
    with (
        PostHogClient(API_KEY, server.url, retries=1, retry_delay=0.01) as c,
        pytest.raises(TransportError),
    ):
        c.capture("e", "u")
    assert server.events() == []


def test_connection_refused_is_a_transport_error(unused_port):
    c = PostHogClient(API_KEY, f"http://127.0.0.1:{unused_port}", retries=1, retry_delay=0.01)
    with c, pytest.raises(TransportError, match="could not connect") as info:
        c.capture("e", "u")
    assert isinstance(info.value.__cause__, Exception)


def test_closing_interrupts_a_backoff(server):
    server.faults.respond(503, times=10)
    c = PostHogClient(API_KEY, server.url, retry_delay=20)
    threading.Timer(0.2, c.close).start()
    started = time.monotonic()
    with pytest.raises(APIError):
        c.capture("e", "u")
    assert time.monotonic() - started < 10  # a hang guard: the backoff alone is 20 s
    with pytest.raises(PostHogError, match="closed"):
        c.capture("e", "u")


def test_disabled_capture_sends_nothing_but_flags_work(server):
    server.set_flags({"on": True})
    with PostHogClient(API_KEY, server.url, enabled_capture=False) as c:
        assert c.capture("e", "u") == Response(status=200, headers={}, body=None)
        assert c.batch([("e", "u", {})]) == Response(status=200, headers={}, body=None)
        assert c.feature_flags("u").feature_flags == {"on": True}
        assert c.feature_flag("on", "u").enabled is True
        with pytest.raises(TypeError):
            c.capture("e", 123)  # type: ignore[arg-type]
    assert [r.path for r in server.requests.matching("/")] == ["/decide/?v=4", "/decide/?v=4"]


def test_batch_is_split_at_five_mebibytes(server, client):
    blob = "x" * (400 * 1024)
    events = [(f"e{i}", "u", {"blob": blob}) for i in range(30)]
    client.batch(events)
    requests = server.requests.matching("/batch/")
    assert len(requests) == 3
    assert all(len(r.body) <= 5 * 1024 * 1024 for r in requests)
    stored = server.events()
    assert sorted(e["event"] for e in stored) == sorted(f"e{i}" for i in range(30))


def test_a_failed_chunk_reports_how_many_were_sent(server, client):
    blob = "x" * (400 * 1024)
    server.faults.respond(400, after=1)
    with pytest.raises(APIError) as info:
        client.batch([(f"e{i}", "u", {"blob": blob}) for i in range(30)])
    assert info.value.sent == len(server.events()) > 0


def test_an_oversize_event_stops_the_batch_before_sending(server, client):
    with pytest.raises(ValueError, match="'too_big'"):
        client.batch([("ok", "u", {}), ("too_big", "u", {"blob": "x" * (1024 * 1024)})])
    with pytest.raises(ValueError, match="'too_big'"):
        client.capture("too_big", "u", {"blob": "x" * (1024 * 1024)})
    assert server.requests.matching("/") == []


def test_batch_input_errors(server, client):
    with pytest.raises(ValueError, match="at least one"):
        client.batch([])
    with pytest.raises(TypeError, match=r"events\[1\]"):
        client.batch([("e", "u", {}), "not an event"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="distinct_id"):
        client.batch([("e", None, {})])
    assert server.requests.matching("/") == []


FLAGS = {
    "on": True,
    "off": False,
    "pricing": "variant-a",
    "with-payload": {"payload": {"color": "blue"}},
    "text-payload": {"payload": "plain words"},
}


@pytest.mark.parametrize("path", ["/decide/?v=4", "/flags/?v=2", "/decide/?v=3", "/flags/"])
def test_feature_flags_in_both_shapes(server, path):
    server.set_flags(FLAGS)
    with PostHogClient(API_KEY, server.url, flags_path=path) as c:
        answer = c.feature_flags("user_123")
    assert answer.feature_flags == {
        "on": True,
        "off": False,
        "pricing": "variant-a",
        "with-payload": True,
        "text-payload": True,
    }
    assert answer.feature_flag_payloads == {
        "with-payload": {"color": "blue"},
        "text-payload": "plain words",
    }
    assert answer.flags["pricing"].variant == "variant-a"
    assert server.requests.matching("/")[0].path == path


def test_flag_request_body_on_the_wire(server, client):
    server.set_flags(FLAGS)
    client.feature_flags(
        "user_123",
        groups={"company": "acme"},
        person_properties={"email": "a@b.c"},
        group_properties={"company": {"industry": "tech"}},
    )
    (body,) = sent_bodies(server, "/decide/")
    assert body == {
        "api_key": API_KEY,
        "distinct_id": "user_123",
        "geoip_disable": True,
        "groups": {"company": "acme"},
        "person_properties": {"email": "a@b.c"},
        "group_properties": {"company": {"industry": "tech"}},
    }
    assert server.requests.matching("/decide/")[0].headers["User-Agent"].startswith("posthog-otel/")


def test_feature_flag_returns_the_flag_or_none(server, client):
    server.set_flags(FLAGS)
    flag = client.feature_flag("with-payload", "u", send_feature_flag_event=False)
    assert (flag.name, flag.enabled, flag.payload, flag.id, flag.version) == (
        "with-payload",
        True,
        {"color": "blue"},
        4,
        1,
    )
    assert client.feature_flag("missing", "u", send_feature_flag_event=False) is None
    assert sent_bodies(server, "/decide/")[0]["flag_keys_to_evaluate"] == ["with-payload"]


def test_feature_flag_called_is_sent_once_per_user_flag_value_and_groups(server, client):
    server.set_flags(FLAGS)
    for _ in range(3):
        client.feature_flag("pricing", "u1")
    client.feature_flag("pricing", "u2")
    client.feature_flag("pricing", "u1", groups={"company": "acme"})
    server.set_flags({**FLAGS, "pricing": "variant-b"})
    client.feature_flag("pricing", "u1")
    client.feature_flag("pricing", "u1", send_feature_flag_event=False)
    called = server.events("$feature_flag_called")
    assert len(called) == 4
    values = sorted((e["distinct_id"], e["properties"]["$feature_flag_response"]) for e in called)
    assert values == [
        ("u1", "variant-a"),
        ("u1", "variant-a"),
        ("u1", "variant-b"),
        ("u2", "variant-a"),
    ]
    newest = called[0]["properties"]
    assert newest["$feature_flag"] == "pricing"
    assert newest["$feature/pricing"] == "variant-b"
    assert newest["locally_evaluated"] is False
    assert newest["$feature_flag_id"] == 3
    assert newest["$feature_flag_request_id"]
    grouped = [e for e in called if "$groups" in e["properties"]]
    assert grouped[0]["properties"]["$groups"] == {"company": "acme"}


def test_a_missing_flag_is_reported_as_missing(server, client):
    server.set_flags(FLAGS)
    assert client.feature_flag("nope", "u") is None
    (called,) = server.events("$feature_flag_called")
    assert called["properties"]["$feature_flag_response"] is None
    assert called["properties"]["$feature_flag_error"] == "flag_missing"


def test_quota_limited_flags(server, client):
    server.faults.respond(
        200, body={"flags": {}, "quotaLimited": ["feature_flags"]}, paths="/decide"
    )
    answer = client.feature_flags("u")
    assert answer.quota_limited is True
    assert answer.flags == {}


def test_flag_errors_raise(server, client):
    server.faults.respond(500, times=10, paths="/decide")
    with pytest.raises(APIError, match="500"):
        client.feature_flags("u")
    with pytest.raises(ValueError, match="flag name"):
        client.feature_flag("", "u")
    with pytest.raises(TypeError, match="distinct_id"):
        client.feature_flags(None)  # type: ignore[arg-type]


def test_the_key_never_appears_in_errors_or_logs(server, all_logs, unused_port):
    server.faults.respond(401, body={"detail": f"invalid key {API_KEY}"})
    c = PostHogClient(API_KEY, server.url, retry_delay=0.01, retries=1)
    messages = [repr(c)]
    with pytest.raises(APIError) as info:
        c.capture("e", "u")
    messages += [str(info.value), repr(info.value), json.dumps(info.value.body)]
    server.faults.respond(503, times=5, paths="/decide")
    with pytest.raises(APIError) as info:
        c.feature_flags("u")
    messages += [str(info.value), repr(info.value)]
    down = PostHogClient(API_KEY, f"http://127.0.0.1:{unused_port}", retries=1, retry_delay=0.01)
    with pytest.raises(TransportError) as transport_info:
        down.capture("e", "u")
    messages += [str(transport_info.value), repr(transport_info.value.__cause__)]
    messages += [record.getMessage() for record in all_logs.records]
    assert len(all_logs.records) > 0
    for message in messages:
        assert API_KEY not in message


def test_echoed_answers_are_short_and_carry_no_secrets(server, all_logs):
    token = "hdr-Token-0123456789"
    c = PostHogClient(API_KEY, server.url, retries=0, headers={"X-Proxy-Auth": token})
    # An error page from a proxy: long, and echoing the key and our header.
    page = f"<html>{'x' * 50_000} key={API_KEY} auth={token} {'y' * 50_000}</html>"
    server.faults.respond(502, body=page)
    with pytest.raises(APIError) as info:
        c.capture("e", "u")
    assert len(info.value.body) < 400 and len(str(info.value)) < 400
    assert '"<html>xxx' in info.value.body and "100,0" in info.value.body  # and its size
    # Secrets as JSON keys, in the JSON PostHog's own errors use.
    server.faults.respond(401, body={API_KEY: "unknown project", "detail": f"bad {token}"})
    with pytest.raises(APIError) as keyed:
        c.capture("e", "u")
    assert keyed.value.body == {"[redacted]": "unknown project", "detail": "bad [redacted]"}
    # And in the one log line a failing flag service gives.
    flags = PostHogFlagProvider(c, send_feature_flag_events=False)
    server.faults.respond(500, body={API_KEY: page}, paths="/decide")
    assert flags.is_enabled("beta", "u", default=True) is True
    (warning,) = [r.getMessage() for r in all_logs.records if "flags unavailable" in r.getMessage()]
    assert len(warning) < 600
    shown = [str(info.value), repr(info.value), str(keyed.value), repr(keyed.value.body), warning]
    assert [text for text in shown if API_KEY in text or token in text] == []
    c.close()


def test_two_ids_differing_only_in_a_lone_surrogate_stay_two_people(server, client, json_backend):
    client.capture("e", "user\udc80")
    client.capture("e", "user?")
    assert sorted(e["distinct_id"] for e in server.events()) == ["user?", "user\ufffd"]


def test_one_client_shared_by_many_threads(server, client):
    errors = []

    def work(n):
        try:
            for i in range(25):
                client.capture("threaded", f"user-{n}", {"i": i})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({e["uuid"] for e in server.events("threaded")}) == 200
