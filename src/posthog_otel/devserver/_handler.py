"""HTTP plumbing for the devserver: read a body within its limit and time, find the
route (``_routes.ROUTES``), apply an armed fault, record the request, answer.

Every request gets an answer, even one that breaks a route (500, logged), except
when a fault says otherwise. Bodies are held to the route's limit as declared
(``Content-Length``, checked before reading) and once decompressed. A request must
arrive whole within the server's ``read_timeout`` of its first byte, however it
trickles (mid-body: 408; in its headers: the connection is closed), and a connection
may stay silent that long between requests. Headers are bounded by http.client's
parser: 100 lines of at most 65,536 bytes. Every answer says ``X-Content-Type-Options:
nosniff``; every 404 (outside the devserver's own routes) carries the CORS headers, so a
browser reports it as a 404 rather than as a CORS failure.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import logging
import socket
import struct
import time
import zlib
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from posthog_otel.devserver._faults import Fault, TrickleWriter
from posthog_otel.devserver._routes import SINGLE_LIMIT, Route, find
from posthog_otel.devserver._wire import Answer, RejectError, Request, not_found, safe_json

if TYPE_CHECKING:
    from posthog_otel.devserver import DevServer

logger = logging.getLogger(__name__)

DRAIN_LIMIT = 64 * 1024 * 1024  # read and drop a refused body up to this size, so the
# client, still sending, sees the 413 rather than a reset; past it, just hang up
LINGER_SECONDS = 0.5
_COMPRESSED = ("gzip", "x-gzip", "deflate")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes
    server_version = "posthog-otel-devserver"

    @property
    def app(self) -> DevServer:
        return self.server.app  # type: ignore[attr-defined,no-any-return]

    def setup(self) -> None:
        self.request.settimeout(self.app.read_timeout)  # every write on it
        self.linger = False
        super().setup()
        self.rfile.close()  # the socket's own reader, replaced by one held to a deadline
        self._reader = _DeadlineReader(self.connection, self.app.read_timeout)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.next_request()
        super().handle_one_request()

    def finish(self) -> None:
        """After refusing a body unread, stop sending, then read and drop what the client
        already sent for a moment: closing with unread data would reset the connection,
        and the client would lose the answer."""
        super().finish()
        if not self.linger:
            return
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_SECONDS)
            for _ in range(64):
                if not self.connection.recv(1 << 16):
                    break

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    # -- dispatch ------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        """A CORS preflight: allowed for PostHog's browser routes, from any origin."""
        wanted = self.headers.get("Access-Control-Request-Method", "POST").upper()
        route, _, allowed = find(wanted, urlsplit(self.path).path)
        headers: dict[str, str] = {}
        origin = self.headers.get("Origin")
        if route is not None and route.cors and origin:
            headers = {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": f"{route.method}, OPTIONS",
                "Access-Control-Allow-Headers": self.headers.get(
                    "Access-Control-Request-Headers", "Content-Type"
                ),
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            }
        elif route is None and origin and not allowed:
            # A path nothing here speaks: the browser is told so (404), not a CORS failure.
            headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        status = 204 if route is not None else 404
        if route is None or not route.devserver_only:
            self._record(b"", status, spoken=route is not None)
        self._send(Answer(status, b"", headers=headers))

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        route, params, allowed = find(self.command, parts.path)
        devserver_only = route is not None and route.devserver_only
        body = b""
        try:
            if devserver_only and not self._same_machine():
                raise RejectError(403, "forbidden", "the viewer answers only to its own host")
            body = self._read_body(query, self._limit(route))
            if route is None:
                if allowed:
                    raise RejectError(405, "method_not_allowed", f"use {', '.join(allowed)}")
                raise not_found(f"the devserver does not speak {self.command} {parts.path}")
            if not devserver_only:
                fault = self.app.faults.take(parts.path.rstrip("/") or "/")
                if fault is not None and fault.kind == "delay":
                    self.app.stopping.wait(fault.seconds)
                    fault = None
                if fault is not None and fault.kind == "trickle":
                    self.wfile = TrickleWriter(self.wfile, fault, self.app.stopping)
                    self.close_connection = True
                    fault = None
                if fault is not None:
                    self._record(body, fault.status if fault.kind == "respond" else 0)
                    self._misbehave(fault)
                    return
            request = Request(self.command, parts.path, query, dict(self.headers), body, params)
            answer = route.answer(self.app, request)
        except RejectError as exc:
            answer = exc.answer()
        except Exception:
            logger.exception("devserver: %s %s failed", self.command, parts.path)
            answer = RejectError(500, "server_error", "the devserver failed; see its log").answer()
        if not devserver_only:
            # Recorded before answering, so a client that got its answer finds its request.
            self._record(body, answer.status, spoken=route is not None)
        # A 404 says so to a browser on any origin (else it reports a CORS failure and
        # hides the status): posthog-js asking for what the devserver does not serve.
        cors = (route is not None and route.cors) or (answer.status == 404 and not devserver_only)
        self._send(answer, cors=cors)

    def _limit(self, route: Route | None) -> int:
        limit = route.limit if route is not None else SINGLE_LIMIT
        if self.app.max_request_bytes is not None and not (route and route.devserver_only):
            limit = min(limit, self.app.max_request_bytes)
        return limit

    def _same_machine(self) -> bool:
        """Whether the Host header names an address or localhost, not a domain that a web
        page could point at this machine (DNS rebinding) to read the captured events."""
        host = self.headers.get("Host")
        if not host:
            return True
        name = urlsplit("//" + host).hostname or ""
        if name in ("localhost", self.app.host.lower()) or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def _record(self, data: bytes, status: int, *, spoken: bool = True) -> None:
        headers = dict(self.headers)
        self.app.requests.record(self.command, self.path, headers, data, status, spoken=spoken)

    # -- bodies ----------------------------------------------------------------------

    def _read_body(self, query: Mapping[str, list[str]], limit: int) -> bytes:
        declared = self.headers.get("Content-Length")
        if declared is None:
            if self.command in ("GET", "HEAD", "DELETE", "OPTIONS"):
                return b""
            self.close_connection = self.linger = True
            raise RejectError(411, "length_required", "Content-Length is required")
        if not (declared.isascii() and declared.isdigit()):
            self.close_connection = self.linger = True
            raise RejectError(400, "invalid_length", "Content-Length is not a number")
        length = int(declared)
        if length > limit:
            self._drop_body(length)
            raise RejectError(413, "payload_too_large", f"body is over {limit} bytes")
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            seconds = self.app.read_timeout
            raise RejectError(
                408, "timeout", f"the body did not arrive within {seconds} s"
            ) from None
        if len(raw) < length:
            self.close_connection = True
            raise RejectError(400, "incomplete_body", "the body ended early")
        return _decoded(raw, self.headers.get("Content-Encoding", ""), query, limit)

    def _drop_body(self, length: int) -> None:
        self.close_connection = True
        if length > DRAIN_LIMIT:
            self.linger = True
            return
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    return
                length -= len(chunk)
        except OSError:
            return

    # -- answers ---------------------------------------------------------------------

    def _send(self, answer: Answer, *, cors: bool = False) -> None:
        body = answer.body if isinstance(answer.body, bytes) else safe_json(answer.body)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        origin = self.headers.get("Origin")
        if cors and origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _misbehave(self, fault: Fault) -> None:
        if fault.kind == "respond":
            body = fault.body if fault.body is not None else {"status": fault.status}
            self._send(Answer(fault.status, body, headers=fault.headers))
            return
        self.close_connection = True
        if fault.kind == "hang":
            self.app.stopping.wait(fault.seconds)
        elif fault.kind == "stall_body":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            self.wfile.write(b'Content-Length: 100\r\n\r\n{"status"')
            self.wfile.flush()
            self.app.stopping.wait(fault.seconds)
        elif fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif fault.kind == "garbage":
            self.wfile.write(b"\x00\x01this is not HTTP at all\r\n\r\n")


