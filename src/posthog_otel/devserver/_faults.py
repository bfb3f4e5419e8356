"""Misbehaviour on demand, for testing how a client copes with a sick PostHog.

Faults apply only to the PostHog routes (capture and flags), never to
``/api/events`` or the viewer, and are used up in the order they were armed.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["respond", "delay", "hang", "stall_body", "reset", "garbage", "trickle"]


@dataclass
class Fault:
    kind: FaultKind
    times: int
    paths: tuple[str, ...] | None
    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    after: int = 0  # let this many matching requests through first
    whole: bool = False  # trickle: the status line and headers too, not only the body

    def matches(self, path: str) -> bool:
        return self.paths is None or path.startswith(self.paths)


class Faults:
    """The next N matching requests answer a given status, hang, reset or talk garbage."""

    def __init__(self) -> None:
        self._armed: list[Fault] = []
        self._lock = threading.Lock()

    def respond(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: str | float | None = None,
        body: Any = None,
        paths: tuple[str, ...] | str | None = None,
        after: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer ``status`` (with ``Retry-After``, a JSON ``body`` and ``headers`` if
        given), once ``after`` matching requests have gone through normally. A ``body``
        of bytes is sent as it is: with ``Content-Encoding: gzip`` in ``headers``, a
        gzip bomb, say."""
        headers = dict(headers or {})
        if retry_after is not None:
            headers["Retry-After"] = _seconds_text(retry_after)
        fault = Fault("respond", times, _paths(paths), status, body, headers, after=after)
        self._arm(fault)

    def delay(
        self, seconds: float, *, times: int = 1, paths: tuple[str, ...] | str | None = None
    ) -> None:
        """Wait ``seconds``, then answer normally: a slow but healthy PostHog."""
        self._arm(Fault("delay", times, _paths(paths), seconds=seconds))

    def hang(
        self, seconds: float, *, times: int = 1, paths: tuple[str, ...] | str | None = None
    ) -> None:
        """Say nothing for ``seconds``, then close the connection without an answer."""
        self._arm(Fault("hang", times, _paths(paths), seconds=seconds))

    def stall_body(
        self, seconds: float, *, times: int = 1, paths: tuple[str, ...] | str | None = None
    ) -> None:
        """Send the status line and headers, part of the body, then stall for ``seconds``."""
        self._arm(Fault("stall_body", times, _paths(paths), seconds=seconds))

    def trickle(
        self,
        bytes_per_second: float = 1.0,
        *,
        whole: bool = False,
        times: int = 1,
        paths: tuple[str, ...] | str | None = None,
    ) -> None:
        """Answer normally, but send the body ``bytes_per_second`` (with ``whole``, the
        status line and headers too): every read is quick, the answer never ends."""
        if not bytes_per_second > 0:
            raise ValueError("bytes_per_second must be > 0")
        self._arm(Fault("trickle", times, _paths(paths), seconds=1 / bytes_per_second, whole=whole))

    def reset(self, *, times: int = 1, paths: tuple[str, ...] | str | None = None) -> None:
        """Reset the TCP connection instead of answering."""
        self._arm(Fault("reset", times, _paths(paths)))

    def garbage(self, *, times: int = 1, paths: tuple[str, ...] | str | None = None) -> None:
        """Answer bytes that are not HTTP, then close."""
        self._arm(Fault("garbage", times, _paths(paths)))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def take(self, path: str) -> Fault | None:
        """The fault for this request, if one is armed for its path (uses it up)."""
        with self._lock:
            for fault in self._armed:
                if fault.matches(path):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.times -= 1
                    if fault.times <= 0:
                        self._armed.remove(fault)
                    return fault
        return None

    def _arm(self, fault: Fault) -> None:
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._armed.append(fault)


def _paths(paths: tuple[str, ...] | str | None) -> tuple[str, ...] | None:
    return (paths,) if isinstance(paths, str) else paths


def _seconds_text(value: str | float) -> str:
    return value if isinstance(value, str) else f"{value:g}"


class TrickleWriter(io.BufferedIOBase):
    """A handler's ``wfile`` that sends one byte per ``fault.seconds`` (the headers,
    written in one piece first, at full speed unless ``fault.whole``); stops quietly
    when the client hangs up or the server stops."""

    def __init__(self, raw: io.BufferedIOBase, fault: Fault, stopping: threading.Event) -> None:
        super().__init__()
        self._raw = raw
        self._interval = fault.seconds
        self._fast = 0 if fault.whole else 1  # writes still to pass at full speed
        self._stopping = stopping
        self._gone = False

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self._fast:
            self._fast -= 1
            return self._send(bytes(data))
        for i in range(len(data)):
            if self._gone or self._stopping.wait(self._interval):
                break
            self._send(bytes(data[i : i + 1]))
        return len(data)

    def flush(self) -> None:
        if not self._gone:
            self._send(b"")

    def close(self) -> None:
        if not self.closed:
            super().close()  # flushes through us first
            self._raw.close()

    def _send(self, data: bytes) -> int:
        try:
            self._raw.write(data)
            self._raw.flush()
        except OSError:
            self._gone = True  # the client gave up: the point of the exercise
        return len(data)
