"""A fast local sink for the benchmarks, run in its own process so it never shares our GIL.

It accepts PostHog batches (ours and posthog-python's, gzip or not) and OTLP/HTTP
traces and logs (protobuf, at OpenTelemetry's /v1/* and PostHog's /i/v1/*), counts events and distinct ids (also per event or span
name), and answers at once. Given an upstream (the devserver), it forwards the flag
routes there, so one host serves a PostHog SDK both ways, as PostHog itself does.

    python benchmarks/sink.py [PORT] [UPSTREAM]   # prints the port it listens on, then serves
    GET  /stats  -> {"events": n, "unique": n, "requests": n, "bytes": n, "names": {name: unique}}
    POST /reset
    GET  anything else, POST /decide, /flags  -> forwarded to UPSTREAM
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request
import zlib
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
except ImportError:  # only needed for the OTLP peers
    ExportTraceServiceRequest = ExportLogsServiceRequest = None

LOCK = threading.Lock()
STATE = {"events": 0, "requests": 0, "bytes": 0}
SEEN: set[str] = set()
NAMES: defaultdict[str, set[str]] = defaultdict(set)
UPSTREAM = ""
FORWARDED_HEADERS = ("Authorization", "If-None-Match", "Content-Type", "Content-Encoding")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if UPSTREAM and not self.path.startswith("/stats"):
            self._forward(None)
            return
        with LOCK:
            names = {name: len(ids) for name, ids in NAMES.items()}
            body = json.dumps({**STATE, "unique": len(SEEN), "names": names}).encode()
        self._answer(body)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if UPSTREAM and self.path.startswith(("/decide", "/flags")):
            self._forward(raw)
            return
        if self.path.startswith("/reset"):
            with LOCK:
                STATE.update(events=0, requests=0, bytes=0)
                SEEN.clear()
                NAMES.clear()
            self._answer(b"{}")
            return
        if raw[:2] == b"\x1f\x8b":
            raw = zlib.decompress(raw, 47)
        if self.path.startswith(("/v1/traces", "/i/v1/traces")):  # OTLP's path, PostHog's
            named = _otlp_spans(raw)
        elif self.path.startswith(("/v1/logs", "/i/v1/logs")):
            named = [("log", i) for i in _otlp_log_ids(raw)]
        else:
            payload = json.loads(raw)
            events = payload.get("batch", [payload]) if isinstance(payload, dict) else payload
            named = [
                (
                    str(e.get("event")),
                    str(e.get("uuid") or e.get("properties", {}).get("$insert_id")),
                )
                for e in events
            ]
        with LOCK:
            STATE["events"] += len(named)
            STATE["requests"] += 1
            STATE["bytes"] += len(raw)
            for name, id_ in named:
                SEEN.add(id_)
                NAMES[name].add(id_)
        self._answer(b'{"status": 1}')

    def _forward(self, body: bytes | None) -> None:
        """Ask the upstream the same question and pass its answer back, errors included."""
        headers = {key: self.headers[key] for key in FORWARDED_HEADERS if key in self.headers}
        request = urllib.request.Request(UPSTREAM + self.path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, answer, got = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:  # 304, 4xx: an answer all the same
            status, answer, got = error.code, error.read(), error.headers
        self.send_response(status)
        for key in ("Content-Type", "ETag"):
            if got.get(key):
                self.send_header(key, got[key])
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _otlp_spans(raw: bytes) -> list[tuple[str, str]]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(raw)
    return [
        (span.name, span.span_id.hex())
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]


def _otlp_log_ids(raw: bytes) -> list[str]:
    request = ExportLogsServiceRequest()
    request.ParseFromString(raw)
    return [
        f"{record.time_unix_nano}:{record.observed_time_unix_nano}"
        for resource in request.resource_logs
        for scope in resource.scope_logs
        for record in scope.log_records
    ]


def main() -> None:
    global UPSTREAM
    UPSTREAM = sys.argv[2].rstrip("/") if len(sys.argv) > 2 else ""
    server = ThreadingHTTPServer(
        ("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler
    )
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
