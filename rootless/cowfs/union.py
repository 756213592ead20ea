"""Union semantics over read-only layer directories and one writable upper.

Pure file operations on real paths, no FUSE: ``fuse.py`` maps requests onto
them and ``vfs.py`` uses the read side. Paths are absolute inside the union
("/etc/passwd"). Lookups walk the layers top-down, stopping at whiteouts and
opaque directories (the on-disk form of ``rootless.oci.layer``); the real
directories behind each merged directory are cached, since that is what
every request resolves first. Every mutation lands in the upper, after
copying the file (and its parents) up, and is recorded so that a diff only
needs to look at what changed.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rootless.cowfs.copyup import CopyUp, copy_file_sparse
from rootless.cowfs.copyup import os_error as _err
from rootless.cowfs.copyup import remove_real as _remove_real
from rootless.oci.layer import (
    PRIVATE_XATTR_PREFIXES,
    Override,
    Presented,
    has_device_records,
    is_opaque,
    is_whiteout,
    make_opaque,
    make_whiteout,
    owner_writable_mode,
    presented,
    read_link_owner,
    read_override,
    write_device_record,
    write_link_owner,
    write_override,
)

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


@dataclass(frozen=True, slots=True)
class Entry:
    """A visible path: the real file behind it and whether it is in the upper."""

    real: str
    st: os.stat_result
    in_upper: bool


def _split(path: str) -> tuple[str, str]:
    head, _, name = path.rstrip("/").rpartition("/")
    return head or "/", name


class Union:
    """LOWERS are given top-first; UPPER receives every change."""

    def __init__(self, lowers: list[Path], upper: Path | None) -> None:
        self.upper = str(upper) if upper is not None else None
        self.lowers = [str(p) for p in lowers]
        self.layers = ([self.upper] if self.upper else []) + self.lowers
        self._dirs: dict[str, tuple[str, ...]] = {}
        self._lower_shown: dict[str, Presented] = {}
        self.lock = threading.Lock()
        self.created: set[str] = set()
        self.modified: set[str] = set()
        self.deleted: set[str] = set()
        self.privileged = os.geteuid() == 0
        self.copier = CopyUp(self)
        # Called with (path, upper path) for each other name of a hard-linked lower file
        # that a copy-up brought along: a FUSE server may hold open handles on its lower
        # file and the kernel may cache its attributes, both to be refreshed.
        self.on_linked_copy_up: Callable[[str, str], None] | None = None

    # -- reading ------------------------------------------------------------------------

    def dir_layers(self, path: str) -> tuple[str, ...]:
        """The real directories merged at directory PATH, top-first (empty: not a dir)."""
        cached = self._dirs.get(path)
        if cached is not None:
            return cached
        if path == "/":
            candidates = list(self.layers)
        else:
            parent, name = _split(path)
            candidates = [os.path.join(p, name) for p in self.dir_layers(parent)]
        found: list[str] = []
        for real in candidates:
            try:
                st = os.lstat(real)
            except FileNotFoundError:
                continue
            except NotADirectoryError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                break  # a whiteout or a file hides everything below it
            found.append(real)
            if is_opaque(real):
                break
        result = tuple(found)
        self._dirs[path] = result
        return result

    def invalidate(self) -> None:
        self._dirs.clear()
        self.copier.upper_dirs.clear()

    def lookup(self, path: str) -> Entry | None:
        if path == "/":
            layers = self.dir_layers("/")
            if not layers:
                return None
            return Entry(layers[0], os.lstat(layers[0]), layers[0] == self.upper)
        parent, name = _split(path)
        upper_dir = self._upper_dir(parent)
        for directory in self.dir_layers(parent):
            real = f"{directory}/{name}"
            try:
                st = os.lstat(real)
            except FileNotFoundError:
                continue
            if st.st_rdev == 0 and stat.S_ISCHR(st.st_mode):  # a whiteout
                return None
            return Entry(real, st, directory == upper_dir)
        return None

    def _upper_dir(self, path: str) -> str | None:
        return None if self.upper is None else (
            self.upper if path == "/" else self.upper + path)

    def get(self, path: str) -> Entry:
        entry = self.lookup(path)
        if entry is None:
            raise _err(errno.ENOENT, path)
        return entry

    def readdir(self, path: str) -> list[tuple[str, int]]:
        """(name, S_IFMT type) of the merged directory, without whiteouts."""
        return [(name, kind) for name, kind, _ in self.readdir_ino(path)]

    def readdir_ino(self, path: str) -> list[tuple[str, int, int]]:
        """(name, S_IFMT type, inode number) of the merged directory, without whiteouts."""
        layers = self.dir_layers(path)
        if not layers:
            raise _err(errno.ENOTDIR if self.lookup(path) else errno.ENOENT, path)
        seen: dict[str, tuple[int, int]] = {}
        hidden: set[str] = set()
        for real in layers:
            devices = has_device_records(real)
            with os.scandir(real) as entries:
                for entry in entries:
                    name = entry.name
                    if name in seen or name in hidden:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        kind = stat.S_IFDIR
                    elif entry.is_symlink():
                        kind = stat.S_IFLNK
                    elif entry.is_file(follow_symlinks=False):
                        kind = stat.S_IFREG
                        record = read_override(entry.path) if devices else None
                        device = record.device() if record else None
                        if device is not None:
                            kind = device[0]
                    else:
                        st = entry.stat(follow_symlinks=False)
                        if is_whiteout(st):
                            hidden.add(name)
                            continue
                        kind = stat.S_IFMT(st.st_mode)
                    seen[name] = (kind, entry.inode())
        return sorted((name, kind, ino) for name, (kind, ino) in seen.items())

    def shown(self, entry: Entry) -> Presented:
        if entry.in_upper:
            return presented(entry.real, entry.st)
        # Lower layers never change: their presented ownership is read once.
        cached = self._lower_shown.get(entry.real)
        if cached is None:
            cached = self._lower_shown[entry.real] = presented(entry.real, entry.st)
        return cached

    def in_lowers(self, path: str) -> bool:
        """Whether a lower layer has PATH visible (so deleting it needs a whiteout)."""
        parent, name = _split(path)
        upper_dir = self._upper_dir(parent)
        for directory in self.dir_layers(parent):
            if directory == upper_dir:
                continue
            try:
                st = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            return not is_whiteout(st)
        return False

    # -- change tracking ----------------------------------------------------------------

    def note(self, kind: str, path: str) -> None:
        rel = path.lstrip("/")
        with self.lock:
            if kind == "created":
                if rel in self.deleted:
                    self.deleted.discard(rel)
                    self.modified.add(rel)
                else:
                    self.created.add(rel)
            elif kind == "modified":
                if rel not in self.created:
                    self.modified.add(rel)
            elif rel in self.created:
                self.created.discard(rel)
            else:
                self.modified.discard(rel)
                self.deleted.add(rel)

    def changes(self) -> tuple[list[str], list[str], list[str]]:
        with self.lock:
            return sorted(self.created), sorted(self.modified), sorted(self.deleted)

    # -- copy-up (the work is done by ``copyup.CopyUp``) ----------------------------------

    def _need_upper(self) -> str:
        if self.upper is None:
            raise _err(errno.EROFS)
        return self.upper

    def upper_parent(self, path: str) -> str:
        """The upper's copy of PATH's parent directory, made (with its ancestors) if missing."""
        return self.copier.directory(_split(path)[0])

    def copy_up_dir(self, path: str) -> str:
        return self.copier.directory(path)

    def copy_up(self, path: str) -> Entry:
        """PATH's entry in the upper, copying it up from a lower if needed (with the other
        names of a lower hard link, so that they stay one file)."""
        entry = self.get(path)
        if entry.in_upper:
            return entry
        if stat.S_ISDIR(entry.st.st_mode):
            real = self.copier.directory(path)
        else:
            real = self.copier.file(path, entry.real, entry.st)
        return Entry(real, os.lstat(real), True)

    def copy_up_tree(self, path: str) -> str:
        """Copy the whole merged directory PATH into the upper, made opaque (for rename)."""
        return self.copier.tree(path)

    def place(self, path: str) -> tuple[str, bool]:
        """The upper path where a new entry PATH goes; True if it replaces a whiteout."""
        parent = self.upper_parent(path)
        target = os.path.join(parent, _split(path)[1])
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return target, False
        if is_whiteout(st):
            os.unlink(target)
            return target, True
        raise _err(errno.EEXIST, path)

    # -- mutations ----------------------------------------------------------------------

    def create_node(self, path: str, kind: int, mode: int, rdev: int = 0,
                    owner: tuple[int, int] | None = None) -> str:
        if self.lookup(path) is not None:
            raise _err(errno.EEXIST, path)
        target, replaced = self.place(path)
        if kind == stat.S_IFDIR:
            os.mkdir(target, 0o700)
            if replaced or self.in_lowers(path):
                make_opaque(target)
            self.invalidate()
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            name = "char" if kind == stat.S_IFCHR else "block"
            write_device_record(target, Override(*(owner or (0, 0)), mode & 0o7777,
                                                 f"{name}-{os.major(rdev)}-{os.minor(rdev)}"))
            self.note("created", path)
            return target
        else:
            os.mknod(target, kind | 0o600)
        self.set_mode_owner(target, kind, mode & 0o7777, owner)
        self.note("created", path)
        return target

    def create_file(self, path: str, flags: int, mode: int,
                    owner: tuple[int, int] | None) -> tuple[int, str]:
        """Create regular file PATH (or open it, without O_EXCL): (fd, real path)."""
        existing = self.lookup(path)
        if existing is not None:
            if flags & os.O_EXCL:
                raise _err(errno.EEXIST, path)
            real = self.copy_up(path).real
            return os.open(real, flags & ~os.O_EXCL | os.O_CLOEXEC), real
        target, _ = self.place(path)
        fd = os.open(target, flags | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        mode &= 0o7777
        disk_mode = owner_writable_mode(mode, False)
        if disk_mode != 0o600:
            os.fchmod(fd, disk_mode)
        if owner is not None or disk_mode != mode:
            write_override(target, Override(*(owner or (0, 0)), mode))
        self.note("created", path)
        return fd, target

    def symlink(self, link_target: str, path: str, owner: tuple[int, int] | None) -> None:
        if self.lookup(path) is not None:
            raise _err(errno.EEXIST, path)
        target, _ = self.place(path)
        os.symlink(link_target, target)
        write_link_owner(target, owner)  # also forgets a deleted namesake's owner
        self.note("created", path)

    def link(self, existing: str, path: str) -> None:
        source = self.get(existing)
        if stat.S_ISDIR(source.st.st_mode):
            raise _err(errno.EPERM, existing)
        if self.lookup(path) is not None:
            raise _err(errno.EEXIST, path)
        real = self.copy_up(existing).real
        target, _ = self.place(path)
        os.link(real, target, follow_symlinks=False)
        self.note("created", path)
        self.note("modified", existing)

    def unlink(self, path: str) -> None:
        entry = self.get(path)
        if stat.S_ISDIR(entry.st.st_mode):
            raise _err(errno.EISDIR, path)
        self._remove(path, entry)

    def rmdir(self, path: str) -> None:
        entry = self.get(path)
        if not stat.S_ISDIR(entry.st.st_mode):
            raise _err(errno.ENOTDIR, path)
        if path == "/":
            raise _err(errno.EBUSY, path)
        if self.readdir(path):
            raise _err(errno.ENOTEMPTY, path)
        self._remove(path, entry)

    def _remove(self, path: str, entry: Entry) -> None:
        self._need_upper()
        lower = self.in_lowers(path)
        if entry.in_upper:
            if stat.S_ISLNK(entry.st.st_mode):
                write_link_owner(entry.real, None)
            _remove_real(entry.real)
        if lower:
            parent = self.upper_parent(path)
            make_whiteout(os.path.join(parent, _split(path)[1]))
        if stat.S_ISDIR(entry.st.st_mode):
            self.invalidate()
        self.note("deleted", path)

    def rename(self, old: str, new: str, noreplace: bool = False) -> None:
        if old == new:
            return
        if new.startswith(old.rstrip("/") + "/"):
            raise _err(errno.EINVAL, new)
        source = self.get(old)
        dest = self.lookup(new)
        source_dir = stat.S_ISDIR(source.st.st_mode)
        if dest is not None:
            if noreplace:
                raise _err(errno.EEXIST, new)
            if os.path.samestat(source.st, dest.st):
                return
            dest_dir = stat.S_ISDIR(dest.st.st_mode)
            if source_dir and not dest_dir:
                raise _err(errno.ENOTDIR, new)
            if dest_dir and not source_dir:
                raise _err(errno.EISDIR, new)
            if dest_dir and self.readdir(new):
                raise _err(errno.ENOTEMPTY, new)
        real = self.copy_up_tree(old) if source_dir else self.copy_up(old).real
        parent = self.upper_parent(new)
        target = os.path.join(parent, _split(new)[1])
        try:
            replaced: os.stat_result | None = os.lstat(target)
        except FileNotFoundError:
            replaced = None
        if replaced is not None and (stat.S_ISDIR(replaced.st_mode) or is_whiteout(replaced)):
            _remove_real(target)  # an empty merged directory, or a whiteout a dir cannot replace
        elif replaced is not None and stat.S_ISLNK(replaced.st_mode):
            write_link_owner(target, None)
        if stat.S_ISLNK(source.st.st_mode):
            owner = read_link_owner(real)
            write_link_owner(real, None)
            write_link_owner(target, owner)
        os.rename(real, target)
        if source_dir and self.in_lowers(new):
            make_opaque(target)
        if self.in_lowers(old):
            make_whiteout(real)
        self.invalidate()
        self.note("deleted", old)
        self.note("created", new)

    def set_mode_owner(self, real: str, kind: int, mode: int,
                       owner: tuple[int, int] | None) -> None:
        """Give REAL the presented MODE and OWNER: on disk where possible, else as metadata."""
        if kind == stat.S_IFLNK:
            return
        st = os.lstat(real)
        old = read_override(real)
        uid, gid = owner if owner is not None else (
            (old.uid, old.gid) if old else (st.st_uid, st.st_gid))
        # Other owners live in the record, never on disk: a file owned by a subordinate
        # ID could not be read by a diff, nor removed, outside the namespace.
        on_disk = (uid, gid) == (st.st_uid, st.st_gid)
        disk_mode = owner_writable_mode(mode, kind == stat.S_IFDIR)
        if stat.S_IMODE(st.st_mode) != disk_mode:
            os.chmod(real, disk_mode)
        kind_text = old.kind if old else None
        if not on_disk or disk_mode != mode or kind_text:
            record = Override(uid, gid, mode, kind_text)
            if record != old:
                write_override(real, record)
        elif old is not None:
            os.removexattr(real, "user.rootless.override_stat")

    def chmod(self, path: str, mode: int) -> None:
        entry = self.copy_up(path)
        shown = self.shown(entry)
        if shown.fmt == stat.S_IFLNK:
            return
        self.set_mode_owner(entry.real, stat.S_IFMT(entry.st.st_mode), mode & 0o7777,
                            (shown.uid, shown.gid))
        self.note("modified", path)

    def chown(self, path: str, uid: int, gid: int) -> None:
        entry = self.copy_up(path)
        shown = self.shown(entry)
        uid = shown.uid if uid in (-1, 0xFFFFFFFF) else uid
        gid = shown.gid if gid in (-1, 0xFFFFFFFF) else gid
        if (uid, gid) == (shown.uid, shown.gid) and shown.mode & 0o6000 == 0:
            self.note("modified", path)
            return  # e.g. tar restoring root ownership on a file root just made
        if shown.fmt == stat.S_IFLNK:
            write_link_owner(entry.real, (uid, gid))
        else:
            mode = shown.mode
            if shown.fmt == stat.S_IFREG and (uid, gid) != (shown.uid, shown.gid):
                mode &= ~0o6000  # as the kernel does: chown clears setuid/setgid
            self.set_mode_owner(entry.real, stat.S_IFMT(entry.st.st_mode), mode, (uid, gid))
        self.note("modified", path)

    def truncate(self, path: str, size: int) -> None:
        os.truncate(self.copy_up(path).real, size)
        self.note("modified", path)

    def utimens(self, path: str, atime: tuple[int, int], mtime: tuple[int, int]) -> None:
        """Times as (seconds, nanoseconds); nanoseconds UTIME_NOW / UTIME_OMIT as utimensat."""
        entry = self.copy_up(path)
        st = os.lstat(entry.real)
        now = time.time_ns()

        def pick(value: tuple[int, int], current: int) -> int:
            if value[1] == UTIME_OMIT:
                return current
            if value[1] == UTIME_NOW:
                return now
            return value[0] * 1_000_000_000 + value[1]

        os.utime(entry.real, ns=(pick(atime, st.st_atime_ns), pick(mtime, st.st_mtime_ns)),
                 follow_symlinks=False)
        self.note("modified", path)

    def setxattr(self, path: str, name: str, value: bytes, flags: int) -> None:
        if name.startswith(PRIVATE_XATTR_PREFIXES):
            raise _err(errno.EPERM, path)
        real = self.copy_up(path).real
        os.setxattr(real, name, value, flags, follow_symlinks=False)
        self.note("modified", path)

    def removexattr(self, path: str, name: str) -> None:
        if name.startswith(PRIVATE_XATTR_PREFIXES):
            raise _err(errno.ENODATA, path)
        real = self.copy_up(path).real
        os.removexattr(real, name, follow_symlinks=False)
        self.note("modified", path)

    def listxattr(self, path: str) -> list[str]:
        names = os.listxattr(self.get(path).real, follow_symlinks=False)
        return [n for n in names if not n.startswith(PRIVATE_XATTR_PREFIXES)]

    def getxattr(self, path: str, name: str) -> bytes:
        if name.startswith(PRIVATE_XATTR_PREFIXES):
            raise _err(errno.ENODATA, path)
        return os.getxattr(self.get(path).real, name, follow_symlinks=False)


__all__ = ["Entry", "Union", "copy_file_sparse", "is_opaque"]
