"""The devserver over raw HTTP (the standard library's client, not ours)."""

from __future__ import annotations

import gzip
import http.client
import json
import time
import uuid
from urllib.parse import urlsplit

import pytest

from posthog_otel.devserver import DevServer
from posthog_otel.devserver._rules import evaluate, load_rules


def request(server, method, path, body=None, headers=None):
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=headers or {})
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode()


def event(name="e", distinct_id="u", **extra):
    return {"event": name, "distinct_id": distinct_id, "properties": {}, **extra}


def test_batch_single_and_gzip_bodies_are_stored(server):
    assert request(
        server, "POST", "/batch/", {"api_key": "k", "batch": [event("a"), event("b")]}
    ) == (
        200,
        {"status": 1},
    )
    assert request(server, "POST", "/capture/", {"api_key": "k", **event("c")})[0] == 200
    assert request(server, "POST", "/i/v0/e/", {"api_key": "k", **event("d")})[0] == 200
    zipped = gzip.compress(json.dumps({"api_key": "k", "batch": [event("z")]}).encode())
    assert request(server, "POST", "/e/", zipped, {"Content-Encoding": "gzip"})[0] == 200
    assert request(server, "POST", "/batch?compression=gzip-js", zipped)[0] == 200
    assert [e["event"] for e in server.events()] == ["z", "z", "d", "c", "b", "a"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"batch": [event()]}, 401, "missing_api_key"),
        ({"api_key": "", "batch": [event()]}, 401, "missing_api_key"),
        ({"api_key": "k", "batch": []}, 400, "empty_batch"),
        ({"api_key": "k", "batch": [{"distinct_id": "u"}]}, 400, "missing_event_name"),
        ({"api_key": "k", "batch": [{"event": "", "distinct_id": "u"}]}, 400, "missing_event_name"),
        ({"api_key": "k", "batch": [{"event": "e"}]}, 400, "missing_distinct_id"),
        (
            {"api_key": "k", "batch": [{"event": "e", "distinct_id": ""}]},
            400,
            "missing_distinct_id",
        ),
        ({"api_key": "k", "batch": [event(uuid="nope")]}, 400, "invalid_uuid"),
        ({"api_key": "k", "batch": [event(properties=[1])]}, 400, "invalid_payload"),
    ],
)
def test_capture_validation(server, body, status, code):
    got_status, answer = request(server, "POST", "/batch/", body)
    assert (got_status, answer["code"]) == (status, code)
    assert server.events() == []


def test_invalid_json_and_gzip(server):
    assert request(server, "POST", "/batch/", b"{not json")[0] == 400
    assert (
        request(server, "POST", "/batch/", b"\x1f\x8bnot gzip", {"Content-Encoding": "gzip"})[0]
        == 400
    )


def test_size_limits(server):
    big = {"api_key": "k", **event(properties={"blob": "x" * (2 * 1024 * 1024)})}
    assert request(server, "POST", "/capture/", big)[0] == 413
    too_big_event = {
        "api_key": "k",
        "batch": [event(properties={"blob": "x" * (1024 * 1024 + 10)})],
    }
    assert request(server, "POST", "/batch/", too_big_event)[0] == 413
    bomb = gzip.compress(b"[" + b" " * (21 * 1024 * 1024) + b"]")
    assert request(server, "POST", "/batch/", bomb, {"Content-Encoding": "gzip"})[0] == 413
    assert server.events() == []


def test_a_configured_key_is_enforced(server):
    server.api_key = "phc_right"
    assert (
        request(server, "POST", "/batch/", {"api_key": "phc_wrong", "batch": [event()]})[0] == 401
    )
    assert (
        request(server, "POST", "/batch/", {"api_key": "phc_right", "batch": [event()]})[0] == 200
    )
    assert (
        request(server, "POST", "/decide/?v=4", {"api_key": "phc_wrong", "distinct_id": "u"})[0]
        == 401
    )


