"""Unpacked layers: the read-only lowers under ``<root>/layers/sha256/<diff_id hex>``.

A layer is extracted once, from its blob, straight into a directory under the
store's ``tmp/`` (never through a mount), its diff_id checked as it streams, then
renamed into place: a concurrent build or run sees the whole layer or none of it.
Two processes unpacking the same layer both succeed; the loser's copy is thrown away.
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
    """The unpacked directory of the layer whose blob is DIGEST, made if missing.

    The blob's decompressed tar must have DIFF_ID as its digest (checked as it is
    extracted, no second read): otherwise LayerError, and nothing lands under
    ``layers/``, so a directory there always holds the content its name says.
    """
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
            extract(blob, staging, name=digest, diff_id=diff_id)
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


# Cached on each unpacked layer's root: "1" when some entry records an owner other than
# root or a device node, which only the fuse driver can present (overlayfs and vfs show
# what is on disk: every file the user's, so root in the namespace).
_FOREIGN_OWNERS_XATTR = "user.rootless.scan.foreign-owners"


def has_foreign_owners(lowers: Sequence[Path]) -> bool:
    """Whether any of these unpacked layers records owners the kernel cannot present.

    With the full ID mapping, such images need the fuse driver for files to show
    their owners (``nobody`` writing its own directory, as under Docker). A layer
    is scanned once; the answer is kept on its root directory.
    """
    return any(_layer_has_foreign_owners(layer) for layer in lowers)


def _layer_has_foreign_owners(layer: Path) -> bool:
    try:
        return os.getxattr(layer, _FOREIGN_OWNERS_XATTR) == b"1"
    except OSError:
        pass
    found = _scan_for_foreign_owners(layer)
    with contextlib.suppress(OSError):  # no user xattrs here: scan again next time
        os.setxattr(layer, _FOREIGN_OWNERS_XATTR, b"1" if found else b"0")
    return found


def _scan_for_foreign_owners(layer: Path) -> bool:
    from rootless.oci.layer_ondisk import (
        DEVICES_XATTR,
        LINK_OWNER_PREFIX,
        OVERRIDE_XATTR,
        Override,
    )

    def foreign(path: str) -> bool:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            return False
        for name in names:
            if name == DEVICES_XATTR:
                return True
            if name == OVERRIDE_XATTR or name.startswith(LINK_OWNER_PREFIX):
                raw = os.getxattr(path, name, follow_symlinks=False)
                if name == OVERRIDE_XATTR:
                    record = Override.decode(raw)
                    if record is not None and (record.uid, record.gid) != (0, 0):
                        return True
                elif raw.split(b":")[:2] != [b"0", b"0"]:
                    return True
        return False

    # Directories are checked as they are walked (os.walk does not follow symlinks;
    # a symlink's owner is recorded on its directory, checked above it).
    for top, _dirs, files in os.walk(layer):
        if foreign(top) or any(foreign(os.path.join(top, name)) for name in files):
            return True
    return False
