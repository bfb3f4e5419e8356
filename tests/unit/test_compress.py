"""Gzip bodies, whole and sealed in two steps, checked by independent decoders."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import zlib

import pytest

from posthog_otel._client.batch import GzipWriter, gzip_bytes

PARTS = [b'{"api_key":"k","batch":[', b",".join(b'{"event":"e%d"}' % i for i in range(3000))]


pytestmark = pytest.mark.usefixtures("deflate_backend")  # each test with isal, then zlib


def test_whole_bodies():
    joined = b"".join(PARTS)
    assert gzip.decompress(gzip_bytes(joined)) == joined


def sealed_from(parts):
    writer = GzipWriter()
    for part in parts:
        writer.write(part)
    return writer.seal()


def test_a_sealed_body_is_valid_gzip_for_every_decoder():
    sealed = sealed_from(PARTS)
    for tail in (b'],"sent_at":"one"}', b'],"sent_at":"another one"}'):
        body = sealed.finish(tail)
        expected = b"".join(PARTS) + tail
        assert gzip.decompress(body) == expected
        assert zlib.decompressobj(47).decompress(body) == expected  # as the devserver reads it
        if shutil.which("gzip"):
            assert (
                subprocess.run(["gzip", "-dc"], input=body, capture_output=True, check=True).stdout
                == expected
            )


def test_unsealed_gives_the_prefix_back():
    assert sealed_from(PARTS).unsealed() == b"".join(PARTS)


def test_a_corrupted_trailer_is_caught_by_decoders():
    body = bytearray(sealed_from(PARTS).finish(b"]}"))
    body[-5] ^= 0xFF  # flip a CRC byte: our trailer is really checked
    with pytest.raises((OSError, zlib.error)):
        gzip.decompress(bytes(body))
