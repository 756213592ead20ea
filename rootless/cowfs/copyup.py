"""Copy-up for ``Union``: lower entries into the upper, with data, metadata and the
other names of a hard link.

A lower layer may hold several names for one inode (a tar hard link:
``/usr/bin/perl`` and ``/usr/bin/perl5.36``). Copying up only the name being
written would split them, so ``CopyUp.file`` copies the data once and links the
other names the union still shows to it, as kernel overlayfs does with
``index=on``. ``LayerLinks`` finds those names: one walk of the layer, made only
when a multiply-linked file of that layer is first copied up, and remembered
(about 0.5-1.5 microseconds a file: 11 ms for 20k files, 190 ms for 125k).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from rootless.oci.layer import OPAQUE_XATTR, is_whiteout, make_opaque
from rootless.sandbox import libc

if TYPE_CHECKING:
    from rootless.cowfs.union import Union


def os_error(code: int, path: str = "") -> OSError:
    """OSError for errno CODE with its standard message, as the kernel would report it."""
    return OSError(code, os.strerror(code), path)


class LayerLinks:
    """The names of each multiply-linked regular file in one layer directory.

    The walk reads directories only: a directory entry carries its inode number
    (d_ino), which equals st_ino on the filesystems a store lives on, so no file
    is stat'ed. Where a filesystem reports other numbers (the file being copied
    up is then missing under its own st_ino), the walk is redone with lstat.
    """

    def __init__(self, layer: str) -> None:
        self.layer = layer
        self._by_ino: dict[int, tuple[str, ...]] | None = None
        self._stat_walk = False

    def names(self, path: str, st: os.stat_result) -> tuple[str, ...]:
        """The union paths ("/usr/bin/perl") of the layer's names for ST's inode,
        PATH (a name of it) included."""
        if self._by_ino is None:
            self._by_ino = self._walk()
        found = self._by_ino.get(st.st_ino, ())
        if path not in found and not self._stat_walk:
            self._stat_walk = True
            self._by_ino = self._walk()
            found = self._by_ino.get(st.st_ino, ())
        return found

    def _walk(self) -> dict[int, tuple[str, ...]]:
        seen: dict[int, str | list[str]] = {}
        pending = [""]
        while pending:
            rel_dir = pending.pop()
            try:
                scan = os.scandir(self.layer + rel_dir if rel_dir else self.layer)
            except OSError:
                continue  # an unreadable directory holds no name we could show
            with scan:
                for entry in scan:
                    rel = f"{rel_dir}/{entry.name}"
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(rel)
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    if self._stat_walk:
                        st = entry.stat(follow_symlinks=False)
                        if st.st_nlink < 2:
                            continue
                        ino = st.st_ino
                    else:
                        ino = entry.inode()
                    first = seen.get(ino)
                    if first is None:
                        seen[ino] = rel
                    elif isinstance(first, str):
                        seen[ino] = [first, rel]
                    else:
                        first.append(rel)
        return {ino: tuple(sorted(names)) for ino, names in seen.items()
                if not isinstance(names, str)}


class CopyUp:
    """Brings entries of UNION's lower layers into its upper, parents first."""

    def __init__(self, union: Union) -> None:
        self.union = union
        self.upper_dirs: set[str] = set()  # upper directories known to exist
        self.layer_links: dict[str, LayerLinks] = {}  # lower layer -> its linked names

    def directory(self, path: str) -> str:
        """The upper's directory PATH, made (with its ancestors) if missing."""
        union = self.union
        if union.upper is None:
            raise os_error(errno.EROFS)
        target = union.upper if path == "/" else union.upper + path
        if target in self.upper_dirs:
            return target
        try:
            if stat.S_ISDIR(os.lstat(target).st_mode):
                self.upper_dirs.add(target)
                return target
        except FileNotFoundError:
            pass
        self.directory(_parent(path))
        entry = union.get(path)
        if not stat.S_ISDIR(entry.st.st_mode):
            raise os_error(errno.ENOTDIR, path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)  # a stale whiteout
        os.mkdir(target, 0o700)
        copy_meta(entry.real, target, entry.st, union.privileged, skip_opaque=True)
        union.invalidate()
        return target

    def file(self, path: str, real: str, st: os.stat_result) -> str:
        """Copy non-directory PATH, shown from lower file REAL, into the upper."""
        target = self._upper_name(path)
        copy_node(real, target, st)
        copy_meta(real, target, st, self.union.privileged)
        self.union.note("modified", path)
        if st.st_nlink > 1 and stat.S_ISREG(st.st_mode):
            self._link_other_names(path, real, st, target)
        return target

    def _upper_name(self, path: str) -> str:
        return os.path.join(self.directory(_parent(path)), path.rpartition("/")[2])

    def _link_other_names(self, path: str, real: str, st: os.stat_result,
                          target: str) -> None:
        """Copy up the other names of lower hard link REAL that the union still shows as
        that file, as hard links of TARGET: a write through one shows through all."""
        union = self.union
        layer = real[:-len(path)]
        if layer not in union.lowers:
            return
        links = self.layer_links.get(layer)
        if links is None:
            links = self.layer_links[layer] = LayerLinks(layer)
        for other in links.names(path, st):
            if other == path:
                continue
            shown = union.lookup(other)
            if shown is None or shown.in_upper or not os.path.samestat(shown.st, st):
                continue  # deleted, replaced, or already copied up on its own
            other_target = self._upper_name(other)
            os.link(target, other_target, follow_symlinks=False)
            union.note("modified", other)
            if union.on_linked_copy_up is not None:
                union.on_linked_copy_up(other, other_target)

    def tree(self, path: str) -> str:
        """Copy the whole merged directory PATH into the upper, made opaque (for rename)."""
        union = self.union
        real = union.copy_up(path).real
        for name, kind in union.readdir(path):
            child = path.rstrip("/") + "/" + name
            if kind == stat.S_IFDIR:
                self.tree(child)
            else:
                union.copy_up(child)
        make_opaque(real)
        # Now complete on its own, the directory needs no whiteouts (and kernel
        # overlayfs would show them where this layer alone provides the directory).
        with os.scandir(real) as entries:
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False) and is_whiteout(
                        entry.stat(follow_symlinks=False)):
                    os.unlink(entry.path)
        union.invalidate()
        return real