def test_stored_shape_uuid_and_distinct_id_rules(server):
    given = str(uuid.uuid4())
    request(
        server,
        "POST",
        "/batch/",
        {
            "api_key": "k",
            "batch": [
                event(
                    "kept",
                    "x" * 300,
                    uuid=given,
                    timestamp="2026-01-01T00:00:00Z",
                    properties={"a": 1},
                ),
                {"event": "from_props", "properties": {"$distinct_id": "p1"}},
                {"event": "numeric", "distinct_id": 42},
            ],
        },
    )
    numeric, from_props, kept = server.events()
    assert kept == {
        "uuid": given,
        "event": "kept",
        "distinct_id": "x" * 200,
        "timestamp": "2026-01-01T00:00:00Z",
        "properties": {"a": 1},
    }
    assert from_props["distinct_id"] == "p1"
    assert numeric["distinct_id"] == "42"
    assert uuid.UUID(numeric["uuid"])


def test_events_api_filters_newest_first(server):
    request(
        server,
        "POST",
        "/batch/",
        {
            "api_key": "k",
            "batch": [event("a", "u1"), event("b", "u2"), event("a", "u2"), event("c", "u1")],
        },
    )
    status, everything = request(server, "GET", "/api/events")
    assert status == 200
    assert [e["event"] for e in everything] == ["c", "a", "b", "a"]
    assert [e["event"] for e in request(server, "GET", "/api/events?event=a")[1]] == ["a", "a"]
    assert [e["distinct_id"] for e in request(server, "GET", "/api/events?distinct_id=u2")[1]] == [
        "u2",
        "u2",
    ]
    assert len(request(server, "GET", "/api/events?limit=1")[1]) == 1
    oldest = everything[-1]["uuid"]
    after = request(server, "GET", f"/api/events?after={oldest}")[1]
    assert [e["event"] for e in after] == ["c", "a", "b"]
    assert server.events("a", "u2")[0]["distinct_id"] == "u2"


def test_unknown_routes(server):
    assert request(server, "GET", "/nope")[0] == 404
    assert request(server, "POST", "/nope", b"{}")[0] == 404


FLAGS = {
    "on": True,
    "off": False,
    "fixed": "variant-b",
    "payload-flag": {"payload": {"color": "blue"}},
    "split": {"variants": {"control": 50, "test": 50}, "payloads": {"test": {"price": 9}}},
    "thirty": {"rollout_percentage": 30},
    "org": {"group_type": "company"},
}


@pytest.mark.parametrize(
    ("path", "detailed"),
    [
        ("/decide/?v=4", True),
        ("/flags/?v=2", True),
        ("/decide/?v=3", False),
        ("/flags/", False),
        ("/decide/", False),
    ],
)
def test_flag_routes_answer_in_the_right_shape(server, path, detailed):
    server.set_flags(FLAGS)
    status, answer = request(server, "POST", path, {"api_key": "k", "distinct_id": "user-1"})
    assert status == 200
    if detailed:
        flags = answer["flags"]
        assert flags["on"]["enabled"] is True
        assert flags["off"]["enabled"] is False
        assert flags["fixed"]["variant"] == "variant-b"
        assert json.loads(flags["payload-flag"]["metadata"]["payload"]) == {"color": "blue"}
        assert flags["on"]["metadata"]["id"] == 1
        assert answer["requestId"]
    else:
        assert answer["featureFlags"]["on"] is True
        assert answer["featureFlags"]["fixed"] == "variant-b"
        assert json.loads(answer["featureFlagPayloads"]["payload-flag"]) == {"color": "blue"}


def test_flag_requests_need_a_key_and_a_distinct_id(server):
    assert request(server, "POST", "/decide/?v=4", {"distinct_id": "u"})[0] == 401
    assert request(server, "POST", "/decide/?v=4", {"api_key": "k"})[0] == 400


def test_flag_keys_to_evaluate_limits_the_answer(server):
    server.set_flags(FLAGS)
    body = {"api_key": "k", "distinct_id": "u", "flag_keys_to_evaluate": ["on", "missing"]}
    assert list(request(server, "POST", "/flags/?v=2", body)[1]["flags"]) == ["on"]


def test_rollout_and_variants_follow_the_percentages():
    rules = load_rules(FLAGS)
    users = [f"user-{i}" for i in range(2000)]
    on = sum(evaluate(rules["thirty"], u, {}).enabled for u in users)
    assert 0.26 * 2000 < on < 0.34 * 2000
    variants = [evaluate(rules["split"], u, {}).variant for u in users]
    assert 0.45 * 2000 < variants.count("test") < 0.55 * 2000
    result = next(
        evaluate(rules["split"], u, {})
        for u in users
        if evaluate(rules["split"], u, {}).variant == "test"
    )
    assert result.payload == {"price": 9}
    assert evaluate(rules["thirty"], "same", {}) == evaluate(rules["thirty"], "same", {})


