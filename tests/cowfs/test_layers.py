"""has_foreign_owners: which unpacked layers need the fuse driver to show their owners."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from rootless.cowfs.layers import has_foreign_owners
from rootless.oci.layer import extract


def _layer(tmp_path: Path, name: str, entries: list[tuple[str, int, bytes]]) -> Path:
    """Unpack a layer of (path, uid, type) entries; files are empty."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, uid, kind in entries:
            info = tarfile.TarInfo(path)
            info.type, info.uid, info.gid, info.mode = kind, uid, uid, 0o755
            if kind == tarfile.SYMTYPE:
                info.linkname = "target"
            tar.addfile(info, io.BytesIO(b""))
    dest = tmp_path / name
    buf.seek(0)
    extract(buf, dest)
    return dest


def test_root_only_layers_keep_the_kernel_driver(tmp_path: Path) -> None:
    plain = _layer(tmp_path, "plain", [("etc", 0, tarfile.DIRTYPE), ("etc/f", 0, tarfile.REGTYPE),
                                       ("etc/l", 0, tarfile.SYMTYPE)])
    assert has_foreign_owners([plain]) is False
    assert has_foreign_owners([]) is False


def test_any_non_root_owner_needs_fuse_and_the_answer_is_kept(tmp_path: Path) -> None:
    plain = _layer(tmp_path, "plain", [("a", 0, tarfile.REGTYPE)])
    deep = _layer(tmp_path, "deep", [("x", 0, tarfile.DIRTYPE), ("x/y", 0, tarfile.DIRTYPE),
                                     ("x/y/owned", 65534, tarfile.REGTYPE)])
    link = _layer(tmp_path, "link", [("d", 0, tarfile.DIRTYPE), ("d/l", 7, tarfile.SYMTYPE)])
    assert has_foreign_owners([plain, deep]) is True
    assert has_foreign_owners([link]) is True
    # The scan is cached on the layer's root: removing the evidence does not change it.
    os.remove(deep / "x" / "y" / "owned")
    assert has_foreign_owners([deep]) is True
