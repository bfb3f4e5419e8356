"""A local PostHog-compatible server, for development and tests (standard library only).

It speaks the routes PostHog's SDKs call (``_routes.ROUTES``): capture in both wire
forms (``/batch/``, ``/capture/``, ``/e/``, ``/i/v0/e/``, the AI lane
``/i/v0/ai/batch/``, capture v1 ``/i/v1/analytics/events``), flags (``/flags/``,
``/decide/``), a flag's remote config payload, and OpenTelemetry's traces, logs and
metrics over OTLP (``/i/v1/traces``, ``/i/v1/logs``, ``/i/v1/metrics``). It validates
every request before storing any of it, keeps events, spans, log records and metrics in
SQLite, answers flags from a small rules file or PostHog's own definitions JSON (which
it also serves for local evaluation, at ``/flags/definitions``), and lists what it
stored at ``GET /api/events``, ``/api/spans``, ``/api/logs`` and ``/api/metrics``, and
what it received at ``GET /api/requests``. Like PostHog, it keeps
an event sent twice (same uuid, event and distinct_id: a retried batch) once, and counts
the repeat (``repeats()``, and ``repeated_events`` in ``/api/requests``). Its page at
``/`` shows events as they arrive, and a trace's events across services::

    with DevServer(flags={"new-dashboard": True}) as server:
        client = PostHogClient("phc_dev", server.url)
        ...
        server.events()   # newest first, as PostHog would store them

From the shell: ``posthog-otel devserver --port 8010 --flags flags.json``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from posthog_otel.devserver._api import page
from posthog_otel.devserver._definitions import ServedFlags, load_flags
from posthog_otel.devserver._faults import Faults
from posthog_otel.devserver._handler import Handler
from posthog_otel.devserver._requests import RecordedRequest, RequestLog
from posthog_otel.devserver._store import EventStore

__all__ = ["DevServer", "RecordedRequest"]

logger = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], app: DevServer) -> None:
        self.app = app
        self.open_connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up or stalled before its answer is routine here, not a
        traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            logger.debug("client %s went away or stalled: %r", client_address, error)
            return
        super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._conn_lock:
            connections = list(self.open_connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class DevServer:
    """A PostHog-compatible server on ``host:port`` (port 0 picks a free one).

    Args:
        host: the address to listen on; loopback by default.
        port: the port; 0 picks a free one (see ``url`` once started).
        flags: flag rules (see ``_rules``) or PostHog's flag definitions JSON, as a
            mapping or the path of a JSON file.
        db: an SQLite file to keep events in; in memory by default.
        api_key: accept only this project key (any non-empty key by default).
        secret_key: serve flag definitions only for this secret key (by default, for
            any key starting ``phs_`` or ``phx_``).
        max_request_bytes: refuse larger bodies with 413, like a proxy with a body
            limit in front of PostHog (PostHog's own limits by default).
        read_timeout: seconds a connection may stay silent (mid-body: answered 408;
            idle between requests: closed).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        flags: Mapping[str, Any] | str | Path | None = None,
        db: str | Path | None = None,
        api_key: str | None = None,
        max_request_bytes: int | None = None,
        read_timeout: float = 30.0,
        secret_key: str | None = None,
    ) -> None:
        if read_timeout <= 0:
            raise ValueError("read_timeout must be positive")
        self.host = host
        self.port = port
        self.api_key = api_key
        self.max_request_bytes = max_request_bytes
        self.read_timeout = read_timeout
        self.secret_key = secret_key
        self.flags: ServedFlags = load_flags(flags)
        self.store = EventStore(str(db) if db is not None else None)
        self.requests = RequestLog()
        self.faults = Faults()
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DevServer:
        """Listen and serve in a background thread; restarts on the same port after ``stop``."""
        if self._server is not None:
            return self
        self.stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"posthog-devserver:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections (stored events are kept)."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the command line's mode)."""
        self.start()
        try:
            self.stopping.wait()
        finally:
            self.stop()

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what it stored ------------------------------------------------------------

    def events(
        self, event: str | None = None, distinct_id: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Stored events, newest first, each with event, distinct_id, properties,
        timestamp and uuid."""
        return self.store.query(event=event, distinct_id=distinct_id, limit=limit)

    def wait_for_events(
        self,
        count: int,
        *,
        timeout: float = 10.0,
        event: str | None = None,
        distinct_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` matching events are stored; ``TimeoutError`` if they never are."""
        found = self.store.wait_for_count(count, timeout, event=event, distinct_id=distinct_id)
        if found < count:
            raise TimeoutError(f"expected {count} events, found {found} after {timeout} s")
        return self.events(event, distinct_id)

    def spans(
        self,
        trace_id: str | None = None,
        distinct_id: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored spans (from ``/i/v1/traces``), newest first, each with trace_id,
        span_id, parent_span_id (hex; '' for a root), name, kind, start_time_unix_nano,
        end_time_unix_nano, attributes, resource, scope, status and events.
        ``distinct_id`` matches the attribute ``posthogDistinctId``."""
        filters = {"trace_id": trace_id, "distinct_id": distinct_id}
        return self.store.otel("spans", filters, limit)

    def wait_for_spans(
        self,
        count: int,
        *,
        timeout: float = 10.0,
        trace_id: str | None = None,
        distinct_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` matching spans are stored; ``TimeoutError`` if they never are."""
        filters = {"trace_id": trace_id, "distinct_id": distinct_id}
        self._wait("spans", count, timeout, filters)
        return self.spans(trace_id, distinct_id)

    def logs(
        self,
        distinct_id: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored log records (from ``/i/v1/logs``), newest first, each with
        time_unix_nano, observed_time_unix_nano, severity_number, severity_text, body,
        attributes, resource, scope, trace_id and span_id (hex, or ''). ``distinct_id``
        and ``session_id`` match the attributes ``posthogDistinctId`` and ``sessionId``."""
        filters = {"distinct_id": distinct_id, "session_id": session_id, "trace_id": trace_id}
        return self.store.otel("logs", filters, limit)

    def wait_for_logs(
        self,
        count: int,
        *,
        timeout: float = 10.0,
        distinct_id: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` matching log records are stored; ``TimeoutError`` if not."""
        filters = {"distinct_id": distinct_id, "session_id": session_id, "trace_id": trace_id}
        self._wait("logs", count, timeout, filters)
        return self.logs(distinct_id, session_id, trace_id)

    def metrics(self, name: str | None = None) -> list[dict[str, Any]]:
        """Stored metrics (from ``/i/v1/metrics``), newest first, one per metric per
        export: name, description, unit, type, temporality, monotonic, resource, scope
        and data_points."""
        return self.store.otel("metrics", {"name": name})

    def wait_for_metrics(
        self, count: int, *, timeout: float = 10.0, name: str | None = None
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` matching data points are stored; ``TimeoutError`` if not."""
        self._wait("metrics", count, timeout, {"name": name})
        return self.metrics(name)

    def _wait(
        self, table: str, count: int, timeout: float, filters: Mapping[str, str | None]
    ) -> None:
        found = self.store.wait_for_otel(table, count, timeout, filters)
        if found < count:
            what = "data points" if table == "metrics" else table
            raise TimeoutError(f"expected {count} {what}, found {found} after {timeout} s")

    def repeats(self) -> dict[str, int]:
        """Events that arrived again after they were stored, by uuid: how many times more.
        Delivery is at least once: a batch whose answer was lost is sent again, with the
        same uuids; stored once, here as in PostHog."""
        return self.store.repeats()

    def clear(self) -> None:
        """Forget stored events (and their repeats), spans, logs and metrics, recorded
        requests and armed faults."""
        self.store.clear()
        self.requests.clear()
        self.faults.clear()

    def set_flags(self, flags: Mapping[str, Any] | str | Path | None) -> None:
        """Serve these flags from now on (rules or definitions; a new ETag)."""
        self.flags = load_flags(flags)

    def viewer_html(self) -> str:
        """The event viewer page served at ``/``."""
        return page("viewer.html").decode()
