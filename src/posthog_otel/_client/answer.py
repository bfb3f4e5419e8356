"""An answer's body, read within a limit: in bytes as received, and in bytes once inflated.

urllib3 inflates a ``Content-Encoding: gzip`` answer for us, but only its releases from
2.6 bound how much one read may inflate (earlier 2.x inflate each piece whole, so 64 KB
of a gzip bomb becomes 64 MB at once), and we support urllib3 2.0 and later. So the
transport asks urllib3 for the raw bytes and this module inflates them itself, with
``zlib``'s ``max_length``: never more than the limit plus one byte is held, whatever
the ratio. The limits are in ``_limits`` ("HTTP answers").
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

from posthog_otel._limits import ANSWER_READ_CHUNK

__all__ = ["AnswerTooLargeError", "UnreadableAnswerError", "read_body"]

_GZIP = ("gzip", "x-gzip")


class AnswerTooLargeError(Exception):
    """The body passed ``limit``; ``stage`` says how it was measured."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage  # "as received" or "once inflated"


class UnreadableAnswerError(Exception):
    """The body is not the gzip or deflate its ``Content-Encoding`` says."""


def read_body(read: Callable[[int], bytes], encoding: str, limit: int) -> bytes:
    """Every byte ``read(n)`` gives (``b""`` at the end), inflated as ``encoding`` says;
    ``AnswerTooLargeError`` as soon as either measure passes ``limit``. An encoding we do not
    inflate (brotli, a chain of several) is kept as it came."""
    inflater = _Inflater.for_encoding(encoding, limit)
    out = bytearray()
    received = 0
    while data := read(ANSWER_READ_CHUNK):
        received += len(data)
        if received > limit:
            raise AnswerTooLargeError("as received")
        if inflater is None:
            out += data
        else:
            inflater.feed(data, out)
    if inflater is not None and received:
        inflater.finish(out)
    return bytes(out)


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
    """gzip (one member or several) or deflate (zlib-wrapped or raw), inflated at most
    ``limit + 1`` bytes in all."""

    def __init__(self, encoding: str, limit: int) -> None:
        self._gzip = encoding in _GZIP
        self._limit = limit
        self._obj: _Decompressor | None = zlib.decompressobj(31) if self._gzip else None
        self._done = False  # past the last member: the rest is ignored, as gzip tools do

    @classmethod
    def for_encoding(cls, encoding: str, limit: int) -> _Inflater | None:
        codings = [c.strip() for c in encoding.lower().split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) == 1 and codings[0] in (*_GZIP, "deflate"):
            return cls(codings[0], limit)
        return None

    def feed(self, data: bytes, out: bytearray) -> None:
        if self._obj is None:  # deflate: zlib's two-byte header, or raw deflate without one
            head = data[:2]
            wrapped = len(head) == 2 and head[0] & 0x0F == 8
            wrapped = wrapped and int.from_bytes(head, "big") % 31 == 0
            self._obj = zlib.decompressobj(15 if wrapped else -15)
        while data and not self._done:
            try:
                out += self._obj.decompress(data, self._limit - len(out) + 1)
            except zlib.error as exc:
                raise UnreadableAnswerError(str(exc)) from None
            if len(out) > self._limit:
                raise AnswerTooLargeError("once inflated")
            if not self._obj.eof:
                data = self._obj.unconsumed_tail  # empty unless the output bound stopped it
            elif self._gzip and self._obj.unused_data.startswith(b"\x1f\x8b"):
                data = self._obj.unused_data  # another gzip member
                self._obj = zlib.decompressobj(31)
            else:
                self._done = True

    def finish(self, out: bytearray) -> None:
        """Whatever zlib still holds, then a check that the stream ended properly."""
        obj = self._obj
        while obj is not None and not obj.eof and not self._done:
            piece = obj.decompress(b"", self._limit - len(out) + 1)
            if not piece:
                break
            out += piece
            if len(out) > self._limit:
                raise AnswerTooLargeError("once inflated")
        if obj is None or not (obj.eof or self._done):
            raise UnreadableAnswerError("the compressed answer is cut short")
