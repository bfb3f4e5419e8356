"""The devserver over raw HTTP (the standard library's client, not ours)."""

from __future__ import annotations

import gzip
import http.client
import json
import time
import uuid
import zlib
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest

from posthog_otel.devserver import DevServer
from posthog_otel.devserver._capture import parse_time
from posthog_otel.devserver._definitions import load_flags
from posthog_otel.devserver._rules import load_rules


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


def test_unknown_routes_answer_posthogs_404_and_are_recorded(server):
    status, answer = request(server, "GET", "/array/phc_x/config")
    assert status == 404
    assert answer == {
        "type": "invalid_request",
        "code": "not_found",
        "detail": "the devserver does not speak GET /array/phc_x/config",
        "attr": None,
    }
    assert request(server, "POST", "/nope", b"{}")[0] == 404
    status, answer = request(server, "GET", "/batch/")
    assert (status, answer["code"]) == (405, "method_not_allowed")
    assert request(server, "HEAD", "/flags/") == (405, None)  # and no body, as HEAD wants
    request(server, "GET", "/api/events")  # the devserver's own routes are not recorded
    summary = request(server, "GET", "/api/requests")[1]
    assert summary["not_spoken"] == {
        "GET /array/phc_x/config": 1,
        "POST /nope": 1,
        "GET /batch": 1,
        "HEAD /flags": 1,
    }
    assert [r["method"] for r in summary["recent"]] == ["HEAD", "GET", "POST", "GET"]
    assert [r.status for r in server.requests.matching("/")] == [404, 404, 405, 405]


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


def evaluate(key, distinct_id, groups=None):
    """What the devserver answers for one flag (through its definitions)."""
    local = load_flags(FLAGS).local
    return local.decide(key, local.subject(distinct_id, groups=groups), server_side=True)


def test_rollout_and_variants_follow_the_percentages():
    users = [f"user-{i}" for i in range(2000)]
    on = sum(evaluate("thirty", u).value for u in users)
    assert 0.26 * 2000 < on < 0.34 * 2000
    variants = [evaluate("split", u).value for u in users]
    assert 0.45 * 2000 < variants.count("test") < 0.55 * 2000
    assert set(variants) == {"control", "test"}
    assert load_flags(FLAGS).local.flags["split"].payload("test") == {"price": 9}
    assert evaluate("thirty", "same") == evaluate("thirty", "same")


def test_group_flags_need_the_group():
    assert evaluate("org", "u").code == "no_group_type"
    assert evaluate("org", "u", {"company": "acme"}).value is True


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
    assert summary["by_status"] == {"200": 3}
    assert summary["not_spoken"] == {}
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


# -- hardening: nothing invalid is stored, every request gets an answer ------------------