class _DeadlineReader(io.RawIOBase):
    """The connection as the handler reads it: each request within ``seconds`` of its
    first byte, whole (a socket timeout alone bounds each read, so a byte a second would
    never end); between requests, silence for ``seconds`` at most."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        super().__init__()
        self._sock = sock
        self._seconds = seconds
        self._deadline: float | None = None

    def next_request(self) -> None:
        """The next read waits for a new request; its first byte starts the clock."""
        self._deadline = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._seconds if self._deadline is None else self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the request did not arrive within {self._seconds} s")
        self._sock.settimeout(left)
        try:
            received = self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(self._seconds)  # writes keep the plain per-send timeout
        if received and self._deadline is None:
            self._deadline = time.monotonic() + self._seconds
        return received


def _decoded(raw: bytes, encoding: str, query: Mapping[str, list[str]], limit: int) -> bytes:
    """The body as sent, inflated when it is gzip or zlib (by header, by posthog-js's
    ``?compression=gzip-js``, or by its magic bytes), and held to ``limit`` after."""
    encoding = encoding.strip().lower()
    if encoding not in ("", "identity", *_COMPRESSED):
        raise RejectError(
            415, "unsupported_encoding", f"Content-Encoding {encoding[:40]!r} is not spoken here"
        )
    compression = query.get("compression", [""])[0]
    if not (encoding in _COMPRESSED or compression.startswith("gzip") or raw[:2] == b"\x1f\x8b"):
        return raw
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib, by their headers
    try:
        data = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise RejectError(400, "invalid_payload", "body is not valid gzip or deflate") from None
    if len(data) > limit:
        raise RejectError(413, "payload_too_large", f"body is over {limit} bytes decompressed")
    if not inflater.eof:
        raise RejectError(400, "invalid_payload", "the compressed body is cut short")
    return data
