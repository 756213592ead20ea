"""Filesystem operations an ordinary user needs to be reliable: atomic file
replacement, deleting trees that image content made unwritable, sizing trees.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (ignored where directories cannot be fsynced)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, tmp_dir: Path | None = None,
                 mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, never part.

    The temporary file lives in ``tmp_dir`` (default: next to ``path``), which
    must be on the same filesystem so that the final rename is atomic.
    """
    import tempfile  # not at module level: `rootless run` needs only force_rmtree

    directory = tmp_dir or path.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _make_writable(path: str) -> None:
    with contextlib.suppress(OSError):
        mode = os.lstat(path).st_mode
        if stat.S_ISDIR(mode):
            os.chmod(path, stat.S_IMODE(mode) | stat.S_IRWXU)


def force_rmtree(path: Path) -> None:
    """Delete ``path`` and everything under it, as its owner.

    Layers unpacked from images hold directories like ``chmod 0555 /usr`` or
    ``0000`` that a plain ``shutil.rmtree`` cannot enter or empty as an
    ordinary user; the owner may chmod them first. Missing paths are fine.
    Files owned by other (subordinate) uids still fail with PermissionError.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    _make_writable(str(path))
    _rmtree_writable(str(path))


def _rmtree_writable(top: str) -> None:
    for entry in os.scandir(top):
        full = entry.path
        if entry.is_dir(follow_symlinks=False):
            _make_writable(full)
            _rmtree_writable(full)
        else:
            try:
                os.unlink(full)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(top)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def tree_size(path: Path) -> int:
    """Bytes used by the files under ``path`` (hard links counted once); 0 if missing."""
    seen: set[tuple[int, int]] = set()
    total = 0
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    for dirpath, _dirs, files in os.walk(path, onerror=None):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += st.st_size
    return total
