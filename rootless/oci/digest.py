"""Content digests: ``sha256:<64 hex>``, validated, computed while streaming."""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from rootless.errors import DigestMismatch, StoreError

_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")
CHUNK = 1 << 20


class Digest(str):
    """A validated ``sha256:<hex>`` string; usable wherever a str is.

    Only sha256 is accepted: it is the only algorithm the store keeps.
    """

    def __new__(cls, text: str) -> Digest:
        if isinstance(text, Digest):
            return text
        if not isinstance(text, str) or not _SHA256.fullmatch(text):
            raise StoreError(f"invalid digest {text!r}: expected sha256:<64 lowercase hex>")
        return super().__new__(cls, text)

    @property
    def algorithm(self) -> str:
        return "sha256"

    @property
    def hex(self) -> str:
        return self[7:]

    @property
    def short(self) -> str:
        """The 12-hex-digit form Docker prints as an image ID."""
        return self[7:19]

    @classmethod
    def from_hex(cls, hexpart: str) -> Digest:
        return cls(f"sha256:{hexpart}")


def is_digest(text: str) -> bool:
    return bool(_SHA256.fullmatch(text))


def sha256_of(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


class Hasher:
    """Streaming sha256 with a byte count: ``update`` as data passes, then ``digest()``."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest("sha256:" + self._hash.hexdigest())


def sha256_of_stream(stream: BinaryIO) -> tuple[Digest, int]:
    """Digest and size of everything left in ``stream``."""
    hasher = Hasher()
    while chunk := stream.read(CHUNK):
        hasher.update(chunk)
    return hasher.digest(), hasher.size


def verify(actual: str, expected: str | None, what: str = "content") -> None:
    """Raise DigestMismatch unless ``expected`` is None or equals ``actual``."""
    if expected is not None and actual != expected:
        raise DigestMismatch(f"{what} has digest {actual}, expected {expected}")
