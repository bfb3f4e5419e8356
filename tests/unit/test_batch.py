"""``/batch/`` bodies: packing, size limits, sealing and halving."""

from __future__ import annotations

import json

import pytest

from posthog_otel import Event
from posthog_otel._client.batch import (
    MAX_BATCH_BYTES,
    OpenBatch,
    SealedBatch,
    batch_head,
    batches,
)

HEAD = batch_head("phc_k")


pytestmark = pytest.mark.usefixtures("deflate_backend")  # each test with isal, then zlib


def events_in(batch: SealedBatch) -> list[dict]:
    import gzip

    body = batch.body()
    return json.loads(gzip.decompress(body) if batch.gzipped else body)["batch"]


@pytest.mark.parametrize("gzip", [True, False])
def test_batches_respect_the_size_limit_and_keep_order(gzip):
    encoded = [Event(f"e{i}", "u", {"blob": "x" * 900}).encode() for i in range(50)]
    packed = list(batches(encoded, HEAD, gzip=gzip, limit=10_000))
    assert [e["event"] for b in packed for e in events_in(b)] == [f"e{i}" for i in range(50)]
    import gzip as gzip_module

    for batch in packed:
        body = batch.body()
        assert len(gzip_module.decompress(body) if gzip else body) <= 10_000
    assert len(packed) > 5
    assert [len(b) for b in batches(encoded, HEAD, gzip=gzip, max_events=20)] == [20, 20, 10]
    assert list(batches([], HEAD, gzip=gzip)) == []
    assert MAX_BATCH_BYTES == 5 * 1024 * 1024


def test_a_lone_event_always_fits():
    assert OpenBatch(HEAD, gzip=True).fits(b"x" * (MAX_BATCH_BYTES * 2))


@pytest.mark.parametrize("gzip", [True, False])
def test_append_adds_what_fits_and_says_when_the_batch_is_full(gzip):
    encoded = [Event(f"e{i}", "u", {"blob": "x" * 900}).encode() for i in range(30)]
    batch = OpenBatch(HEAD, gzip=gzip)
    taken = [data for data in encoded if batch.append(data, 20, 10_000)]
    assert len(batch) == len(taken) < 20  # the bytes, not the count, filled it
    by_count = OpenBatch(HEAD, gzip=gzip)
    assert [by_count.append(data, 3, MAX_BATCH_BYTES) for data in encoded[:5]] == [True] * 3 + [
        False
    ] * 2
    lone = OpenBatch(HEAD, gzip=gzip)
    assert lone.append(b'{"event":"big"}' * 10_000, 1, 100)  # a lone event always goes in
    assert [e["event"] for e in events_in(batch.seal())] == [f"e{i}" for i in range(len(taken))]


def filled(n: int, gzip: bool) -> OpenBatch:
    batch = OpenBatch(HEAD, gzip=gzip)
    for i in range(n):
        batch.add(Event(f"e{i}", "u", {"i": i, "pad": "p" * 200}).encode())
    return batch


@pytest.mark.parametrize("gzip", [True, False])
def test_a_sealed_batch_rewrites_only_its_sent_at(gzip):
    import gzip as gzip_module

    sealed = filled(500, gzip).seal()
    raw_size = sum(len(e) for e in sealed.events())
    assert len(sealed) == 500
    assert sealed.gzipped is gzip
    bodies = [
        sealed.body("2026-01-01T00:00:00.000000+00:00"),
        sealed.body("2026-01-01T00:00:09.000000+00:00"),
    ]
    decoded = [json.loads(gzip_module.decompress(b) if gzip else b) for b in bodies]
    assert [d["sent_at"] for d in decoded] == [
        "2026-01-01T00:00:00.000000+00:00",
        "2026-01-01T00:00:09.000000+00:00",
    ]
    for body in decoded:
        assert body["api_key"] == "phc_k"
        assert body["historical_migration"] is False
        assert [e["event"] for e in body["batch"]] == [f"e{i}" for i in range(500)]
    if gzip:
        assert sealed.nbytes < raw_size / 5  # it waits compressed


@pytest.mark.parametrize("gzip", [True, False])
def test_a_sealed_batch_can_still_be_halved(gzip):
    first, second = filled(7, gzip).seal().halves()
    assert [e["event"] for e in events_in(first)] == ["e0", "e1", "e2"]
    assert [e["event"] for e in events_in(second)] == ["e3", "e4", "e5", "e6"]
    again, rest = second.halves()
    assert [e["event"] for e in events_in(again)] == ["e3", "e4"]
    assert [e["event"] for e in events_in(rest)] == ["e5", "e6"]
