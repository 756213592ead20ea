"""How big a layer is once unpacked, without unpacking it.

Docker's SIZE columns count layers uncompressed. A gzip member ends with
ISIZE, the uncompressed length modulo 2**32, so four bytes read at the end
of a blob answer it: exactly for layers under 4 GiB unpacked (all our own
blobs and nearly every pulled one are a single gzip member). Beyond 4 GiB
the figure wraps; it is raised in 4 GiB steps only while it is smaller than
any data that compresses to the blob's size could be (deflate's best ratio
is about 1032:1), so there it is a lower bound.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from rootless.oci.model import GZIP_LAYER_TYPES

_WRAP = 1 << 32
_MAX_RATIO = 1032  # deflate's best case: 258 bytes from about 2 bits


def uncompressed_size(path: Path, media_type: str) -> int:
    """Bytes of the tar inside a layer blob (the blob's own size if not gzip)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(2)
            if media_type not in GZIP_LAYER_TYPES and head != b"\x1f\x8b":
                return size
            if size < 18:
                return size
            f.seek(size - 4)
            (isize,) = struct.unpack("<I", f.read(4))
    except OSError:
        return 0
    # The smallest candidate at least as large as the data could be.
    floor = max(size // _MAX_RATIO, 0)
    while isize < floor:
        isize += _WRAP
    return isize
