"""The ``vfs`` driver: no mount at all, plain copies.

Mounting copies the union of the layers (and the upper's earlier changes) into
the target; unmounting compares the target with that union and records the
differences in the upper, in the same on-disk form the other drivers write,
then empties the target. Slow on big images, but it needs nothing from the
host: no FUSE, no overlayfs, not even a user namespace.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from rootless.cowfs.copyup import copy_meta as _copy_meta
from rootless.cowfs.copyup import copy_node as _copy_node
from rootless.cowfs.copyup import remove_real as _remove_real
from rootless.cowfs.driver import Changes, MountHandle, clear_directory
from rootless.cowfs.union import Union
from rootless.oci.layer import (
    PRIVATE_XATTR_PREFIXES,
    Override,
    make_opaque,
    make_whiteout,
    owner_writable_mode,
    presented,
    read_override,
    write_link_owner,
    write_override,
)


def _view(lowers: list[Path], upper: Path) -> Union:
    return Union([upper, *reversed(lowers)], None)


def _copy_in(view: Union, path: str, target: str,
             links: dict[tuple[int, int], str] | None = None) -> None:
    links = {} if links is None else links  # names of one inode stay one inode
    for name, kind in view.readdir(path):
        child = path.rstrip("/") + "/" + name
        entry = view.get(child)
        dest = os.path.join(target, name)
        if kind == stat.S_IFDIR:
            os.mkdir(dest, 0o700)
            _copy_in(view, child, dest, links)
        elif _link_to_copy(links, entry.st, dest):
            continue
        else:
            _copy_node(entry.real, dest, entry.st)
        _copy_meta(entry.real, dest, entry.st, view.privileged, skip_opaque=True)


def _link_to_copy(links: dict[tuple[int, int], str], st: os.stat_result, dest: str) -> bool:
    """Link DEST to the copy already made of ST's inode (True), or remember DEST as it."""
    if st.st_nlink < 2 or not stat.S_ISREG(st.st_mode):
        return False
    first = links.setdefault((st.st_dev, st.st_ino), dest)
    if first == dest:
        return False
    os.link(first, dest)
    return True


def _same(a: str, a_st: os.stat_result, b: str, b_st: os.stat_result) -> bool:
    if stat.S_IFMT(a_st.st_mode) != stat.S_IFMT(b_st.st_mode):
        return False
    if (a_st.st_mode, a_st.st_uid, a_st.st_gid) != (b_st.st_mode, b_st.st_uid, b_st.st_gid):
        return False
    if stat.S_ISLNK(a_st.st_mode):
        return os.readlink(a) == os.readlink(b)
    if stat.S_ISREG(a_st.st_mode) and (a_st.st_size != b_st.st_size
                                       or a_st.st_mtime_ns != b_st.st_mtime_ns):
        return False
    if read_override(a) != read_override(b):
        return False
    return _xattrs(a) == _xattrs(b)


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in names
            if not n.startswith(PRIVATE_XATTR_PREFIXES) or n == "user.rootless.override_stat"}


def _record_owner(path: str) -> None:
    """Owners other than root become records, as the other drivers keep them: a file
    owned by a sub-ID could be neither read by a diff nor removed outside the namespace."""
    st = os.lstat(path)
    if (st.st_uid, st.st_gid) == (0, 0) or os.geteuid() != 0:
        return
    if stat.S_ISLNK(st.st_mode):
        write_link_owner(path, (st.st_uid, st.st_gid))
        os.lchown(path, 0, 0)
        return
    old = read_override(path)
    mode = presented(path, st).mode  # the record's mode unless changed on disk since
    os.lchown(path, 0, 0)
    os.chmod(path, owner_writable_mode(mode, stat.S_ISDIR(st.st_mode)))
    write_override(path, Override(st.st_uid, st.st_gid, mode, old.kind if old else None))


class VfsHandle(MountHandle):
    driver = "vfs"

    def __init__(self, lowers: list[Path], upper: Path, target: Path) -> None:
        super().__init__(target, upper)
        self.lowers = lowers
        self._changes: Changes | None = None
        self._linked: dict[tuple[int, int], str] = {}  # target inode -> its upper copy

    def unmount(self) -> None:
        if not self.mounted:
            return
        created: set[str] = set()
        modified: set[str] = set()
        deleted: set[str] = set()
        view = _view(self.lowers, self.upper)
        below = Union(list(reversed(self.lowers)), None)
        self._linked.clear()
        self._compare(view, below, "/", str(self.target), created, modified, deleted)
        clear_directory(self.target)
        self.mounted = False
        self._changes = Changes(frozenset(created), frozenset(modified), frozenset(deleted))

    def _compare(self, view: Union, below: Union, path: str, real_dir: str,
                 created: set[str], modified: set[str], deleted: set[str]) -> None:
        old = dict(view.readdir(path)) if view.dir_layers(path) else {}
        upper_dir = str(self.upper) + ("" if path == "/" else path)
        with os.scandir(real_dir) as scan:
            now = {e.name: e.path for e in scan}
        for name in sorted(set(old) | set(now)):
            child = path.rstrip("/") + "/" + name
            rel = child.lstrip("/")
            upper_path = os.path.join(upper_dir, name)
            if name not in now:
                self._clear_upper(upper_path)
                if below.lookup(child) is not None:
                    self._ensure_upper_dir(view, path)
                    make_whiteout(upper_path)
                deleted.add(rel)
                continue
            st = os.lstat(now[name])
            entry = view.lookup(child) if name in old else None
            if entry is not None and stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(entry.st.st_mode):
                if not _same(entry.real, entry.st, now[name], st):
                    self._ensure_upper_dir(view, child)
                    _copy_meta(now[name], upper_path, st, view.privileged)
                    modified.add(rel)
                self._compare(view, below, child, now[name], created, modified, deleted)
                continue
            if entry is not None and _same(entry.real, entry.st, now[name], st):
                continue
            self._ensure_upper_dir(view, path)
            self._clear_upper(upper_path)
            if stat.S_ISDIR(st.st_mode):
                os.rename(now[name], upper_path)  # the target is emptied afterwards anyway
                if below.lookup(child) is not None:
                    make_opaque(upper_path)
                for dirpath, dirs, files in os.walk(upper_path):
                    for inner in dirs + files:
                        _record_owner(os.path.join(dirpath, inner))
            elif not _link_to_copy(self._linked, st, upper_path):
                _copy_node(now[name], upper_path, st)
                _copy_meta(now[name], upper_path, st, view.privileged)
            _record_owner(upper_path)
            (modified if entry is not None else created).add(rel)

    def _ensure_upper_dir(self, view: Union, path: str) -> None:
        real = str(self.upper) + ("" if path == "/" else path)
        if os.path.isdir(real) and not os.path.islink(real):
            return
        self._ensure_upper_dir(view, os.path.dirname(path.rstrip("/")) or "/")
        entry = view.get(path)
        self._clear_upper(real)
        os.mkdir(real, 0o700)
        _copy_meta(entry.real, real, entry.st, view.privileged, skip_opaque=True)

    @staticmethod
    def _clear_upper(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            _remove_real(path)

    def changes(self) -> Changes | None:
        return self._changes


def mount_vfs(lowers: list[Path], upper: Path, work: Path, target: Path) -> VfsHandle:
    clear_directory(target)
    _copy_in(_view(lowers, upper), "/", str(target))
    root = _view(lowers, upper).lookup("/")
    if root is not None:
        _copy_meta(root.real, str(target), root.st, os.geteuid() == 0, skip_opaque=True)
    return VfsHandle(lowers, upper, target)
