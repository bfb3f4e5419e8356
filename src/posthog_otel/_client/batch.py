"""``/batch/`` bodies: packing encoded events, sealing, and the request size limits.

The one place that knows how large a request may be. A body keeps ``sent_at`` as
its last key, so a retry rewrites only that tail (see the gzip part below).

Compression: gzip request bodies: whole, or written as they fill and sealed so a retry can
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
from collections.abc import Iterable, Iterator
from types import ModuleType

from posthog_otel._client.events import now_iso
from posthog_otel._json import dumps

# PostHog's capture service takes 20 MB per request; we stay well under it.
MAX_BATCH_BYTES = 5 * 1024 * 1024  # one request, uncompressed: PostHogClient.batch
# The pipeline's batches stay smaller: a larger raw batch costs memory and a longer
# pause (holding the GIL) to compress it.
PIPELINE_BATCH_BYTES = 2 * 1024 * 1024
MAX_BATCH_EVENTS = 20_000  # the largest max_batch_size accepted

_TAIL_SIZE = len(b'],"sent_at":"2026-01-01T00:00:00.000000+00:00"}')


class OpenBatch:
    """A ``/batch/`` body being filled: the head, then event JSON joined by commas.

    ``seal`` compresses it in one go (when gzip is on), so a batch waiting for the
    network holds about a tenth of its size. Not chunk by chunk as it fills: each
    ``compress`` releases the GIL, and a thread winning it back from a busy
    application waits at least a switch interval (5 ms), often far longer.
    """

    __slots__ = ("_data", "_gzip", "_head", "starts")

    def __init__(self, head: bytes, *, gzip: bool) -> None:
        self._head = head
        self._gzip = gzip
        self._data = bytearray(head)
        self.starts: list[int] = []  # where each event begins in the body

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def nbytes(self) -> int:
        """Bytes held while waiting to be sealed."""
        return len(self._data)

    def fits(self, encoded: bytes, limit: int = MAX_BATCH_BYTES) -> bool:
        """Whether ``encoded`` can join without the body passing ``limit`` (a lone event can)."""
        return not self.starts or len(self._data) + len(encoded) + 1 + _TAIL_SIZE <= limit

    def append(self, encoded: bytes, max_events: int, limit: int) -> bool:
        """Add ``encoded`` unless the batch holds ``max_events`` events already or would
        pass ``limit`` bytes (a lone event is always added); ``False``: not added, full.
        ``fits`` and ``add`` in one call, for the encoder's loop."""
        starts = self.starts
        data = self._data
        if starts:
            if len(starts) >= max_events or len(data) + len(encoded) + 1 + _TAIL_SIZE > limit:
                return False
            data += b","
        starts.append(len(data))
        data += encoded
        return True

    def add(self, encoded: bytes) -> None:
        if self.starts:
            self._data += b","
        self.starts.append(len(self._data))
        self._data += encoded

    def seal(self) -> SealedBatch:
        if not self._gzip:
            return SealedBatch(self._head, bytes(self._data), self.starts, gzipped=False)
        writer = GzipWriter()
        writer.write(self._data)
        return SealedBatch(self._head, writer.seal(), self.starts, gzipped=True)


class SealedBatch:
    """A finished batch as it will be sent, compressed once when gzip is on.

    ``sent_at`` is the body's last key, so each attempt writes only that tail and a
    retry reports the time it is really sent; a batch PostHog finds too large can
    still be opened again and halved.
    """

    __slots__ = ("_head", "_prefix", "gzipped", "starts")

    def __init__(
        self, head: bytes, prefix: bytes | SealedGzip, starts: list[int], *, gzipped: bool
    ) -> None:
        self._head = head
        self._prefix = prefix
        self.starts = starts
        self.gzipped = gzipped

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def nbytes(self) -> int:
        """Bytes held while waiting to be sent."""
        prefix = self._prefix
        return len(prefix.data if isinstance(prefix, SealedGzip) else prefix)

    def body(self, sent_at: str | None = None) -> bytes:
        tail = b'],"sent_at":' + dumps(sent_at or now_iso()) + b"}"
        if isinstance(self._prefix, SealedGzip):
            return self._prefix.finish(tail)
        return self._prefix + tail

    def events(self) -> list[bytes]:
        """Each event's JSON again (for splitting a batch in two)."""
        raw = self._prefix.unsealed() if isinstance(self._prefix, SealedGzip) else self._prefix
        ends = [start - 1 for start in self.starts[1:]] + [len(raw)]
        return [raw[start:end] for start, end in zip(self.starts, ends, strict=True)]

    def halves(self) -> tuple[SealedBatch, SealedBatch]:
        events = self.events()
        middle = len(events) // 2
        return self._sealed(events[:middle]), self._sealed(events[middle:])

    def _sealed(self, events: list[bytes]) -> SealedBatch:
        batch = OpenBatch(self._head, gzip=self.gzipped)
        for event in events:
            batch.add(event)
        return batch.seal()


def batch_head(api_key: str) -> bytes:
    """Everything in a ``/batch/`` body before the first event."""
    return dumps({"api_key": api_key, "historical_migration": False})[:-1] + b',"batch":['


def batches(
    encoded: Iterable[bytes],
    head: bytes,
    *,
    gzip: bool,
    max_events: int | None = None,
    limit: int = MAX_BATCH_BYTES,
) -> Iterator[SealedBatch]:
    """Pack events, in order, into as few sealed batches as the size limits allow; each
    batch is yielded as soon as it is full, so a caller can send while it encodes."""
    batch = OpenBatch(head, gzip=gzip)
    for item in encoded:
        full = max_events is not None and len(batch) >= max_events
        if batch and (full or not batch.fits(item, limit)):
            yield batch.seal()
            batch = OpenBatch(head, gzip=gzip)
        batch.add(item)
    if batch:
        yield batch.seal()


_deflate: ModuleType
try:  # the optional "isal" extra: Intel's ISA-L, the same deflate format, ~6x faster here
    # (and its CRC-32, the same checksum, ~9x fewer instructions than zlib's)
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
        self._crc = _deflate.crc32(data, self._crc)
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
