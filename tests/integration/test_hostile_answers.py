"""Hostile answers against real servers on 127.0.0.1: gzip bombs and oversized bodies
(peak memory measured in a child process), servers that echo our keys, and keys from
a secrets file with a newline on the end."""

from __future__ import annotations

import http.client
import json
import logging
import os
import subprocess
import sys
import zlib

import pytest

from posthog_otel import (
    APIError,
    ConfigurationError,
    PostHogClient,
    PostHogFlagProvider,
    ResponseTooLargeError,
    TransportError,
)
from posthog_otel import _limits as limits
from posthog_otel._client.client import connection_of
from posthog_otel._client.transport import Transport
from posthog_otel.devserver import DevServer

SECRET = "phs_Hostile_Secret_0123456789"
API_KEY = "phc_Hostile_Api_Key_0123456789"
MIB = 1024 * 1024
BOMB_INFLATED = 256 * MIB  # about 250 KB of gzip; today's main holds it all, twice over
RSS_BOUND = 50 * MIB  # what one bomb may add to a process's peak memory


def gzip_of_zeros(size: int) -> bytes:
    """``size`` zero bytes as gzip, made a megabyte at a time (never held whole)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    parts = [packer.compress(zeros[: min(MIB, size - done)]) for done in range(0, size, MIB)]
    return b"".join([*parts, packer.flush()])


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_of_zeros(BOMB_INFLATED)


# -- bombs, measured in a child process -------------------------------------------------

CHILD = r"""
import json, sys, time

def peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

kind, url = sys.argv[1], sys.argv[2]
from opentelemetry.sdk.trace import TracerProvider
from posthog_otel import PostHogClient, PostHogFlagProvider, PostHogSpanProcessor

client = PostHogClient("phc_child", url, timeout=10, retries=0)
client.capture("warm-up", "u")  # the request path's imports and buffers, before measuring
before = peak()
if kind == "poller":
    provider = PostHogFlagProvider(client, secret_key="phs_child", poll_interval=60)
    deadline = time.monotonic() + 60
    while provider.definitions_status().failing_since is None and time.monotonic() < deadline:
        time.sleep(0.01)
    status = provider.definitions_status()
    outcome = {"failing": status.failing_since is not None, "error": status.error,
               "loaded": status.loaded, "polls": status.polls}
    provider.shutdown(5)
elif kind == "flags":
    try:
        client.feature_flags("u")
        outcome = {"error": None}
    except Exception as exc:
        outcome = {"error": type(exc).__name__, "message": str(exc),
                   "limit": getattr(exc, "limit", None)}
else:
    processor = PostHogSpanProcessor(client)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tags = {"posthog.event": "bombed", "posthog.distinct_id": "u"}
    with provider.get_tracer("t").start_as_current_span("s", attributes=tags):
        pass
    processor.force_flush(30_000)
    stats = processor.stats()
    outcome = {"sent": stats.events_sent, "dropped": dict(stats.dropped)}
    provider.shutdown()
