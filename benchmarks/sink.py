"""A fast local sink for the benchmarks, run in its own process so it never shares our GIL.

It accepts PostHog batches (ours and posthog-python's, gzip or not) and OTLP/HTTP
traces and logs (protobuf), counts events and distinct ids, and answers at once.

    python benchmarks/sink.py            # prints the port it listens on, then serves
    GET  /stats  -> {"events": n, "unique": n, "requests": n, "bytes": n}
    POST /reset
"""

from __future__ import annotations

import json
import sys
import threading
import zlib
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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        with LOCK:
            body = json.dumps({**STATE, "unique": len(SEEN)}).encode()
        self._answer(body)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/reset"):
            with LOCK:
                STATE.update(events=0, requests=0, bytes=0)
                SEEN.clear()
            self._answer(b"{}")
            return
        if raw[:2] == b"\x1f\x8b":
            raw = zlib.decompress(raw, 47)
        if self.path.startswith("/v1/traces"):
            ids = _otlp_span_ids(raw)
        elif self.path.startswith("/v1/logs"):
            ids = _otlp_log_ids(raw)
        else:
            payload = json.loads(raw)
            events = payload.get("batch", [payload]) if isinstance(payload, dict) else payload
            ids = [str(e.get("uuid") or e.get("properties", {}).get("$insert_id")) for e in events]
        with LOCK:
            STATE["events"] += len(ids)
            STATE["requests"] += 1
            STATE["bytes"] += len(raw)
            SEEN.update(ids)
        self._answer(b'{"status": 1}')

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _otlp_span_ids(raw: bytes) -> list[str]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(raw)
    return [
        span.span_id.hex()
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
    server = ThreadingHTTPServer(
        ("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler
    )
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
