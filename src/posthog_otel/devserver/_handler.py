"""The devserver's routes: capture, flags and the events API, validated as PostHog does."""

from __future__ import annotations

import json
import logging
import socket
import struct
import uuid
import zlib
from collections.abc import Mapping
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from posthog_otel.devserver._faults import Fault, TrickleWriter
from posthog_otel.devserver._rules import flags_response

if TYPE_CHECKING:
    from posthog_otel.devserver import DevServer

logger = logging.getLogger(__name__)

CAPTURE_ROUTES = ("/batch", "/capture", "/i/v0/e", "/e", "/track")
FLAG_ROUTES = ("/decide", "/flags")
BATCH_LIMIT = 20 * 1024 * 1024  # decompressed bytes, as PostHog's capture service
SINGLE_LIMIT = 2 * 1024 * 1024
EVENT_LIMIT = 1024 * 1024
MAX_DISTINCT_ID = 200


class RejectError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes
    server_version = "posthog-otel-devserver"

    @property
    def app(self) -> DevServer:
        return self.server.app  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    # -- dispatch ------------------------------------------------------------------

    def do_OPTIONS(self) -> None:
        self._reply(204, None)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.rstrip("/") == "/api/events":
            self._reply(200, self._events_api(parse_qs(parts.query)))
        elif parts.path.rstrip("/") == "/api/requests":
            self._reply(200, self.app.requests.summary())
        elif parts.path == "/":
            self._reply_html(self.app.viewer_html())
        else:
            self._reply(404, {"type": "invalid_request", "detail": "no such route"})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query)
        data = b""
        answer: Any
        try:
            limit = BATCH_LIMIT if path == "/batch" else SINGLE_LIMIT
            if self.app.max_request_bytes is not None:
                limit = min(limit, self.app.max_request_bytes)
            data = self._read_body(query, limit)
            fault = self.app.faults.take(path) if path in CAPTURE_ROUTES + FLAG_ROUTES else None
            if fault is not None and fault.kind == "delay":
                self.app.stopping.wait(fault.seconds)
                fault = None
            if fault is not None and fault.kind == "trickle":
                self.wfile = TrickleWriter(self.wfile, fault, self.app.stopping)
                self.close_connection = True
                fault = None
            if fault is not None:
                self._record(data, fault.status if fault.kind == "respond" else 0)
                self._misbehave(fault)
                return
            if path in CAPTURE_ROUTES:
                self._capture(data)
                status, answer = 200, {"status": 1}
            elif path in FLAG_ROUTES:
                status, answer = 200, self._flags(path, query, data)
            else:
                raise RejectError(404, "not_found", "no such route")
        except RejectError as exc:
            status = exc.status
            answer = {"type": "validation_error", "code": exc.code, "detail": exc.detail}
        # Recorded before answering, so a client that got its answer finds its request here.
        self._record(data, status)
        self._reply(status, answer)

    def _record(self, data: bytes, status: int) -> None:
        self.app.requests.record(self.command, self.path, dict(self.headers), data, status)

    # -- routes ----------------------------------------------------------------------

    def _capture(self, data: bytes) -> None:
        payload = _json(data)
        if isinstance(payload, Mapping) and "batch" in payload:
            events = payload["batch"]
        elif isinstance(payload, list):
            events = payload
        else:
            events = [payload]
        if not isinstance(events, list) or not events:
            raise RejectError(400, "empty_batch", "the batch holds no events")
        self._check_key(payload if isinstance(payload, Mapping) else {}, events)
        self.app.store.add([_stored_event(e) for e in events])

    def _flags(self, path: str, query: Mapping[str, list[str]], data: bytes) -> dict[str, Any]:
        body = _json(data)
        if not isinstance(body, Mapping):
            raise RejectError(400, "invalid_payload", "expected a JSON object")
        self._check_key(body, [])
        distinct_id = body.get("distinct_id")
        if not isinstance(distinct_id, (str, int)) or distinct_id == "":
            raise RejectError(400, "missing_distinct_id", "distinct_id is required")
        groups = body.get("groups")
        groups = groups if isinstance(groups, Mapping) else {}
        keys = body.get("flag_keys_to_evaluate")
        keys = [str(k) for k in keys] if isinstance(keys, list) else None
        try:
            version = int(query.get("v", ["0"])[0] or 0)
        except ValueError:
            version = 0
        detailed = version >= (4 if path == "/decide" else 2)
        return flags_response(self.app.rules, str(distinct_id), groups, keys, detailed=detailed)

    def _events_api(self, query: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        def one(name: str) -> str | None:
            return query[name][0] if name in query else None

        try:
            limit = max(0, min(int(one("limit") or 100), 10_000))
        except ValueError:
            limit = 100
        return self.app.store.query(
            event=one("event"), distinct_id=one("distinct_id"), limit=limit, after=one("after")
        )

    def _check_key(self, payload: Mapping[str, Any], events: list[Any]) -> None:
        key = payload.get("api_key") or payload.get("token")
        if not key and events and isinstance(events[0], Mapping):
            first = events[0]
            props = first.get("properties")
            props = props if isinstance(props, Mapping) else {}
            key = first.get("api_key") or props.get("token")
        if not isinstance(key, str) or not key:
            raise RejectError(401, "missing_api_key", "API key is required")
        if self.app.api_key is not None and key != self.app.api_key:
            raise RejectError(401, "invalid_api_key", "API key is not valid for this project")

    # -- plumbing --------------------------------------------------------------------

    def _read_body(self, query: Mapping[str, list[str]], limit: int) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise RejectError(411, "length_required", "Content-Length is required")
        raw = self.rfile.read(int(length))
        compression = query.get("compression", [""])[0]
        gzipped = (
            self.headers.get("Content-Encoding", "").lower() == "gzip"
            or compression.startswith("gzip")
            or raw[:2] == b"\x1f\x8b"
        )
        data = raw
        if gzipped:
            try:
                inflater = zlib.decompressobj(wbits=47)
                data = inflater.decompress(raw, limit + 1)
            except zlib.error:
                raise RejectError(400, "invalid_payload", "body is not valid gzip") from None
        if len(data) > limit:
            raise RejectError(413, "payload_too_large", f"body is over {limit} bytes")
        return data

    def _misbehave(self, fault: Fault) -> None:
        if fault.kind == "respond":
            body = fault.body if fault.body is not None else {"status": fault.status}
            self._reply(fault.status, body, fault.headers)
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

    def _reply(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "*")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _reply_html(self, page: str) -> None:
        data = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise RejectError(400, "invalid_payload", "body is not valid JSON") from None


def _stored_event(event: Any) -> dict[str, Any]:
    """Validate one event as PostHog's capture service does and shape it for storage."""
    if not isinstance(event, Mapping):
        raise RejectError(400, "invalid_payload", "each event must be a JSON object")
    name = event.get("event")
    if not isinstance(name, str) or not name:
        raise RejectError(400, "missing_event_name", "every event needs an event name")
    properties = event.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise RejectError(400, "invalid_payload", "properties must be an object")
    distinct_id = event.get("distinct_id")
    if distinct_id is None:
        distinct_id = properties.get("distinct_id", properties.get("$distinct_id"))
    if isinstance(distinct_id, bool) or not isinstance(distinct_id, (str, int, float)):
        raise RejectError(400, "missing_distinct_id", "every event needs a distinct_id")
    distinct_id = str(distinct_id)[:MAX_DISTINCT_ID]
    if not distinct_id:
        raise RejectError(400, "missing_distinct_id", "every event needs a distinct_id")
    if len(json.dumps(event)) > EVENT_LIMIT:
        raise RejectError(413, "event_too_big", f"event {name!r} is over {EVENT_LIMIT} bytes")
    raw_uuid = event.get("uuid")
    try:
        event_uuid = str(uuid.UUID(raw_uuid)) if raw_uuid is not None else str(uuid.uuid4())
    except (TypeError, ValueError, AttributeError):
        raise RejectError(400, "invalid_uuid", f"uuid {raw_uuid!r} is not a UUID") from None
    timestamp = event.get("timestamp")
    if not isinstance(timestamp, str) or not timestamp:
        timestamp = datetime.now(timezone.utc).isoformat()
    return {
        "uuid": event_uuid,
        "event": name,
        "distinct_id": distinct_id,
        "timestamp": timestamp,
        "properties": dict(properties),
    }
