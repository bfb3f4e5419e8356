"""The transport's TLS and proxy handling, against real local servers."""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from posthog_otel import PostHogClient, TransportError
from posthog_otel._client.transport import NoAnswerError, Transport


class Recorder(BaseHTTPRequestHandler):
    """Answers every POST with {"status": 1} and remembers the request line."""

    protocol_version = "HTTP/1.1"
    seen: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        body = json.dumps({"status": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve(tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen = []  # type: ignore[attr-defined]
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if tls else "http"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def tls_server(tmp_path) -> Iterator[tuple[str, str]]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server, url = serve(context)
    yield url, str(bundle)
    server.shutdown()


def test_tls_is_verified_by_default(tls_server):
    url, _ = tls_server
    client = PostHogClient("phc_k", url, retries=3, retry_delay=0.01)
    with client, pytest.raises(TransportError, match="SSL") as info:
        client.capture("e", "u")
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


def test_a_custom_ca_bundle_is_trusted(tls_server):
    url, bundle = tls_server
    with PostHogClient("phc_k", url, ca_bundle=bundle) as c:
        assert c.capture("e", "u").status == 200


@pytest.fixture
def proxy() -> Iterator[ThreadingHTTPServer]:
    server, _ = serve()
    yield server
    server.shutdown()


def test_http_proxy_is_honoured(proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with PostHogClient("phc_k", "http://posthog.invalid", retries=0) as c:
        assert c.capture("e", "u").status == 200
    assert proxy.seen == ["http://posthog.invalid/capture/"]


def test_no_proxy_bypasses_the_proxy(proxy, server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with PostHogClient("phc_k", server.url) as c:
        c.capture("direct", "u")
    assert proxy.seen == []
    assert [e["event"] for e in server.events()] == ["direct"]


def test_redirects_are_not_followed(server):
    server.faults.respond(302, body={"to": "elsewhere"})
    transport = Transport(server.url)
    result = transport.post("/capture/", b"{}", timeout=2)
    assert result.status == 302
    assert len(server.requests.matching("/")) == 1


# -- timeouts bound the whole request ------------------------------------------------------

CAPTURE_BODY = json.dumps({"api_key": "phc_k", "event": "e", "distinct_id": "u"}).encode()


@pytest.mark.parametrize("whole", [False, True], ids=["body", "headers and body"])
def test_a_trickled_answer_is_cut_off_at_the_timeout(server, whole):
    # One byte a second: every read returns within the timeout, the answer takes 13 s
    # (the body alone) or minutes (headers too).
    server.faults.trickle(bytes_per_second=1, whole=whole)
    transport = Transport(server.url)
    started = time.monotonic()
    with pytest.raises(NoAnswerError, match="timed out") as info:
        transport.post("/capture/", CAPTURE_BODY, timeout=1.5)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 3.5, elapsed  # the upper bound is a hang guard for a busy machine
    assert info.value.retryable


def test_setting_stop_cuts_off_the_request_in_flight(server):
    server.faults.trickle(bytes_per_second=1)
    transport = Transport(server.url)
    stop = threading.Event()
    stopped_at = []

    def set_stop() -> None:
        stopped_at.append(time.monotonic())
        stop.set()

    threading.Timer(0.3, set_stop).start()
    with pytest.raises(NoAnswerError, match="stopping") as info:
        transport.post("/capture/", CAPTURE_BODY, timeout=10.0, stop=stop)
    late = time.monotonic() - stopped_at[0]
    # The watchdog looks at stop events every 50 ms; 1 s only guards against waiting
    # out the 10 s timeout on a loaded machine.
    assert late < 1.0, late
    assert not info.value.retryable


def test_nothing_is_sent_once_stop_is_set(server):
    stop = threading.Event()
    stop.set()
    with pytest.raises(NoAnswerError, match="stopping"):
        Transport(server.url).post("/capture/", CAPTURE_BODY, timeout=1.0, stop=stop)
    assert server.requests.matching("/capture") == []


def test_a_timely_answer_on_a_watched_connection_is_reused(server):
    transport = Transport(server.url)
    for _ in range(3):
        assert transport.post("/capture/", CAPTURE_BODY, timeout=5.0).status == 200
    assert len(server.events()) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_the_watchdog_works_in_a_forked_child(server):
    transport = Transport(server.url)
    transport.post("/capture/", CAPTURE_BODY, timeout=5.0)  # the parent's watchdog is running
    server.faults.trickle(bytes_per_second=1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            started = time.monotonic()
            transport.post("/capture/", CAPTURE_BODY, timeout=0.5)
        except NoAnswerError:
            code = 0 if time.monotonic() - started < 3.0 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
