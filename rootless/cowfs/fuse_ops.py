"""The ``fuse`` driver's filesystem: FUSE requests answered from a ``Union``.

Nodes are paths: the kernel's node IDs map to union paths, renames move
them, unlink orphans them (an open, unlinked file is still served through its
handle). Speed levers, measured with ``scripts/bench-cowfs``: READDIRPLUS
(a stat walk needs no LOOKUP per file) and no OPENDIR/RELEASEDIR/FLUSH, long
entry, attribute and negative timeouts (only this server changes the tree),
the page cache kept for files of the read-only lowers, their attributes packed
once and, in directories of an unpacked layer that hold no owner records, from
lstat alone; reads and writes through one preallocated buffer (reads spliced
instead when the server has no CPU of its own).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rootless.cowfs import fuse_kernel as k
from rootless.cowfs.fuse_attrs import Attributes, decode_dev
from rootless.cowfs.fuse_nodes import NodeTable
from rootless.cowfs.union import UTIME_NOW, UTIME_OMIT, Union
from rootless.sandbox import libc

TIMEOUT = 60                 # seconds the kernel may trust names and attributes
CHANGES_XATTR = "user.rootless.changes"
CHANGES_FILE = "changes.json"
_NEGATIVE = k.ENTRY_HEAD.pack(0, 0, TIMEOUT, 0, 0, 0) + bytes(k.ATTR.size)
_NO_ENTRY = k.ENTRY_HEAD.pack(0, 0, 0, 0, 0, 0) + bytes(k.ATTR.size)
_DIRENTPLUS_FIXED = k.ENTRY_HEAD.size + k.ATTR.size + k.DIRENT.size
_LISTINGS_KEPT = 1024
# What a SETATTR changes that needs the file's name (an unlinked file has only its data).
_NAMED_ATTRS = k.FATTR_MODE | k.FATTR_UID | k.FATTR_GID | k.FATTR_ATIME | k.FATTR_MTIME
# On one CPU, reads this large are spliced (one copy, in the kernel); with a CPU to
# spare, copying through Python overlaps the caller and measured faster (1 GiB:
# 0.28 s copied vs 0.30 s spliced on two CPUs; 0.42 s vs 0.35 s on one).
_SPLICE_FROM = 128 << 10


@dataclass(slots=True)
class _File:
    fd: int
    node: int
    real: str
    lower: bool          # served from a read-only lower (its pages may stay cached)
    privileges_killed: bool = False


@dataclass(slots=True)
class _Listing:
    """A directory's entries as one READDIR sequence saw them: offsets index into it."""

    node: int
    # (name, name as bytes + NUL padding, inode number, the dirent's namelen/type) each
    entries: list[tuple[str, bytes, int, bytes]]
    version: int            # the server's change count when listed
    only_layer: str = ""    # the one real directory behind it, if only one
    in_upper: bool = False  # whether that directory is the upper's
    plain: bool = False     # whether that directory surely holds no owner/mode records


