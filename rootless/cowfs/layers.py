"""Unpacked layers: the read-only lowers under ``<root>/layers/sha256/<diff_id hex>``.

A layer is extracted once, from its blob, straight into a directory under the
store's ``tmp/`` (never through a mount), then renamed into place: a
concurrent build or run sees the whole layer or none of it. Two processes
unpacking the same layer both succeed; the loser's copy is thrown away.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from rootless.errors import LayerError


class _Layer(Protocol):
    @property
    def digest(self) -> str: ...

    @property
    def diff_id(self) -> str: ...


class _Store(Protocol):
    root: Path

    def layer_dir(self, diff_id: str) -> Path: ...

    def blob_path(self, digest: str) -> Path: ...


def unpack_layer(store: _Store, digest: str, diff_id: str) -> Path:
    """The unpacked directory of the layer whose blob is DIGEST, made if missing."""
    from rootless.fsutil import force_rmtree
    from rootless.oci.layer import extract

    dest = store.layer_dir(diff_id)
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = store.root / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=tmp_root, prefix="unpack-"))
    try:
        staging = scratch / "layer"
        blob_path = store.blob_path(digest)
        if not blob_path.is_file():
            raise LayerError(f"layer {digest} is not in the store", hint="pull the image again")
        with open(blob_path, "rb") as blob:
            extract(blob, staging, name=digest)
        try:
            os.rename(staging, dest)
        except OSError:
            if not dest.is_dir():  # not simply another process winning the race
                raise
    finally:
        with contextlib.suppress(OSError):
            force_rmtree(scratch)
    return dest


def ensure_unpacked(store: _Store, layers: Sequence[_Layer]) -> list[Path]:
    """The unpacked directory of each layer (objects with .digest and .diff_id), in order."""
    return [unpack_layer(store, layer.digest, layer.diff_id) for layer in layers]
