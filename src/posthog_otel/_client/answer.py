"""An answer's body, read within a limit: in bytes as received, and in bytes once inflated.

urllib3 inflates a ``Content-Encoding: gzip`` answer for us, but only its releases from
2.6 bound how much one read may inflate (earlier 2.x inflate each piece whole, so 64 KB
of a gzip bomb becomes 64 MB at once), and we support urllib3 2.0 and later. So the
transport asks urllib3 for the raw bytes and this module inflates them itself, with
``zlib``'s ``max_length``, in pieces of at most ``ANSWER_READ_CHUNK`` bytes: never more
than the limit plus one piece is held, whatever the ratio. The limits are in
``_limits`` ("HTTP answers").
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

from posthog_otel._limits import ANSWER_READ_CHUNK

__all__ = ["AnswerTooLargeError", "UnreadableAnswerError", "read_body"]

_GZIP = ("gzip", "x-gzip")


class AnswerTooLargeError(Exception):
    """The body passed its limit; ``stage`` says how it was measured."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage  # "as declared", "as received" or "once inflated"


class UnreadableAnswerError(Exception):
    """The body is not the gzip or deflate its ``Content-Encoding`` says."""


def read_body(read: Callable[[int], bytes], encoding: str, limit: int) -> bytes:
    """Every byte ``read(n)`` gives (``b""`` at the end), inflated as ``encoding`` says;
    ``AnswerTooLargeError`` as soon as either measure passes ``limit``. An encoding we do
    not inflate (brotli, a chain of several) is kept as it came."""
    body = _Body(limit)
    inflater = _Inflater.for_encoding(encoding, body)
    received = 0
    while data := read(ANSWER_READ_CHUNK):
        received += len(data)
        if received > limit:
            raise AnswerTooLargeError("as received")
        if inflater is None:
            body.add(data)
        else:
            inflater.feed(data)
    if inflater is not None and received:
        inflater.finish()
    return b"".join(body.pieces)


class _Body:
    """Pieces of the answer so far, and their size, held to ``limit``."""

    def __init__(self, limit: int) -> None:
        self.pieces: list[bytes] = []
        self.size = 0
        self.limit = limit

    def room(self) -> int:
        """How much the next piece may inflate to: one byte past the limit tells."""
        return min(self.limit - self.size + 1, ANSWER_READ_CHUNK)

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.limit:
            raise AnswerTooLargeError("once inflated")
        self.pieces.append(piece)


class _Decompressor(Protocol):
    """What ``zlib.decompressobj()`` returns (its class has no public name)."""

    @property
    def eof(self) -> bool: ...
    @property
    def unconsumed_tail(self) -> bytes: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = 0, /) -> bytes: ...


class _Inflater:
    """gzip (one member or several) or deflate (zlib-wrapped or raw), inflated into
    ``body`` a bounded piece at a time."""

    def __init__(self, encoding: str, body: _Body) -> None:
        self._gzip = encoding in _GZIP
        self._body = body
        self._obj: _Decompressor | None = zlib.decompressobj(31) if self._gzip else None
        self._done = False  # past the last member: the rest is ignored, as gzip tools do

    @classmethod
    def for_encoding(cls, encoding: str, body: _Body) -> _Inflater | None:
        codings = [c.strip() for c in encoding.lower().split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) == 1 and codings[0] in (*_GZIP, "deflate"):
            return cls(codings[0], body)
        return None

    def feed(self, data: bytes) -> None:
        if self._obj is None:  # deflate: zlib's two-byte header, or raw deflate without one
            head = data[:2]
            wrapped = len(head) == 2 and head[0] & 0x0F == 8
            wrapped = wrapped and int.from_bytes(head, "big") % 31 == 0
            self._obj = zlib.decompressobj(15 if wrapped else -15)
        while data and not self._done:
            self._inflate(data)
            if not self._obj.eof:
                data = self._obj.unconsumed_tail  # empty once all of it went in
            elif self._gzip and self._obj.unused_data.startswith(b"\x1f\x8b"):
                data = self._obj.unused_data  # another gzip member
                self._obj = zlib.decompressobj(31)
            else:
                self._done = True

    def finish(self) -> None:
        """Whatever zlib still holds, then a check that the stream ended properly."""
        while self._obj is not None and not (self._obj.eof or self._done):
            if not self._inflate(b""):
                break
        if self._obj is None or not (self._obj.eof or self._done):
            raise UnreadableAnswerError("the compressed answer is cut short")

    def _inflate(self, data: bytes) -> int:
        assert self._obj is not None
        try:
            piece = self._obj.decompress(data, self._body.room())
        except zlib.error as exc:
            raise UnreadableAnswerError(str(exc)) from None
        self._body.add(piece)
        return len(piece)
