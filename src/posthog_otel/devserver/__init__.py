"""A local PostHog-compatible server, for development and tests (standard library only).

It accepts capture requests (``/batch/``, ``/capture/``, ``/i/v0/e/``, ``/e/``)
and flag requests (``/decide/``, ``/flags/``) the way PostHog does, keeps events
in SQLite, answers flags from a small rules file, and lists what it stored at
``GET /api/events`` (and the requests it received at ``GET /api/requests``). Its
page at ``/`` lists the latest events as they arrive::

    with DevServer(flags={"new-dashboard": True}) as server:
        client = PostHogClient("phc_dev", server.url)
        ...
        server.events()   # newest first, as PostHog would store them

From the shell: ``posthog-otel devserver --port 8010 --flags flags.json``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from posthog_otel.devserver._faults import Faults
from posthog_otel.devserver._handler import Handler
from posthog_otel.devserver._rules import FlagRule, load_rules
from posthog_otel.devserver._store import EventStore

__all__ = ["DevServer", "RecordedRequest"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received: body as decompressed bytes, status as answered
    (0 when it answered with a broken connection), ``at`` on ``time.monotonic()``."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    status: int
    at: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class RequestLog:
    """The most recent requests (bounded), for tests that check what went over the wire."""

    def __init__(self, maxlen: int = 2000) -> None:
        self._items: collections.deque[RecordedRequest] = collections.deque(maxlen=maxlen)
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def record(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, status: int
    ) -> None:
        with self._lock:
            self._items.append(
                RecordedRequest(method, path, headers, body, status, time.monotonic())
            )
            self._counts[path.partition("?")[0].rstrip("/") or "/"] += 1

    def summary(self, recent: int = 50) -> dict[str, Any]:
        """Counts by route since the last clear, and the most recent requests."""
        with self._lock:
            latest = list(self._items)[-recent:][::-1]
            return {
                "total": sum(self._counts.values()),
                "by_path": dict(self._counts),
                "recent": [
                    {"method": r.method, "path": r.path, "status": r.status} for r in latest
                ],
            }

    def matching(self, prefix: str = "") -> list[RecordedRequest]:
        """Requests whose path starts with ``prefix``, oldest first."""
        with self._lock:
            return [r for r in self._items if r.path.startswith(prefix)]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._counts.clear()


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
        """A client that hung up before its answer is routine here, not a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError)):
            logger.debug("client %s went away before its answer", client_address)
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
        flags: flag rules, as a mapping or the path of a JSON file (see ``_rules``).
        db: an SQLite file to keep events in; in memory by default.
        api_key: accept only this project key (any non-empty key by default).
        max_request_bytes: refuse larger bodies with 413, like a proxy with a body
            limit in front of PostHog (PostHog's own limits by default).
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
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.max_request_bytes = max_request_bytes
        self.rules: dict[str, FlagRule] = load_rules(flags)
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

    def clear(self) -> None:
        """Forget stored events, recorded requests and armed faults."""
        self.store.clear()
        self.requests.clear()
        self.faults.clear()

    def set_flags(self, flags: Mapping[str, Any] | str | Path | None) -> None:
        self.rules = load_rules(flags)

    def viewer_html(self) -> str:
        """The event viewer page served at ``/``."""
        return _viewer_page()


@functools.lru_cache(maxsize=1)
def _viewer_page() -> str:
    return resources.files(__package__).joinpath("viewer.html").read_text(encoding="utf-8")