def test_group_flags_need_the_group():
    rule = load_rules(FLAGS)["org"]
    assert evaluate(rule, "u", {}).code == "no_group_type"
    assert evaluate(rule, "u", {"company": "acme"}).enabled is True


@pytest.mark.parametrize(
    "bad",
    [
        {"f": 3},
        {"f": {"rollout_percentage": 120}},
        {"f": {"variants": {"a": 60, "b": 60}}},
        {"f": {"payloads": {"nope": 1}}},
        {"f": {"unknown_field": 1}},
        {"": True},
        ["not", "a", "mapping"],
    ],
)
def test_bad_flag_rules_are_refused(bad):
    with pytest.raises(ValueError, match="flag"):
        load_rules(bad)


def test_flags_file(tmp_path):
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"from-file": True}))
    assert list(load_rules(str(path))) == ["from-file"]
    with pytest.raises(ValueError, match="cannot read"):
        load_rules(str(tmp_path / "missing.json"))


def test_restart_keeps_port_and_events():
    with DevServer() as server:
        request(server, "POST", "/batch/", {"api_key": "k", "batch": [event()]})
        port = server.port
        server.stop()
        with pytest.raises(ConnectionRefusedError):
            request(server, "GET", "/api/events")
        server.start()
        assert server.port == port
        assert len(request(server, "GET", "/api/events")[1]) == 1


def test_events_kept_in_a_file(tmp_path):
    db = tmp_path / "events.sqlite"
    with DevServer(db=db) as server:
        request(server, "POST", "/batch/", {"api_key": "k", "batch": [event("persisted")]})
    with DevServer(db=db) as again:
        assert [e["event"] for e in again.events()] == ["persisted"]


def test_wait_for_events_times_out_with_the_count(server):
    with pytest.raises(TimeoutError, match="found 0"):
        server.wait_for_events(1, timeout=0.2)


def test_faults_apply_in_order_only_to_posthog_routes(server):
    server.faults.respond(503, times=2, paths="/batch")
    body = {"api_key": "k", "batch": [event()]}
    assert request(server, "GET", "/api/events")[0] == 200
    assert request(server, "POST", "/capture/", {"api_key": "k", **event()})[0] == 200
    assert request(server, "POST", "/batch/", body)[0] == 503
    assert request(server, "POST", "/batch/", body)[0] == 503
    assert request(server, "POST", "/batch/", body)[0] == 200
    server.faults.respond(500, after=1)
    assert request(server, "POST", "/batch/", body)[0] == 200
    assert request(server, "POST", "/batch/", body)[0] == 500
    with pytest.raises(ValueError, match="times"):
        server.faults.respond(500, times=0)


def test_requests_api_counts_by_route(server):
    request(server, "POST", "/decide/?v=4", {"api_key": "k", "distinct_id": "u"})
    request(server, "POST", "/decide/?v=4", {"api_key": "k", "distinct_id": "u"})
    request(server, "POST", "/batch/", {"api_key": "k", "batch": [event()]})
    status, summary = request(server, "GET", "/api/requests")
    assert status == 200
    assert summary["by_path"] == {"/decide": 2, "/batch": 1}
    assert summary["total"] == 3
    assert summary["recent"][0] == {"method": "POST", "path": "/batch/", "status": 200}


@pytest.mark.parametrize("whole", [False, True])
def test_trickle_sends_the_real_answer_slowly(server, whole):
    server.faults.trickle(bytes_per_second=200 if whole else 40, whole=whole, paths="/batch")
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    started = time.monotonic()
    conn.request("POST", "/batch/", body=json.dumps({"api_key": "k", "batch": [event()]}))
    response = conn.getresponse()
    headers_after = time.monotonic() - started
    body = response.read()
    took = time.monotonic() - started
    conn.close()
    assert (response.status, json.loads(body)) == (200, {"status": 1})
    assert len(server.events()) == 1  # answered normally, only slowly
    if whole:  # ~150 bytes of status line and headers at 200 bytes a second
        assert headers_after >= 0.5
    else:  # headers at once, then 13 bytes of body at 40 bytes a second
        assert headers_after < 0.25 <= took
    with pytest.raises(ValueError, match="bytes_per_second"):
        server.faults.trickle(bytes_per_second=0)
