"""Upper directory → OCI layer tar: ``.wh.`` whiteouts, presented owners, same bytes.

The upper is in the on-disk form of ``layer_ondisk``; the tar carries what a
container sees (``presented``), whiteouts and opaque markers in OCI spelling,
entries in byte order of their paths, and times clamped to SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from rootless.errors import LayerError
from rootless.oci.layer_ondisk import (
    OPAQUE_NAME,
    PRIVATE_XATTR_PREFIXES,
    STASHED_XATTR_PREFIX,
    WHITEOUT_PREFIX,
    is_opaque,
    is_whiteout,
    presented,
)


def source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise LayerError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds") from None


def diff(upper: Path, out: BinaryIO | Path, *, paths: Iterable[str] | None = None,
         epoch: int | None = None, compress: bool = False) -> None:
    """Write the OCI layer tar for an upper directory to OUT.

    Entries come in byte order of their paths, whiteouts as ``.wh.`` files,
    ownership and modes as presented; with EPOCH (default: SOURCE_DATE_EPOCH)
    every time later than it is clamped to it. PATHS (relative to UPPER, e.g.
    from ``MountHandle.changes()``) limits the walk to them and their
    parents; by default the whole upper is walked (only what changed is in it).
    The bytes are the same for the same content.
    """
    clamp = source_date_epoch() if epoch is None else epoch
    if isinstance(out, Path):
        with out.open("wb") as f:
            diff(upper, f, paths=paths, epoch=clamp, compress=compress)
        return
    if compress:
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz:
            _write_tar(upper, gz, paths, clamp)  # type: ignore[arg-type]
    else:
        _write_tar(upper, out, paths, clamp)


def _walk(upper: Path, paths: Iterable[str] | None) -> list[str]:
    if paths is None:
        found: list[str] = []
        for dirpath, dirs, files in os.walk(upper):
            rel = os.path.relpath(dirpath, upper)
            prefix = "" if rel == "." else rel + "/"
            found.extend(prefix + name for name in dirs + files)
        return sorted(found, key=os.fsencode)
    wanted: set[str] = set()
    for path in paths:
        rel = path.strip("/")
        if not rel or not os.path.lexists(upper / rel):
            continue
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            wanted.add("/".join(parts[:i]))
        if os.path.isdir(upper / rel) and not os.path.islink(upper / rel):
            wanted.update(rel + "/" + sub for sub in _walk(upper / rel, None))
    return sorted(wanted, key=os.fsencode)


def _write_tar(upper: Path, out: BinaryIO, paths: Iterable[str] | None,
               clamp: int | None) -> None:
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in _walk(upper, paths):
            full = upper / rel
            st = os.lstat(full)
            if is_whiteout(st):
                tar.addfile(_info(_whiteout_name(rel), tarfile.REGTYPE, 0, 0, 0o644,
                                  _clamped(st.st_mtime_ns, clamp)))
                continue
            if stat.S_ISSOCK(st.st_mode):
                continue  # sockets have no tar form; Docker leaves them out too
            info = _member(full, rel, st, clamp)
            if info.type == tarfile.REGTYPE and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in links:
                    info.type = tarfile.LNKTYPE
                    info.linkname = links[key]
                    info.size = 0
                    tar.addfile(info)
                    continue
                links[key] = rel
            if info.type == tarfile.REGTYPE:
                with open(full, "rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
            if info.type == tarfile.DIRTYPE and is_opaque(full):
                tar.addfile(_info(rel + "/" + OPAQUE_NAME, tarfile.REGTYPE, 0, 0, 0o644,
                                  _clamped(st.st_mtime_ns, clamp)))


def _whiteout_name(rel: str) -> str:
    head, _, base = rel.rpartition("/")
    return (head + "/" if head else "") + WHITEOUT_PREFIX + base


def _clamped(mtime_ns: int, clamp: int | None) -> int:
    seconds = mtime_ns // 1_000_000_000
    return min(seconds, clamp) if clamp is not None else seconds


def _info(name: str, kind: bytes, uid: int, gid: int, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.uid, info.gid, info.mode, info.mtime = uid, gid, mode, mtime
    info.uname = info.gname = ""
    return info


def _member(full: Path, rel: str, st: os.stat_result, clamp: int | None) -> tarfile.TarInfo:
    shown = presented(full, st)
    kinds = {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE,
             stat.S_IFLNK: tarfile.SYMTYPE, stat.S_IFIFO: tarfile.FIFOTYPE,
             stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE}
    kind = kinds.get(shown.fmt)
    if kind is None:
        raise LayerError(f"cannot put {rel!r} in a layer: sockets have no tar form")
    info = _info(rel, kind, shown.uid, shown.gid, shown.mode, _clamped(st.st_mtime_ns, clamp))
    if kind == tarfile.REGTYPE:
        info.size = st.st_size
    elif kind == tarfile.SYMTYPE:
        info.linkname = os.readlink(full)
    elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(shown.rdev), os.minor(shown.rdev)
    if kind != tarfile.SYMTYPE:
        xattrs = _exported_xattrs(full)
        if xattrs:
            info.pax_headers = xattrs
    return info


def _exported_xattrs(path: Path) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    found: dict[str, str] = {}
    for key in sorted(names):
        exported = key
        if key.startswith(STASHED_XATTR_PREFIX):
            exported = key[len(STASHED_XATTR_PREFIX):]
        elif key.startswith(PRIVATE_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(path, key, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.EPERM, errno.EACCES):
                continue
            raise
        found["SCHILY.xattr." + exported] = value.decode("utf-8", "surrogateescape")
    return dict(sorted(found.items()))
