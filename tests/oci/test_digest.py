from __future__ import annotations

import hashlib
import io

import pytest

from rootless.errors import DigestMismatch, StoreError
from rootless.oci.digest import Digest, Hasher, sha256_of, sha256_of_stream, verify


def test_digest_validates_and_splits() -> None:
    d = Digest("sha256:" + "0a" * 32)
    assert d.algorithm == "sha256" and d.hex == "0a" * 32 and d.short == "0a" * 6
    assert Digest(d) is d
    assert Digest.from_hex("0a" * 32) == d


@pytest.mark.parametrize("text", ["sha256:abc", "md5:" + "a" * 32, "sha256:" + "A" * 64,
                                  "", "sha256:" + "g" * 64])
def test_bad_digests_are_refused(text: str) -> None:
    with pytest.raises(StoreError):
        Digest(text)


def test_streaming_matches_one_shot() -> None:
    data = bytes(range(256)) * 5000
    hasher = Hasher()
    for i in range(0, len(data), 777):
        hasher.update(data[i:i + 777])
    assert hasher.digest() == sha256_of(data) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert hasher.size == len(data)
    assert sha256_of_stream(io.BytesIO(data)) == (sha256_of(data), len(data))


def test_verify() -> None:
    verify("sha256:" + "a" * 64, None)
    with pytest.raises(DigestMismatch, match="expected"):
        verify("sha256:" + "a" * 64, "sha256:" + "b" * 64)