print(json.dumps({**outcome, "before": before, "after": peak()}))
"""


def run_child(kind: str, url: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind, url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "POSTHOG_FLUSH_ON_SIGTERM": "false"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    grown = (result["after"] - result["before"]) / MIB
    print(f"\n{kind}: peak RSS {result['before'] / MIB:.0f} MiB -> {result['after'] / MIB:.0f} MiB")
    print(f"{kind}: +{grown:.1f} MiB for a {len(BOMB_BYTES_SEEN)} byte gzip bomb")
    return result


BOMB_BYTES_SEEN: bytes = b""


@pytest.fixture
def armed(server: DevServer, bomb: bytes):
    """Arm the devserver to answer the bomb (``Content-Encoding: gzip``) on ``path``."""
    global BOMB_BYTES_SEEN
    BOMB_BYTES_SEEN = bomb

    def arm(path: str) -> None:
        server.faults.respond(
            200, body=bomb, headers={"Content-Encoding": "gzip"}, paths=path, times=3
        )

    return arm


def test_a_gzip_bomb_of_definitions_is_a_failed_poll_in_bounded_memory(server, armed):
    armed("/flags/definitions")
    result = run_child("poller", server.url)
    assert result["after"] - result["before"] < RSS_BOUND, result
    assert result["failing"] and not result["loaded"], result
    limit = f"{limits.MAX_DEFINITIONS_ANSWER_BYTES:,}"
    assert f"over its limit of {limit} bytes (once inflated)" in result["error"], result


def test_a_gzip_bomb_of_flags_is_a_failed_lookup_in_bounded_memory(server, armed):
    armed("/decide")
    result = run_child("flags", server.url)
    assert result["after"] - result["before"] < RSS_BOUND, result
    assert result["error"] == "_TooLargeError", result  # a ResponseTooLargeError
    assert result["limit"] == limits.MAX_ANSWER_BYTES
    assert f"over its limit of {limits.MAX_ANSWER_BYTES:,} bytes" in result["message"]


def test_a_gzip_bomb_answering_a_batch_drops_it_counted_in_bounded_memory(server, armed):
    armed("/batch")
    result = run_child("sender", server.url)
    assert result["after"] - result["before"] < RSS_BOUND, result
    assert (result["sent"], result["dropped"]) == (0, {"network": 1}), result


# -- answers over their limit, and answers within it --------------------------------------


@pytest.fixture
def transport(server: DevServer):
    made = Transport(server.url, gzip=False)
    yield made
    made.close()


def test_an_answer_declared_over_the_limit_is_refused_unread(server, transport):
    server.faults.respond(200, body={"pad": "x" * 5000})
    with pytest.raises(ResponseTooLargeError) as caught:
        transport.post("/batch/", b"{}", timeout=5, limit=1000)
    assert "over its limit of 1,000 bytes (as declared)" in str(caught.value)
    assert (caught.value.limit, caught.value.url_path) == (1000, "/batch/")
    assert isinstance(caught.value, TransportError)
    # The connection it came on is closed, not handed to the next request half read.
    batch = {"api_key": "k", "batch": [{"event": "e", "distinct_id": "u", "properties": {}}]}
    assert transport.post("/batch/", json.dumps(batch).encode(), timeout=5).status == 200


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate"])
def test_an_answer_inflating_over_the_limit_is_refused(server, transport, encoding):
    body = gzip_of_zeros(100_000)
    if encoding == "deflate":
        body = zlib.compress(bytes(100_000))
    server.faults.respond(200, body=body, headers={"Content-Encoding": encoding})
    with pytest.raises(ResponseTooLargeError, match=r"once inflated"):
        transport.post("/batch/", b"{}", timeout=5, limit=10_000)


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", lambda data: gzip_member(data[:7]) + gzip_member(data[7:])),  # two members
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, no zlib header
        ("br", lambda data: data),  # not one we inflate: kept as it came
    ],
)
def test_compressed_answers_within_the_limit_are_read_whole(server, transport, encoding, pack):
    answer = json.dumps({"status": "Ok", "pad": "ab" * 50_000}).encode()
    server.faults.respond(200, body=pack(answer), headers={"Content-Encoding": encoding})
    assert transport.post("/batch/", b"{}", timeout=5, limit=len(answer)).data == answer


def gzip_member(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


def test_a_gzip_answer_cut_short_is_no_answer(server, transport):
    server.faults.respond(
        200, body=gzip_member(b'{"status": "Ok"}')[:-6], headers={"Content-Encoding": "gzip"}
    )
    with pytest.raises(TransportError, match="cut short"):
        transport.post("/batch/", b"{}", timeout=5)


def test_too_many_answer_headers_is_no_answer_not_memory(server, client):
    """http.client, under urllib3, stops at 100 header lines of 64 KiB: the bound we state."""
    assert limits.HTTP_CLIENT_MAX_HEADERS == http.client._MAXHEADERS
    assert limits.HTTP_CLIENT_MAX_LINE == http.client._MAXLINE
    headers = {f"X-Pad-{i}": "x" for i in range(limits.HTTP_CLIENT_MAX_HEADERS + 1)}
    server.faults.respond(200, headers=headers, paths="/decide", times=4)
    with pytest.raises(TransportError, match="more than 100 headers"):
        client.feature_flags("u")


# -- keys -------------------------------------------------------------------------------------


def assert_nowhere(text: str, *keys: str) -> None:
    for key in keys:
        assert key not in text, f"a key in: {text[:500]}"


def assert_logs_hide_keys(logs: pytest.LogCaptureFixture) -> None:
    """No log line or traceback shows the secret key; nor the project key, but for the
    DEBUG request lines of urllib3 and the devserver, which show the definitions URL
    (PostHog wants the project key, which is public, in its query)."""
    for record in logs.records:
        text = record.getMessage() + (
            logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        )
        assert_nowhere(text, SECRET)
        if record.levelno > logging.DEBUG or record.name.startswith("posthog_otel._"):
            assert_nowhere(text, API_KEY)


@pytest.mark.parametrize("ending", ["\n", "\r\n", " \t", "\n\n"])
def test_a_secret_key_with_a_newline_from_a_file_loads_definitions(server, all_logs, ending):
    server.secret_key = SECRET
    server.set_flags({"promo": True})
    with PostHogClient(API_KEY, server.url, timeout=5) as client:
        provider = PostHogFlagProvider(
            client, secret_key=SECRET + ending, poll_interval=60, send_feature_flag_events=False
        )
        try:
            assert provider.load_definitions(10), provider.definitions_status()
            assert provider.is_enabled("promo", "u")
        finally:
            provider.shutdown(5)
    assert_logs_hide_keys(all_logs)
    (request,) = server.requests.matching("/flags/definitions")
    assert request.headers["Authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("api_key", "phc_abc def"),
        ("api_key", "phc_abc\ndef"),
        ("secret_key", "phs_abc\ndef"),
        ("secret_key", "phs_abc\x00def"),
        ("secret_key", "phs_abc\u00e9def"),
    ],
)
def test_a_key_with_whitespace_or_control_characters_inside_is_refused(server, setting, key):
    options = {"api_key": API_KEY, setting: key}
    with pytest.raises(ConfigurationError) as caught:
        PostHogClient(host=server.url, **options)
    assert caught.value.setting == setting
    assert_nowhere(str(caught.value), key, key[4:7], "def")
    if setting == "secret_key":  # given to the provider alone, too
        with (
            PostHogClient(API_KEY, server.url) as client,
            pytest.raises(ConfigurationError) as caught,
        ):
            PostHogFlagProvider(client, secret_key=key)
        assert_nowhere(str(caught.value), key, "def")


def test_a_server_echoing_the_keys_shows_them_nowhere(server, all_logs):
    """A server (or a proxy) that echoes our keys in its body and its headers: no log line,
    status, exception field or repr shows them."""
    echo = {
        "X-Echo": f"you sent Bearer {SECRET} and {API_KEY}",
        "Set-Cookie": "session=0123456789abcdef",
        "WWW-Authenticate": f'Bearer realm="{SECRET}"',
    }
    server.faults.respond(500, body={"detail": f"bad {SECRET}"}, headers=echo, times=10)
    with PostHogClient(API_KEY, server.url, retries=0) as client:
        provider = PostHogFlagProvider(client, secret_key=SECRET, poll_interval=60)
        try:
            assert not provider.load_definitions(3)
            status = provider.definitions_status()
        finally:
            provider.shutdown(5)
        with pytest.raises(APIError) as caught:
            connection_of(client).flag_definitions(secret_key=SECRET)
    error = caught.value
    assert error.status == 500
    assert error.headers["set-cookie"] == "[redacted]"
    assert error.headers["x-echo"] == "you sent Bearer [redacted] and [redacted]"
    shown = [str(error), repr(error), repr(error.body), repr(error.headers), repr(status)]
    for text in shown:
        assert_nowhere(text, SECRET, API_KEY)
    assert_logs_hide_keys(all_logs)
    assert status.error is not None and "HTTP 500" in status.error


def test_every_public_object_hides_the_keys_in_its_repr(server):
    from opentelemetry.sdk.trace import TracerProvider

    from posthog_otel import (
        PostHogLogExporter,
        PostHogLogProcessor,
        PostHogSpanExporter,
        PostHogSpanProcessor,
    )
    from posthog_otel._config import ClientConfig

    with PostHogClient(
        API_KEY, server.url, secret_key=SECRET, headers={"X-Token": SECRET}
    ) as client:
        provider = PostHogFlagProvider(client, poll_interval=60, send_feature_flag_events=False)
        processor = PostHogSpanProcessor(client)
        objects = [
            client,
            connection_of(client),
            connection_of(client).config,
            ClientConfig(api_key=API_KEY, secret_key=SECRET),
            provider,
            provider.definitions_status(),
            provider.stats(),
            processor,
            processor.stats(),
            PostHogSpanExporter(client),
            PostHogLogProcessor(client),
            PostHogLogExporter(client),
        ]
        try:
            from posthog_otel.openfeature import PostHogProvider

            objects.append(PostHogProvider(provider))
        except ImportError:
            pass
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(processor)
        try:
            for thing in objects:
                assert_nowhere(repr(thing) + str(thing), SECRET, API_KEY)
        finally:
            tracer_provider.shutdown()
            provider.shutdown(5)
            for thing in objects:
                if hasattr(thing, "shutdown") and thing not in (provider, processor):
                    thing.shutdown()


def test_a_redirect_never_takes_the_secret_key_elsewhere(server, all_logs):
    with DevServer() as elsewhere:
        location = f"{elsewhere.url}/flags/definitions?token={API_KEY}&send_cohorts"
        server.faults.respond(302, headers={"Location": location}, times=5)
        with PostHogClient(API_KEY, server.url, retries=0, secret_key=SECRET) as client:
            with pytest.raises(APIError) as caught:
                client.flag_definitions()
        assert caught.value.status == 302
        assert elsewhere.requests.matching("/") == []
    assert_logs_hide_keys(all_logs)


def test_no_log_line_shows_the_secret_key_when_polls_fail(server, all_logs, unused_port):
    with PostHogClient(API_KEY, f"http://127.0.0.1:{unused_port}", retries=0) as client:
        provider = PostHogFlagProvider(client, secret_key=SECRET, poll_interval=60)
        try:
            assert not provider.load_definitions(1)
        finally:
            provider.shutdown(5)
    assert all_logs.records, "the failed poll logs"
    assert any(r.levelno >= logging.WARNING for r in all_logs.records)
    assert_logs_hide_keys(all_logs)


@pytest.mark.parametrize(
    ("length", "kept"), [(40, True), (limits.MAX_KEPT_HEADER_CHARS + 1, False)]
)
def test_a_definitions_etag_too_long_to_send_back_is_not_kept(server, length, kept):
    etag = '"' + "e" * (length - 2) + '"'
    document = {"flags": [], "group_type_mapping": {}, "cohorts": {}}
    server.faults.respond(200, body=document, headers={"ETag": etag}, paths="/flags/definitions")
    with PostHogClient(API_KEY, server.url, secret_key=SECRET) as client:
        definitions = client.flag_definitions()
    assert definitions is not None
    assert definitions.etag == (etag if kept else None)
