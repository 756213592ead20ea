"""Parallel gzip: valid, deterministic whatever the chunking and thread count."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest

from rootless.oci.pgzip import BLOCK, ParallelGzip


def _compress(data: bytes, chunk: int, threads: int) -> bytes:
    out: list[bytes] = []
    gz = ParallelGzip(out.append, threads=threads)
    for i in range(0, len(data), chunk):
        gz.write(data[i:i + chunk])
    gz.close()
    return b"".join(out)


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345])
def test_round_trip_and_determinism(size: int) -> None:
    data = (os.urandom(size // 2) + bytes(size - size // 2)) if size else b""
    reference = _compress(data, 1 << 20, threads=1)
    assert gzip.decompress(reference) == data
    assert zlib.decompress(reference, 31) == data  # one single gzip member
    for chunk, threads in ((7777, 2), (BLOCK, 4), (3 * BLOCK, 3)):
        assert _compress(data, chunk, threads) == reference


def test_compresses() -> None:
    data = b"layer " * 1_000_000
    assert len(_compress(data, 65536, threads=2)) < len(data) // 50


def test_abort_discards() -> None:
    out: list[bytes] = []
    gz = ParallelGzip(out.append, threads=2)
    gz.write(bytes(3 * BLOCK))
    gz.abort()
    gz.close()  # no-op after abort
    with pytest.raises((EOFError, zlib.error, gzip.BadGzipFile)):
        gzip.decompress(b"".join(out))
