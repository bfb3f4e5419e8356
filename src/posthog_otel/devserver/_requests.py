"""The requests the devserver received, for tests and for ``GET /api/requests``."""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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
        return json.loads(self.body)


class RequestLog:
    """The most recent requests (bounded), with counts by route and by status."""

    def __init__(self, maxlen: int = 2000) -> None:
        self._items: collections.deque[RecordedRequest] = collections.deque(maxlen=maxlen)
        self._by_path: collections.Counter[str] = collections.Counter()
        self._by_status: collections.Counter[int] = collections.Counter()
        self._not_spoken: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def record(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        status: int,
        *,
        spoken: bool = True,
    ) -> None:
        """Keep one request; ``spoken`` is false when no route answers its path and method."""
        route = path.partition("?")[0].rstrip("/") or "/"
        with self._lock:
            self._items.append(
                RecordedRequest(method, path, headers, body, status, time.monotonic())
            )
            self._by_path[route] += 1
            self._by_status[status] += 1
            if not spoken:
                self._not_spoken[f"{method} {route}"] += 1

    def summary(self, recent: int = 50) -> dict[str, Any]:
        """Counts since the last clear, the routes no route answers (what a client asked
        for that this server does not speak), and the most recent requests."""
        with self._lock:
            latest = list(self._items)[-recent:][::-1]
            return {
                "total": sum(self._by_path.values()),
                "by_path": dict(self._by_path),
                "by_status": {str(k): v for k, v in self._by_status.items()},
                "not_spoken": dict(self._not_spoken),
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
            self._by_path.clear()
            self._by_status.clear()
            self._not_spoken.clear()