def _parent(path: str) -> str:
    return path.rstrip("/").rpartition("/")[0] or "/"


def copy_node(source: str, target: str, st: os.stat_result) -> None:
    """Make TARGET a copy of SOURCE (described by ST): data, link target or node type."""
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFREG:
        copy_file_sparse(source, target)
    elif fmt == stat.S_IFLNK:
        os.symlink(os.readlink(source), target)
    elif fmt in (stat.S_IFIFO, stat.S_IFSOCK):
        os.mknod(target, fmt | 0o600)
    else:
        raise os_error(errno.EPERM, source)


def copy_file_sparse(source: str, target: str) -> None:
    """Copy a regular file keeping its holes (SEEK_DATA/SEEK_HOLE + copy_file_range)."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(src).st_size
            pos = 0
            while pos < size:
                try:
                    data = os.lseek(src, pos, os.SEEK_DATA)
                except OSError as exc:
                    if exc.errno == errno.ENXIO:
                        break  # only a hole remains
                    raise
                hole = os.lseek(src, data, os.SEEK_HOLE)
                # Allocating the extent first makes the copy about 30% faster on ext4
                # (measured: 100 MB in 17 ms instead of 24).
                with contextlib.suppress(OSError):
                    libc.fallocate(dst, 0, data, hole - data)
                offset = data
                while offset < hole:
                    done = os.copy_file_range(src, dst, hole - offset, offset, offset)
                    if done == 0:
                        break
                    offset += done
                pos = hole
            os.ftruncate(dst, size)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def copy_meta(source: str, target: str, st: os.stat_result, privileged: bool,
              skip_opaque: bool = False) -> None:
    """Give TARGET the mode, xattrs (not overlayfs' own), times and, if PRIVILEGED,
    owner of SOURCE."""
    fmt = stat.S_IFMT(st.st_mode)
    if privileged:
        with contextlib.suppress(OSError):
            os.lchown(target, st.st_uid, st.st_gid)
    if fmt != stat.S_IFLNK:
        os.chmod(target, stat.S_IMODE(st.st_mode))
        with contextlib.suppress(OSError):
            for name in os.listxattr(source, follow_symlinks=False):
                if skip_opaque and name == OPAQUE_XATTR:
                    continue
                if name.startswith(("user.overlay.", "trusted.overlay.")):
                    continue
                with contextlib.suppress(OSError):
                    os.setxattr(target, name, os.getxattr(source, name, follow_symlinks=False),
                                follow_symlinks=False)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def remove_real(real: str) -> None:
    """Remove REAL, a whole tree if it is a directory."""
    st = os.lstat(real)
    if stat.S_ISDIR(st.st_mode):
        from rootless.fsutil import force_rmtree
        force_rmtree(Path(real))
    else:
        os.unlink(real)


__all__ = ["CopyUp", "LayerLinks", "copy_file_sparse", "copy_meta", "copy_node", "os_error",
           "remove_real"]
