"""Gzip request bodies: whole, or written as they fill and sealed so a retry can
rewrite the end.

A sealed body is a gzip header and a sync-flushed raw deflate stream of everything
but the tail; each attempt appends the tail compressed by a fresh compressor, then
the trailer (a running CRC-32 and the length). Blocks from two compressors may
follow each other in one deflate stream because the second never refers back into
the first, and the sync flush leaves the stream on a byte boundary.
"""

from __future__ import annotations

import struct
import zlib
from types import ModuleType

_deflate: ModuleType
try:  # the optional "isal" extra: Intel's ISA-L, the same deflate format, ~6x faster here
    from isal import isal_zlib as _deflate
except ImportError:
    _deflate = zlib

LEVEL = 1  # fast: level 1 already shrinks event JSON 5-10x
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, mtime 0


def gzip_bytes(body: bytes) -> bytes:
    """Gzip a whole body (zlib and ISA-L release the GIL while they compress)."""
    compressor = _deflate.compressobj(LEVEL, zlib.DEFLATED, 31)
    compressed: bytes = compressor.compress(body) + compressor.flush()
    return compressed


class GzipWriter:
    """Compresses what it is given as it comes; ``seal`` ends it without the tail."""

    __slots__ = ("_chunks", "_compressor", "_crc", "_size")

    def __init__(self) -> None:
        self._compressor = _deflate.compressobj(LEVEL, zlib.DEFLATED, -15)
        self._chunks = [_HEADER]
        self._crc = 0
        self._size = 0

    def write(self, data: bytes | bytearray) -> None:
        self._chunks.append(self._compressor.compress(data))
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)

    def seal(self) -> SealedGzip:
        self._chunks.append(self._compressor.flush(zlib.Z_SYNC_FLUSH))
        return SealedGzip(b"".join(self._chunks), self._crc, self._size)


class SealedGzip:
    """Everything but the tail, compressed once."""

    __slots__ = ("_crc", "_size", "data")

    def __init__(self, data: bytes, crc: int, size: int) -> None:
        self.data = data
        self._crc = crc
        self._size = size

    def finish(self, tail: bytes) -> bytes:
        """The complete gzip body with ``tail`` at the end."""
        compressor = _deflate.compressobj(LEVEL, zlib.DEFLATED, -15)
        crc = zlib.crc32(tail, self._crc)
        trailer = struct.pack("<II", crc, (self._size + len(tail)) & 0xFFFFFFFF)
        return b"".join((self.data, compressor.compress(tail), compressor.flush(), trailer))

    def unsealed(self) -> bytes:
        """The uncompressed prefix again (for the rare batch that must be split)."""
        return zlib.decompressobj(-15).decompress(self.data[len(_HEADER) :])