class CowFs(k.Session):
    """The union's operations, by FUSE opcode."""

    def __init__(self, device: int, union: Union, ready_fd: int, changes_file: Path) -> None:
        super().__init__(device)
        self.union = union
        self.ready_fd = ready_fd
        self.changes_file = changes_file
        self.nodes = NodeTable()
        self.files: dict[int, _File] = {}
        # Directory listings by ID; a READDIR offset is (listing ID << 32 | index), so a
        # reader keeps its own snapshot without a directory handle (the kernel is told
        # to send no OPENDIR/RELEASEDIR: half the requests of a directory walk).
        self.listings: dict[int, _Listing] = {}
        self.latest_listing: dict[int, int] = {}
        self.next_listing = 1
        self.next_handle = 1
        self.lower_files: dict[int, list[_File]] = {}  # node -> read-only lower handles
        self.read_buffer = memoryview(bytearray(k.MAX_WRITE))
        self.attrs = Attributes(union.lowers)
        self.own_ids = (os.geteuid(), os.getegid())
        union.on_linked_copy_up = self._linked_copied_up
        # Bumped by every request that changes the tree: a directory listed at the same
        # count still names exactly the files it listed.
        self.version = 0
        self.handlers.update({
            k.LOOKUP: self.lookup, k.FORGET: self.forget, k.BATCH_FORGET: self.batch_forget,
            k.GETATTR: self.getattr, k.SETATTR: self.setattr, k.READLINK: self.readlink,
            k.SYMLINK: self.symlink, k.MKNOD: self.mknod, k.MKDIR: self.mkdir,
            k.UNLINK: self.unlink, k.RMDIR: self.rmdir, k.RENAME: self.rename,
            k.RENAME2: self.rename2, k.LINK: self.link, k.OPEN: self.open, k.READ: self.read,
            k.WRITE: self.write, k.STATFS: self.statfs, k.RELEASE: self.release,
            k.FSYNC: self.fsync, k.FLUSH: self.flush, k.SETXATTR: self.setxattr,
            k.GETXATTR: self.getxattr, k.LISTXATTR: self.listxattr,
            k.REMOVEXATTR: self.removexattr, k.OPENDIR: self.opendir,
            k.READDIR: self.readdir, k.READDIRPLUS: self.readdirplus,
            k.RELEASEDIR: self.releasedir, k.FSYNCDIR: self.fsyncdir, k.CREATE: self.create,
            k.FALLOCATE: self.fallocate, k.LSEEK: self.lseek,
        })

    def initialised(self) -> None:
        os.write(self.ready_fd, b"R")
        os.close(self.ready_fd)

    # -- attributes -----------------------------------------------------------------------

    def _entry(self, path: str) -> bytes:
        """The reply to a LOOKUP (or a create) of PATH, counting the lookup."""
        entry = self.union.lookup(path)
        if entry is None:
            return _NEGATIVE
        node = self.nodes.remember(path)
        return k.ENTRY_HEAD.pack(node, 0, TIMEOUT, TIMEOUT, 0, 0) + self.attrs.of_entry(entry)

    def _attr_out(self, attr: bytes) -> bytes:
        return k.ATTR_OUT_HEAD.pack(TIMEOUT, 0, 0) + attr

    def _node_attr(self, node: int, fh: int | None = None) -> bytes:
        path = self.nodes.paths.get(node)
        handle = self.files.get(fh) if fh is not None else None
        if handle is None and path is None:
            handle = next((f for f in self.files.values() if f.node == node), None)
        if handle is not None and (path is None or not handle.lower):
            st = os.fstat(handle.fd)
            return self.attrs.of(f"/proc/self/fd/{handle.fd}", st, False)
        return self.attrs.of_entry(self.union.get(self.nodes.path(node)))

    def _owner(self) -> tuple[int, int] | None:
        ids = (self.uid, self.gid)
        return None if ids == self.own_ids else ids

    # -- lookups and attributes -----------------------------------------------------------

    def lookup(self, node: int, payload: memoryview) -> bytes:
        return self._entry(self.nodes.child(node, k.cstring(payload)))

    def forget(self, node: int, payload: memoryview) -> None:
        self.nodes.forget(node, k.FORGET_IN.unpack_from(payload)[0])

    def batch_forget(self, node: int, payload: memoryview) -> None:
        count = k.FORGET_IN.unpack_from(payload)[0] & 0xFFFFFFFF
        for i in range(count):
            forgotten, times = k.FORGET_ONE.unpack_from(payload, 8 + 16 * i)
            self.nodes.forget(forgotten, times)

    def getattr(self, node: int, payload: memoryview) -> bytes:
        flags, _, fh = k.GETATTR_IN.unpack_from(payload)
        return self._attr_out(self._node_attr(node, fh if flags & k.GETATTR_FH else None))

    def setattr(self, node: int, payload: memoryview) -> bytes:
        self.version += 1
        (valid, _, fh, size, _, atime, mtime, _, atime_ns, mtime_ns, _, mode, _, uid, gid,
         _) = k.SETATTR_IN.unpack_from(payload)
        handle = self.files.get(fh) if valid & k.FATTR_FH else None
        path = self.nodes.paths.get(node)
        if path is None:  # unlinked but open: only its data can change
            if handle is None or valid & _NAMED_ATTRS:
                raise OSError(errno.ENOENT, "unlinked")
            os.ftruncate(handle.fd, size)
            return self._attr_out(self._node_attr(node, fh))
        union = self.union
        if valid & (_NAMED_ATTRS | k.FATTR_SIZE):
            self._copied_up(node, path)
        if valid & k.FATTR_MODE:
            union.chmod(path, mode)
        if valid & (k.FATTR_UID | k.FATTR_GID):
            union.chown(path, uid if valid & k.FATTR_UID else -1,
                        gid if valid & k.FATTR_GID else -1)
        if valid & k.FATTR_SIZE:
            if handle is not None and not handle.lower:
                os.ftruncate(handle.fd, size)
                union.note("modified", path)
            else:
                union.truncate(path, size)
            if valid & k.FATTR_KILL_SUIDGID:
                self._kill_privileges(path)
        if valid & (k.FATTR_ATIME | k.FATTR_MTIME):
            union.utimens(path, _time(valid, k.FATTR_ATIME, k.FATTR_ATIME_NOW, atime, atime_ns),
                          _time(valid, k.FATTR_MTIME, k.FATTR_MTIME_NOW, mtime, mtime_ns))
        return self._attr_out(self._node_attr(node, fh if handle else None))

    def _kill_privileges(self, path: str) -> None:
        """What the kernel does on a write or truncate by someone else: drop setuid/setgid."""
        entry = self.union.get(path)  # already in the upper: chmod copies nothing
        shown = self.union.shown(entry)
        kill = shown.mode & stat.S_ISUID
        if shown.mode & stat.S_ISGID and shown.mode & stat.S_IXGRP:
            kill |= stat.S_ISGID
        if kill:
            self.union.chmod(path, shown.mode & ~kill)
        with contextlib.suppress(OSError):
            os.removexattr(entry.real, "security.capability")

    def readlink(self, node: int, payload: memoryview) -> bytes:
        return os.readlink(os.fsencode(self.union.get(self.nodes.path(node)).real))

    def statfs(self, node: int, payload: memoryview) -> bytes:
        st = os.statvfs(self.union.upper or self.union.layers[0])
        return k.KSTATFS.pack(st.f_blocks, st.f_bfree, st.f_bavail, st.f_files, st.f_ffree,
                              st.f_bsize, st.f_namemax, st.f_frsize, 0)

    # -- creating and removing names ------------------------------------------------------

    def mknod(self, node: int, payload: memoryview) -> bytes:
        self.version += 1
        mode, rdev, _, _ = k.MKNOD_IN.unpack_from(payload)
        path = self.nodes.child(node, k.cstring(payload[k.MKNOD_IN.size:]))
        self.union.create_node(path, stat.S_IFMT(mode) or stat.S_IFREG, mode,
                               decode_dev(rdev), self._owner())
        return self._entry(path)

    def mkdir(self, node: int, payload: memoryview) -> bytes:
        self.version += 1
        mode, _ = k.MKDIR_IN.unpack_from(payload)
        path = self.nodes.child(node, k.cstring(payload[k.MKDIR_IN.size:]))
        self.union.create_node(path, stat.S_IFDIR, mode, 0, self._owner())
        return self._entry(path)

    def symlink(self, node: int, payload: memoryview) -> bytes:
        self.version += 1
        name, target = k.two_cstrings(payload)
        path = self.nodes.child(node, name)
        self.union.symlink(target, path, self._owner())
        return self._entry(path)

    def link(self, node: int, payload: memoryview) -> bytes:
        self.version += 1
        (existing_node,) = k.LINK_IN.unpack_from(payload)
        existing = self.nodes.path(existing_node)
        path = self.nodes.child(node, k.cstring(payload[k.LINK_IN.size:]))
        self._copied_up(existing_node, existing)
        self.union.link(existing, path)
        return self._entry(path)

    def unlink(self, node: int, payload: memoryview) -> bytes:
        return self._remove(self.union.unlink, node, payload)

    def rmdir(self, node: int, payload: memoryview) -> bytes:
        return self._remove(self.union.rmdir, node, payload)

    def _remove(self, remove: Callable[[str], None], node: int, payload: memoryview) -> bytes:
        self.version += 1
        path = self.nodes.child(node, k.cstring(payload))
        remove(path)
        self.nodes.orphan(path)
        return b""

    def rename(self, node: int, payload: memoryview) -> bytes:
        (new_dir,) = k.RENAME_IN.unpack_from(payload)
        return self._rename(node, new_dir, 0, payload[k.RENAME_IN.size:])

    def rename2(self, node: int, payload: memoryview) -> bytes:
        new_dir, flags, _ = k.RENAME2_IN.unpack_from(payload)
        return self._rename(node, new_dir, flags, payload[k.RENAME2_IN.size:])

    def _rename(self, node: int, new_dir: int, flags: int, names: memoryview) -> bytes:
        self.version += 1
        if flags & ~k.RENAME_NOREPLACE:
            raise OSError(errno.EINVAL, "rename flags")
        old_name, new_name = k.two_cstrings(names)
        old, new = self.nodes.child(node, old_name), self.nodes.child(new_dir, new_name)
        self.union.rename(old, new, noreplace=bool(flags & k.RENAME_NOREPLACE))
        if old != new:
            self.nodes.moved(old, new)
        return b""

    # -- files ----------------------------------------------------------------------------

    def _copied_up(self, node: int, path: str) -> str:
        """Copy PATH up; read-only handles opened on the lower copy follow it."""
        real = self.union.copy_up(path).real
        self._follow(node, real)
        return real

    def _follow(self, node: int, real: str) -> None:
        for handle in self.lower_files.pop(node, []):
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
            os.dup2(fd, handle.fd)
            os.close(fd)
            handle.real, handle.lower = real, False

    def _linked_copied_up(self, path: str, real: str) -> None:
        """Another name of a hard-linked file came up with it: its open handles follow,
        and the kernel forgets its attributes (then, seeing the size change, its pages)."""
        node = self.nodes.ids.get(path)
        if node is not None:
            self._follow(node, real)
            self.notify_inval_attributes(node)

    def _new_handle(self, handle: _File) -> bytes:
        fh = self.next_handle
        self.next_handle += 1
        self.files[fh] = handle
        if handle.lower:
            self.lower_files.setdefault(handle.node, []).append(handle)
        return k.OPEN_OUT.pack(fh, k.FOPEN_KEEP_CACHE if handle.lower else 0, 0)

    def open(self, node: int, payload: memoryview) -> bytes:
        flags, open_flags = k.OPEN_IN.unpack_from(payload)
        path = self.nodes.path(node)
        clean = flags & ~(os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_DIRECT) | os.O_CLOEXEC
        if (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC:
            self.version += 1
            real = self._copied_up(node, path)
            self.union.note("modified", path)
            if open_flags & k.OPEN_KILL_SUIDGID:
                self._kill_privileges(path)
            return self._new_handle(_File(os.open(real, clean), node, real, False))
        entry = self.union.get(path)
        return self._new_handle(_File(os.open(entry.real, clean), node, entry.real,
                                      not entry.in_upper))

    def create(self, node: int, payload: memoryview) -> bytes:
        self.version += 1
        flags, mode, _, _ = k.CREATE_IN.unpack_from(payload)
        path = self.nodes.child(node, k.cstring(payload[k.CREATE_IN.size:]))
        clean = flags & ~(os.O_NOCTTY | os.O_DIRECT)
        fd, real = self.union.create_file(path, clean, mode, self._owner())
        entry = self._entry(path)
        new = self.nodes.ids[path]
        return entry + self._new_handle(_File(fd, new, real, False))

    def read(self, node: int, payload: memoryview) -> memoryview | None:
        fh, offset, size, _ = k.READ_IN.unpack_from(payload)
        handle = self.files[fh]
        if not self.spare_cpu and size >= _SPLICE_FROM:
            available = max(0, min(size, os.fstat(handle.fd).st_size - offset))
            if available and self.reply_spliced(handle.fd, offset, available):
                return k.NO_REPLY
        view = self.read_buffer[:size]
        done = os.preadv(handle.fd, [view], offset)
        return view[:done]

    def write(self, node: int, payload: memoryview) -> bytes:
        fh, offset, size, write_flags = k.READ_IN.unpack_from(payload)
        handle = self.files[fh]
        if write_flags & k.WRITE_KILL_SUIDGID and not handle.privileges_killed:
            path = self.nodes.paths.get(node)
            if path is not None:
                self._kill_privileges(path)
            handle.privileges_killed = True
        done = os.pwrite(handle.fd, payload[40:40 + size], offset)
        return k.WRITE_OUT.pack(done, 0)

    def flush(self, node: int, payload: memoryview) -> bytes:
        # Nothing is buffered here: ENOSYS tells the kernel to stop sending FLUSH on
        # every close (a tenth of the requests of an untar).
        raise OSError(errno.ENOSYS, "no flush needed")

    def fsyncdir(self, node: int, payload: memoryview) -> bytes:
        return b""

    def fsync(self, node: int, payload: memoryview) -> bytes:
        fh, flags = k.FSYNC_IN.unpack_from(payload)
        handle = self.files.get(fh)
        if handle is not None:
            (os.fdatasync if flags & k.FSYNC_FDATASYNC else os.fsync)(handle.fd)
        return b""

    def release(self, node: int, payload: memoryview) -> bytes:
        fh, _, _ = k.RELEASE_IN.unpack_from(payload)
        handle = self.files.pop(fh, None)
        if handle is not None:
            if handle.lower:
                handles = self.lower_files.get(handle.node, [])
                with contextlib.suppress(ValueError):
                    handles.remove(handle)
                if not handles:
                    self.lower_files.pop(handle.node, None)
            os.close(handle.fd)
        return b""

    def fallocate(self, node: int, payload: memoryview) -> bytes:
        fh, offset, length, mode = k.FALLOCATE_IN.unpack_from(payload)
        libc.fallocate(self.files[fh].fd, mode, offset, length)
        return b""

    def lseek(self, node: int, payload: memoryview) -> bytes:
        fh, offset, whence = k.LSEEK_IN.unpack_from(payload)
        return k.LSEEK_OUT.pack(os.lseek(self.files[fh].fd, offset, whence))

    # -- directories ----------------------------------------------------------------------

    def opendir(self, node: int, payload: memoryview) -> bytes:
        if self.kernel_flags & k.NO_OPENDIR_SUPPORT:
            raise OSError(errno.ENOSYS, "no directory handles needed")
        return k.OPEN_OUT.pack(0, 0, 0)

    def _listing(self, node: int, offset: int) -> tuple[_Listing, int, int]:
        """The listing a READDIR at OFFSET continues (a current one at offset 0): the
        listing, its ID and the index of its next entry."""
        listing_id, index = offset >> 32, offset & 0xFFFFFFFF
        if offset == 0:
            listing_id = self.latest_listing.get(node, 0)
        listing = self.listings.get(listing_id)
        if listing is not None and listing.node == node and (
                offset or listing.version == self.version):
            return listing, listing_id, index
        # Offset 0, or a listing long forgotten (then the index is the best guess left).
        path = self.nodes.path(node)
        listed = [(".", stat.S_IFDIR, 1), ("..", stat.S_IFDIR, 1)]  # glibc skips ino 0
        listed += self.union.readdir_ino(path)
        entries = []
        for name, kind, ino in listed:
            tail, padded = k.dirent_parts(os.fsencode(name), kind)
            entries.append((name, padded, ino, tail))
        listing = _Listing(node, entries, self.version)
        layers = self.union.dir_layers(path)
        if len(layers) == 1:
            upper = self.union.upper
            listing.only_layer = layers[0]
            listing.in_upper = upper is not None and layers[0] == (
                upper if path == "/" else upper + path)
            listing.plain = not listing.in_upper and self.attrs.is_plain(layers[0])
        listing_id = self.next_listing
        self.next_listing += 1
        self.listings[listing_id] = listing
        self.latest_listing[node] = listing_id
        if len(self.listings) > _LISTINGS_KEPT:
            del self.listings[next(iter(self.listings))]
        return listing, listing_id, index

    def _read_listing(self, node: int, payload: memoryview) -> tuple[_Listing, int, int, int]:
        """For a READDIR(PLUS): the listing, its offset base, the next index, the size."""
        _, offset, size, _ = k.READ_IN.unpack_from(payload)
        listing, listing_id, start = self._listing(node, offset)
        return listing, listing_id << 32, start, size

    def readdir(self, node: int, payload: memoryview) -> bytes:
        listing, base, start, size = self._read_listing(node, payload)
        out = bytearray()
        entries = listing.entries
        head = k.DIRENT_HEAD.pack
        for index in range(start, len(entries)):
            _, name, ino, tail = entries[index]
            if len(out) + k.DIRENT.size + len(name) > size:
                break
            out += head(ino, base | (index + 1))
            out += tail
            out += name
        return bytes(out)

    def readdirplus(self, node: int, payload: memoryview) -> bytes:
        handle, base, start, size = self._read_listing(node, payload)
        out = bytearray()
        entries = handle.entries
        parent = self.nodes.path(handle.node)
        prefix = "/" if parent == "/" else parent + "/"
        # The common case, a directory only one layer provides and nothing changed since
        # it was listed: each entry is that layer's file, one lstat away.
        only = handle.only_layer + "/" if handle.version == self.version else ""
        lower = not handle.in_upper
        lookup, lstat, attr = self.union.lookup, os.lstat, self.attrs.of
        attr_plain = self.attrs.of_plain if handle.plain else None
        remember, entry_head, head = self.nodes.remember, k.ENTRY_HEAD.pack, k.DIRENT_HEAD.pack
        for index in range(start, len(entries)):
            text, name, ino, tail = entries[index]
            if len(out) + _DIRENTPLUS_FIXED + len(name) > size:
                break
            packed = None
            if index < 2:
                pass
            elif only:
                real = only + text
                try:
                    st = lstat(real)
                except OSError:
                    pass
                else:
                    packed = attr_plain(st) if attr_plain else attr(real, st, lower)
            else:
                entry = lookup(prefix + text)
                if entry is not None:
                    packed = self.attrs.of_entry(entry)
            if packed is None:
                out += _NO_ENTRY
            else:
                out += entry_head(remember(prefix + text), 0, TIMEOUT, TIMEOUT, 0, 0)
                out += packed
            out += head(ino, base | (index + 1))
            out += tail
            out += name
        return bytes(out)

    def releasedir(self, node: int, payload: memoryview) -> bytes:
        return b""

    # -- extended attributes --------------------------------------------------------------

    def getxattr(self, node: int, payload: memoryview) -> bytes:
        size, _ = k.GETXATTR_IN.unpack_from(payload)
        name = k.cstring(payload[k.GETXATTR_IN.size:])
        path = self.nodes.path(node)
        if name == CHANGES_XATTR and path == "/":
            value = self._dump_changes()
        else:
            value = self.union.getxattr(path, name)
        return _sized(value, size)

    def listxattr(self, node: int, payload: memoryview) -> bytes:
        size, _ = k.GETXATTR_IN.unpack_from(payload)
        names = self.union.listxattr(self.nodes.path(node))
        return _sized(b"".join(os.fsencode(n) + b"\0" for n in names), size)

    def setxattr(self, node: int, payload: memoryview) -> bytes:
        self.version += 1
        size, flags = k.SETXATTR_IN.unpack_from(payload)
        rest = bytes(payload[k.SETXATTR_IN.size:])
        name, _, value = rest.partition(b"\0")
        path = self.nodes.path(node)
        self._copied_up(node, path)
        self.union.setxattr(path, os.fsdecode(name), value[:size], flags)
        return b""

    def removexattr(self, node: int, payload: memoryview) -> bytes:
        self.version += 1
        path = self.nodes.path(node)
        self._copied_up(node, path)
        self.union.removexattr(path, k.cstring(payload))
        return b""

    def _dump_changes(self) -> bytes:
        """Write the change record for the owner (asked through a getxattr on the root:
        a request the single server thread serves like any other)."""
        created, modified, deleted = self.union.changes()
        from rootless.fsutil import atomic_write
        atomic_write(self.changes_file, json.dumps(
            {"created": created, "modified": modified, "deleted": deleted}).encode())
        return b"1"


def _time(valid: int, given: int, now: int, seconds: int, nanoseconds: int) -> tuple[int, int]:
    if valid & now:
        return 0, UTIME_NOW
    if valid & given:
        return seconds, nanoseconds
    return 0, UTIME_OMIT


def _sized(value: bytes, size: int) -> bytes:
    """An xattr answer: the length when asked with size 0, else the value if it fits."""
    if size == 0:
        return k.SIZE_OUT.pack(len(value), 0)
    if len(value) > size:
        raise OSError(errno.ERANGE, "value too long")
    return value