def exchange(server, method, path, body=None, headers=None):
    """(status, headers, parsed JSON or text) for one request."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode()
    return response.status, dict(response.getheaders()), parsed


def batch_body(events) -> bytes:
    return json.dumps({"api_key": "k", "batch": events}).encode()


def test_one_invalid_event_refuses_the_whole_batch_naming_it(server):
    events = [event(f"e{i}") for i in range(100)]
    events[42] = {"distinct_id": "u", "properties": {}}
    status, _, answer = exchange(server, "POST", "/batch/", batch_body(events))
    assert status == 400
    assert answer["code"] == "missing_event_name"
    assert answer["attr"] == "batch[42].event"
    assert answer["detail"].startswith("batch[42]: ")
    assert server.events() == []


@pytest.mark.parametrize(
    ("raw_event", "code", "attr"),
    [
        ('{"event": "\\ud800", "distinct_id": "u"}', "invalid_string", "batch[7].event"),
        ('{"event": "e", "distinct_id": "u\\udfff"}', "invalid_string", "batch[7].distinct_id"),
        ('{"event": "e", "distinct_id": "u", "properties": {"x": NaN}}', "invalid_number", None),
        (
            '{"event": "e", "distinct_id": "u", "properties": {"x": -Infinity}}',
            "invalid_number",
            None,
        ),
        ('{"event": "e", "distinct_id": "u", "properties": {"x": 1e999}}', "invalid_number", None),
    ],
    ids=["lone-surrogate-name", "lone-surrogate-id", "nan", "infinity", "overflow"],
)
def test_values_a_reader_would_choke_on_are_refused(server, raw_event, code, attr):
    fine = json.dumps(event())
    body = '{"api_key": "k", "batch": [' + ", ".join([fine] * 7 + [raw_event] + [fine] * 92) + "]}"
    status, _, answer = exchange(server, "POST", "/batch/", body.encode())
    assert (status, answer["code"]) == (400, code)
    assert answer["attr"] == (attr or "batch[7].properties.x")
    assert server.events() == []
    # The server is unharmed, and what it lists stays valid JSON.
    assert exchange(server, "POST", "/batch/", batch_body([event("after")]))[0] == 200
    raw = exchange(server, "GET", "/api/events")[2]
    assert [e["event"] for e in raw] == ["after"]


def test_flag_requests_are_held_to_the_same_rules(server):
    server.set_flags({"on": True})
    body = b'{"api_key": "k", "distinct_id": "\\ud800"}'
    status, _, answer = exchange(server, "POST", "/flags/?v=2", body)
    assert (status, answer["attr"]) == (400, "distinct_id")


@pytest.mark.parametrize("depth", [200, 100_000])
def test_excessive_nesting_is_refused(server, depth):
    nested = "[" * depth + "]" * depth
    body = (
        '{"api_key": "k", "batch": [{"event": "e", "distinct_id": "u", "properties": {"x": '
        + nested
        + "}}]}"
    )
    status, _, answer = exchange(server, "POST", "/batch/", body.encode())
    assert (status, answer["code"]) == (400, "too_deep")
    assert server.events() == []


def test_moderate_nesting_is_stored(server):
    nested = json.loads("[" * 100 + "]" * 100)
    assert (
        exchange(server, "POST", "/batch/", batch_body([event(properties={"x": nested})]))[0] == 200
    )
    assert server.events()[0]["properties"]["x"] == nested


def raw_exchange(server, data: bytes, wait: float = 10.0) -> bytes:
    """Send ``data`` on a bare socket and read until the server closes (or ``wait``)."""
    import socket

    with socket.create_connection((server.host, server.port), timeout=wait) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_a_declared_length_over_the_limit_is_refused_before_reading(server):
    head = b"POST /batch/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n"
    answer = raw_exchange(server, head + b'{"api_key": "k"')
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"code": "payload_too_large"' in answer
    assert [r.status for r in server.requests.matching("/batch")] == [413]


def test_a_stalled_upload_times_out_with_408():
    with DevServer(read_timeout=0.3) as server:
        head = b"POST /batch/ HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n"
        # The body never comes: the server answers within its read timeout and hangs up.
        answer = raw_exchange(server, head + b'{"api_key"', wait=10)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert server.events() == []


def test_an_idle_connection_is_closed_after_the_read_timeout():
    with DevServer(read_timeout=0.3) as server:
        assert raw_exchange(server, b"", wait=10) == b""  # closed, not held forever


def trickle(
    server, data: bytes, interval: float, give_up: float, head: bytes = b""
) -> tuple[bytes, float]:
    """Send ``head`` at once, then ``data`` one byte per ``interval`` on a bare socket until
    the server answers or hangs up; (what it said, seconds from the first byte). Gives up
    after ``give_up``."""
    import select
    import socket

    with socket.create_connection((server.host, server.port), timeout=give_up) as sock:
        start = time.monotonic()
        received = b""
        sock.sendall(head)
        for i in range(len(data)):
            if time.monotonic() - start > give_up:
                break
            try:
                sock.sendall(data[i : i + 1])
            except OSError:  # the server hung up on us: what we wait for
                break
            readable, _, _ = select.select([sock], [], [], interval)
            if readable:
                break
        sock.settimeout(max(give_up - (time.monotonic() - start), 0.1))
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received, time.monotonic() - start


def test_a_trickled_upload_is_cut_off_after_the_read_timeout_in_all():
    """Each byte comes well within the read timeout, but the request as a whole must too."""
    with DevServer(read_timeout=0.5) as server:
        head = b"POST /batch/ HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n"
        answer, seconds = trickle(server, b"{" * 200, interval=0.05, give_up=8, head=head)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert seconds < 3, seconds  # 0.5 s allowed; 200+ bytes at 0.05 s would take 13 s
        assert server.events() == []


def test_trickled_headers_are_cut_off_after_the_read_timeout_in_all():
    with DevServer(read_timeout=0.5) as server:
        head = b"GET /api/events HTTP/1.1\r\n" + b"X-Slow: " + b"a" * 300 + b"\r\n\r\n"
        answer, seconds = trickle(server, head, interval=0.05, give_up=8)
        assert answer == b""  # closed without an answer
        assert seconds < 3, seconds


def test_a_request_that_arrives_in_time_after_a_quiet_spell_is_answered():
    """The clock starts at a request's first byte: an idle keep-alive spell (under the
    read timeout) costs the next request nothing."""
    with DevServer(read_timeout=1.0) as server:
        parts = urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        for _ in range(2):
            conn.request("GET", "/api/requests")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            time.sleep(0.7)  # quiet, but less than the read timeout
        conn.close()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/events", None),
        ("GET", "/api/requests", None),
        ("GET", "/", None),
        ("POST", "/batch/", batch_body([event()])),
        ("POST", "/decide/?v=4", json.dumps({"api_key": "k", "distinct_id": "u"}).encode()),
        ("GET", "/no/such/route", None),
    ],
)
def test_every_answer_forbids_content_sniffing(server, method, path, body):
    _, headers, _ = exchange(server, method, path, body)
    assert headers.get("X-Content-Type-Options") == "nosniff", (path, headers)
    assert list(headers).count("X-Content-Type-Options") == 1


@pytest.mark.parametrize(
    ("encoding", "body", "status"),
    [
        ("deflate", zlib.compress(batch_body([event()])), 200),
        ("gzip", gzip.compress(batch_body([event()]))[:-12], 400),  # cut short
        ("zstd", b"(\xb5/\xfd", 415),
    ],
)
def test_content_encodings(server, encoding, body, status):
    assert exchange(server, "POST", "/batch/", body, {"Content-Encoding": encoding})[0] == status


def test_a_route_that_breaks_still_answers_500():
    server = DevServer().start()
    try:
        server.store.close()  # a broken database: every write fails
        status, _, answer = exchange(server, "POST", "/batch/", batch_body([event()]))
        assert (status, answer["code"]) == (500, "server_error")
    finally:
        server.stop()


def test_capture_answers_any_origin_but_the_events_api_none(server):
    origin = {"Origin": "http://shop.localhost:3000"}
    _, headers, _ = exchange(server, "POST", "/e/", batch_body([event()]), origin)
    assert headers["Access-Control-Allow-Origin"] == "http://shop.localhost:3000"
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    status, headers, _ = exchange(server, "OPTIONS", "/batch/", None, preflight)
    assert (status, headers["Access-Control-Allow-Origin"]) == (204, origin["Origin"])
    for path in ("/api/events", "/api/requests", "/"):
        _, headers, _ = exchange(server, "GET", path, None, {"Origin": "http://evil.example"})
        assert not any(h.lower().startswith("access-control") for h in headers), path
    _, headers, _ = exchange(server, "OPTIONS", "/api/events", None, preflight)
    assert "Access-Control-Allow-Origin" not in headers


def test_a_404_reaches_a_browser_as_a_404_not_a_cors_failure(server):
    """posthog-js on a page asks for what the devserver does not serve (its lazy bundles
    under /static/, recordings at /s/): without CORS headers the browser hides the 404."""
    origin = {"Origin": "http://shop.localhost:3000"}
    for method, path in (("GET", "/static/recorder.js"), ("POST", "/s/?compression=gzip-js")):
        status, headers, _ = exchange(server, method, path, gzip.compress(b"{}"), origin)
        assert (status, headers.get("Access-Control-Allow-Origin")) == (404, origin["Origin"])
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    status, headers, _ = exchange(server, "OPTIONS", "/s/", None, preflight)
    assert (status, headers.get("Access-Control-Allow-Origin")) == (404, origin["Origin"])
    # The devserver's own paths still answer other origins nothing.
    _, headers, _ = exchange(server, "POST", "/api/events", b"{}", origin)
    assert "Access-Control-Allow-Origin" not in headers
    _, headers, _ = exchange(server, "GET", "/static/x.js")  # no Origin: no CORS headers
    assert "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example", 403),
        ("evil.example:8010", 403),
        ("localhost:8010", 200),
        ("[::1]:8010", 200),
    ],
)
def test_the_events_api_answers_only_to_its_own_host(server, host, status):
    # A page on a domain re-pointed at 127.0.0.1 (DNS rebinding) would be same-origin.
    assert exchange(server, "GET", "/api/events", None, {"Host": host})[0] == status


def test_the_viewer_page_allows_only_its_own_scripts(server):
    status, headers, _ = exchange(server, "GET", "/")
    assert status == 200
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    for path, kind in (
        ("/viewer.js", "javascript"),
        ("/viewer.css", "css"),
        ("/favicon.svg", "svg"),
    ):
        status, headers, _ = exchange(server, "GET", path)
        assert (status, kind in headers["Content-Type"]) == (200, True)


# -- the routes PostHog's SDKs call ---------------------------------------------------------

V1_HEADERS = {
    "Authorization": "Bearer phc_v1",
    "PostHog-Sdk-Info": "posthog-go/1.6.0",
    "Content-Type": "application/json",
}


def v1_event(**extra):
    return {
        "event": "e",
        "uuid": str(uuid.uuid4()),
        "distinct_id": "u",
        "timestamp": "2026-05-01T10:00:00.123456789Z",
        "options": {},
        "properties": {},
        **extra,
    }


def test_capture_v1_stores_events_as_posthog_would(server):
    first = v1_event(
        event="signed_up",
        session_id="s-1",
        options={"process_person_profile": False, "disable_skew_correction": True},
        properties={"plan": "pro", "$set": {"email": "a@b.c"}},
    )
    second = v1_event(event="page_viewed")
    body = {"created_at": "2026-05-01T10:00:01Z", "batch": [first, second]}
    status, _, answer = exchange(
        server, "POST", "/i/v1/analytics/events", json.dumps(body), V1_HEADERS
    )
    assert status == 200
    assert answer == {
        "results": {first["uuid"]: {"result": "ok"}, second["uuid"]: {"result": "ok"}}
    }
    stored = {e["event"]: e for e in server.events()}
    assert stored["signed_up"]["uuid"] == first["uuid"]
    assert stored["signed_up"]["properties"] == {
        "plan": "pro",
        "$set": {"email": "a@b.c"},
        "$lib": "posthog-go",
        "$lib_version": "1.6.0",
        "$process_person_profile": False,
        "$ignore_sent_at": True,
        "$session_id": "s-1",
    }


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"headers": {"Authorization": ""}}, 401, "missing_api_key"),
        ({"headers": {"PostHog-Sdk-Info": ""}}, 400, "missing_sdk_info"),
        ({"event": {"uuid": None}}, 400, "missing_uuid"),
        ({"event": {"options": {"process_person_profile": "no"}}}, 400, "invalid_payload"),
        ({"event": {"session_id": 5}}, 400, "invalid_payload"),
        ({"body": {"created_at": "yesterday"}}, 400, "invalid_payload"),
    ],
)
def test_capture_v1_refuses_what_posthog_refuses(server, change, status, code):
    events = [v1_event(), {**v1_event(), **change.get("event", {})}]
    body = {"created_at": "2026-05-01T10:00:01Z", "batch": events, **change.get("body", {})}
    headers = {**V1_HEADERS, **change.get("headers", {})}
    got, _, answer = exchange(server, "POST", "/i/v1/analytics/events", json.dumps(body), headers)
    assert (got, answer["code"]) == (status, code)
    assert server.events() == []


def test_the_ai_lane_takes_events_over_a_megabyte(server):
    big = event("$ai_generation", properties={"$ai_input": "x" * (2 * 1024 * 1024)})
    assert exchange(server, "POST", "/batch/", batch_body([big]))[0] == 413
    assert exchange(server, "POST", "/i/v0/ai/batch/", batch_body([big]))[0] == 200
    assert [e["event"] for e in server.events()] == ["$ai_generation"]


def test_browser_style_bodies(server):
    import base64

    data = base64.b64encode(json.dumps([{**event("from_form"), "token": "k"}]).encode())
    form = b"data=" + data.replace(b"+", b"%2B").replace(b"=", b"%3D")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert exchange(server, "POST", "/e/?compression=base64", form, headers)[0] == 200
    offset = {**event("with_offset"), "api_key": "k", "offset": 60_000}
    assert exchange(server, "POST", "/e/?beacon=1", json.dumps(offset))[:1] == (204,)
    stored = {e["event"]: e for e in server.events()}
    assert set(stored) == {"from_form", "with_offset"}
    age = datetime.now(timezone.utc) - parse_time(stored["with_offset"]["timestamp"])
    assert 50 < age.total_seconds() < 70  # a minute ago, as the offset said


def test_flags_v4_records_carry_a_typed_value(server):
    server.set_flags(FLAGS)
    body = {"api_key": "k", "distinct_id": "user-1"}
    flags = request(server, "POST", "/flags/?v=4", body)[1]["flags"]
    assert flags["on"]["value"] is True
    assert flags["off"]["value"] is False
    assert flags["fixed"]["value"] == "variant-b"
    assert "value" not in request(server, "POST", "/flags/?v=2", body)[1]["flags"]["on"]
    answer = request(server, "POST", "/flags/?v=2&config=true", body)[1]
    assert answer["supportedCompression"] == ["gzip", "gzip-js"]


def test_remote_config_answers_a_flags_payload_as_json_text(server):
    server.set_flags(FLAGS)
    secret = {"Authorization": "Bearer phx_secret"}
    path = "/api/projects/@current/feature_flags/{}/remote_config?token=phc_k"
    status, _, answer = exchange(server, "GET", path.format("payload-flag"), None, secret)
    assert (status, json.loads(answer)) == (200, {"color": "blue"})
    assert exchange(server, "GET", path.format("on"), None, secret)[2] is None
    assert exchange(server, "GET", path.format("nope"), None, secret)[0] == 404
    assert exchange(server, "GET", path.format("payload-flag"))[0] == 401
    server.api_key = "phc_right"
    assert exchange(server, "GET", path.format("payload-flag"), None, secret)[0] == 401


@pytest.mark.parametrize("path", ["/i/v1/logs", "/i/v1/traces", "/i/v1/metrics", "/i/v0/ai/otel"])
def test_otlp_data_is_checked_and_recorded(server, path):
    as_json = {"Content-Type": "application/json", "Authorization": "Bearer phc_k"}
    assert exchange(server, "POST", path, b'{"resourceLogs": []}', as_json)[::2] == (200, {})
    protobuf = {"Content-Type": "application/x-protobuf"}
    status, headers, _ = exchange(server, "POST", path + "?token=phc_k", b"\x0a\x00", protobuf)
    assert (status, headers["Content-Type"]) == (200, "application/x-protobuf")
    assert exchange(server, "POST", path, b"{}", {"Content-Type": "application/json"})[0] == 401
    assert exchange(server, "POST", path, b"{NaN", as_json)[0] == 400
    assert [r.status for r in server.requests.matching(path)] == [200, 200, 401, 400]
    assert server.events() == []


def test_events_api_filters_on_the_server_over_every_event(server):
    early = [event("checkout_started", f"user-{i}", properties={"n": i}) for i in range(600)]
    request(server, "POST", "/batch/", {"api_key": "k", "batch": early})
    request(server, "POST", "/batch/", {"api_key": "k", "batch": [event("Other_Event", "Zed")]})
    status, headers, found = exchange(
        server, "GET", "/api/events?distinct_id_contains=USER-7&limit=5"
    )
    assert status == 200
    assert headers["X-Total-Count"] == "11"  # user-7, user-70..79: beyond the newest 500
    assert len(found) == 5
    assert {e["distinct_id"] for e in found} <= {"user-7", *(f"user-7{i}" for i in range(10))}
    assert (
        exchange(server, "GET", "/api/events?event_contains=other_")[2][0]["event"] == "Other_Event"
    )
    assert exchange(server, "GET", "/api/events?q=%22n%22%3A599")[1]["X-Total-Count"] == "1"
    assert exchange(server, "GET", "/api/events?q=100%25")[2] == []  # % is literal, not a wildcard


def test_events_api_orders_by_event_time_or_arrival(server):
    times = ["2026-01-01T10:00:02Z", "2026-01-01T12:00:00+02:00", "2026-01-01T10:00:03.5Z"]
    batch = [event(f"e{i}", timestamp=t) for i, t in enumerate(times)]
    request(server, "POST", "/batch/", {"api_key": "k", "batch": batch})
    by_time = exchange(server, "GET", "/api/events?order=time")[2]
    assert [e["event"] for e in by_time] == ["e2", "e0", "e1"]  # 12:00+02:00 is 10:00 UTC
    by_arrival = exchange(server, "GET", "/api/events?order=arrival")[2]
    assert [e["event"] for e in by_arrival] == ["e2", "e1", "e0"]


def test_events_api_selects_a_trace(server):
    batch = [
        event("a", properties={"$trace_id": "t1"}),
        event("b", properties={"$ai_trace_id": "t1"}),
        event("c", properties={"$trace_id": "t2"}),
    ]
    request(server, "POST", "/batch/", {"api_key": "k", "batch": batch})
    assert [e["event"] for e in exchange(server, "GET", "/api/events?trace_id=t1")[2]] == ["b", "a"]


def test_an_event_sent_again_is_stored_once_and_its_repeats_counted(server):
    """A batch retried because its answer was lost carries the same uuids: PostHog keeps
    one row per uuid, event and distinct_id, and so does the devserver, counting the rest."""
    same = "0190e7c4-0000-7000-8000-00000000000a"
    other = "0190e7c4-0000-7000-8000-00000000000b"
    batch = [event("paid", uuid=same), event("paid", uuid=other, properties={"n": 1})]
    for _ in range(3):
        assert request(server, "POST", "/batch/", {"api_key": "k", "batch": batch})[0] == 200
    assert (
        request(server, "POST", "/capture/", {"api_key": "k", **event("paid", uuid=same)})[0] == 200
    )
    # The same uuid for another event, or another person, is not a repeat: PostHog keeps both.
    request(server, "POST", "/batch/", {"api_key": "k", "batch": [event("refunded", uuid=same)]})
    request(server, "POST", "/batch/", {"api_key": "k", "batch": [event("paid", "v", uuid=same)]})
    stored = server.events()
    assert sorted((e["event"], e["distinct_id"]) for e in stored) == [
        ("paid", "u"),
        ("paid", "u"),
        ("paid", "v"),
        ("refunded", "u"),
    ]
    assert server.repeats() == {same: 3, other: 2}
    assert request(server, "GET", "/api/requests")[1]["repeated_events"] == 5
    assert exchange(server, "GET", "/api/events?event=paid")[1]["X-Total-Count"] == "3"
    server.clear()
    assert server.repeats() == {}
    assert request(server, "GET", "/api/requests")[1]["repeated_events"] == 0


def test_a_file_from_the_first_release_is_upgraded(tmp_path):
    import sqlite3

    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as old:
        old.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL,"
            " event TEXT NOT NULL, distinct_id TEXT NOT NULL, timestamp TEXT NOT NULL,"
            " properties TEXT NOT NULL)"
        )
        for _ in range(3):  # it stored repeats as rows: now one row, two repeats
            old.execute(
                "INSERT INTO events (uuid, event, distinct_id, timestamp, properties) VALUES"
                " ('0190e7c4-0000-7000-8000-000000000000', 'kept', 'u', '2026-01-01T00:00:00Z',"
                ' \'{"$trace_id": "t9"}\')'
            )
    old.close()
    with DevServer(db=db) as server:
        found = exchange(server, "GET", "/api/events?trace_id=t9&order=time")[2]
        assert [e["event"] for e in found] == ["kept"]
        assert server.repeats() == {"0190e7c4-0000-7000-8000-000000000000": 2}


@pytest.mark.parametrize(
    ("document", "attr"),
    [
        (b'{"batch": [{}, {"properties": {"odd key": NaN}}]}', 'batch[1].properties["odd key"]'),
        (b"[1, 2, [3, Infinity]]", "[2][1]"),
        (b'{"a": "fine", "b": ["\\udc00"]}', "b[0]"),
        (b'{"\\ud800": 1}', None),
    ],
)
def test_strict_json_names_the_part_it_refuses(document, attr):
    from posthog_otel.devserver._wire import RejectError, parse_json

    with pytest.raises(RejectError) as refused:
        parse_json(document)
    assert (refused.value.status, refused.value.attr) == (400, attr)
