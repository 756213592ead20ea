"""Small layer tars for the oci.layer_* tests, and extracting them."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from rootless.oci.layer_extract import extract


def tar_of(*entries: tuple[str, str | bytes | None], **kw: int) -> bytes:
    """A tar from (name, data) pairs: bytes → file, None → dir, "->target" → symlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = kw.get("mtime", 1700000000)
            info.uid = kw.get("uid", 0)
            info.gid = kw.get("gid", 0)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, str) and data.startswith("->"):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:]
                tar.addfile(info)
            elif isinstance(data, str) and data.startswith("=>"):
                info.type, info.linkname = tarfile.LNKTYPE, data[2:]
                tar.addfile(info)
            else:
                raw = data if isinstance(data, bytes) else data.encode()
                info.size, info.mode = len(raw), 0o644
                tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def extract_into(tmp_path: Path, data: bytes, name: str = "l") -> Path:
    dest = tmp_path / name
    extract(io.BytesIO(data), dest, name=name)
    return dest


def member_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()
