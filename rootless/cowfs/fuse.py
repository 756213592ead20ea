"""The ``fuse`` driver: ``Union`` served through fuse-python by a forked child.

The only module that imports ``fuse``. Inside the sandbox's user + mount
namespace the caller is root, so libfuse mounts with mount(2) itself (no
setuid ``fusermount``). The server is a child process that dies with its
owner (PR_SET_PDEATHSIG); if it dies first, the kernel aborts the connection
and every access fails with ENOTCONN instead of hanging.

Speed levers (measured, see ``scripts/bench-cowfs``): one thread, big_writes,
the kernel page cache kept for files served from read-only lowers, file types
returned by readdir, cached per-directory layer resolution, long
entry/negative timeouts, packed attributes of lower files kept, and reads
answered with the file descriptor (a ``read_buf`` that libfuse serves itself,
spliced into /dev/fuse): no Python bytes per 128 KiB request.

fuse-python 1.0.9 passes utimens seconds as a C int (dates after 2038 wrap)
and never sets libfuse's ``utime_omit_ok``, so ``touch -m`` and ``cp -p``
would be dropped. ``_LibfusePatch`` replaces utimens and getattr inside
libfuse with ctypes callbacks that see the real ``struct timespec`` values
(and adds read_buf).

For developers: ``ROOTLESS_FUSE_DEBUG=1`` runs the server with libfuse's ``-d``
(every request on stderr); ``ROOTLESS_FUSE_PROFILE=FILE`` writes a cProfile of
the server to FILE when it unmounts.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import platform
import select
import signal
import stat
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fuse

from rootless.cowfs.driver import Changes, MountHandle
from rootless.cowfs.union import Union
from rootless.errors import CowfsError
from rootless.oci.layer import presented

fuse.fuse_python_api = (0, 2)

MOUNT_OPTIONS = ",".join([
    "fsname=rootless", "subtype=cowfs", "default_permissions", "allow_other", "use_ino",
    "big_writes", "max_write=131072", "max_read=131072", "entry_timeout=60",
    "negative_timeout=60", "attr_timeout=60", "nodev", "splice_write",
])
_READY_TIMEOUT = 20.0
CHANGES_XATTR = "user.rootless.changes"
CHANGES_FILE = "changes.json"


class _Handle:
    """An open file: fuse-python hands it back to read/write/release."""

    def __init__(self, fd: int, path: str, real: str, lower: bool) -> None:
        self.fd = fd
        self.path = path
        self.real = real
        self.lower = lower
        self.keep_cache = lower   # lowers never change: keep their pages cached
        self.direct_io = False


class _Dirent:
    """What fuse-python reads from a directory entry (its attributes by name), made
    about 7x faster than ``fuse.Direntry``: a directory walk makes one per entry."""

    __slots__ = ("ino", "name", "offset", "type")

    def __init__(self, name: str, kind: int, ino: int) -> None:
        self.name = name
        self.type = kind
        self.ino = ino
        self.offset = 0


def _stat(st: os.stat_result, fmt: int, uid: int, gid: int, mode: int, rdev: int) -> fuse.Stat:
    result = fuse.Stat()
    result.st_mode = fmt | mode
    result.st_ino = st.st_ino
    result.st_dev = 0
    result.st_nlink = st.st_nlink
    result.st_uid = uid
    result.st_gid = gid
    result.st_size = 0 if fmt in (stat.S_IFCHR, stat.S_IFBLK) else st.st_size
    result.st_rdev = rdev
    result.st_blocks = st.st_blocks
    result.st_blksize = st.st_blksize
    result.st_atime = st.st_atime_ns // 1_000_000_000
    result.st_mtime = st.st_mtime_ns // 1_000_000_000
    result.st_ctime = st.st_ctime_ns // 1_000_000_000
    return result


def _id_map(path: str) -> list[tuple[int, int]]:
    """(first, count) of the IDs this namespace maps."""
    ranges = []
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            inside, _, count = line.split()
            ranges.append((int(inside), int(count)))
    return ranges


def _mapped(value: int, ranges: list[tuple[int, int]]) -> bool:
    return any(first <= value < first + count for first, count in ranges)


class CowFuse(fuse.Fuse):
    """fuse-python operations mapped onto a Union."""

    def __init__(self, union: Union, ready_fd: int, changes_file: Path, *args: Any,
                 **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.union = union
        self.changes_file = changes_file
        self.ready_fd = ready_fd
        self.multithreaded = False
        self.lower_handles: dict[str, list[_Handle]] = {}
        self.uid_map = _id_map("/proc/self/uid_map")
        self.gid_map = _id_map("/proc/self/gid_map")
        self.patch: _LibfusePatch | None = None
        self._uids: dict[int, int] = {}
        self._gids: dict[int, int] = {}
        self._lower_attrs: dict[str, bytes] = {}
        # Open handles by address (what fuse-python stores in fuse_file_info.fh), for
        # the libfuse patch's read_buf.
        self.handles: dict[int, _Handle] = {}

    # -- life cycle --------------------------------------------------------------------

    def fsinit(self) -> None:
        try:
            self.patch = _LibfusePatch(self)
        except Exception as exc:  # a libfuse we do not know: keep fuse-python's versions
            print(f"rootless cowfs: timestamp fix not applied: {exc}", file=sys.stderr)
        os.write(self.ready_fd, b"R")
        os.close(self.ready_fd)

    # -- metadata ----------------------------------------------------------------------

    def getattr(self, path: str) -> fuse.Stat:
        entry = self.union.get(path)
        shown = self.union.shown(entry)
        return _stat(entry.st, shown.fmt, self._shown_uid(shown.uid), self._shown_gid(shown.gid),
                     shown.mode, shown.rdev)

    def _shown_uid(self, uid: int) -> int:
        # An owner this namespace does not map would reach the kernel as "nobody", whom
        # even root may not override: show root instead (the record keeps the real one).
        shown = self._uids.get(uid)
        if shown is None:
            shown = self._uids[uid] = uid if _mapped(uid, self.uid_map) else 0
        return shown

    def _shown_gid(self, gid: int) -> int:
        shown = self._gids.get(gid)
        if shown is None:
            shown = self._gids[gid] = gid if _mapped(gid, self.gid_map) else 0
        return shown

    def stat_bytes(self, path: str) -> bytes:
        """PATH's ``struct stat`` (x86_64), with nanosecond times, for the libfuse patch.

        The hot path of every LOOKUP and GETATTR: a file of a read-only lower never
        changes, so its packed answer is kept by real path.
        """
        entry = self.union.get(path)
        lower = not entry.in_upper
        if lower:
            packed = self._lower_attrs.get(entry.real)
            if packed is not None:
                return packed
        shown = presented(entry.real, entry.st)
        st = entry.st
        fmt = shown.fmt
        size = 0 if fmt == stat.S_IFCHR or fmt == stat.S_IFBLK else st.st_size
        a_sec, a_ns = divmod(st.st_atime_ns, 1_000_000_000)
        m_sec, m_ns = divmod(st.st_mtime_ns, 1_000_000_000)
        c_sec, c_ns = divmod(st.st_ctime_ns, 1_000_000_000)
        packed = _STAT.pack(0, st.st_ino, st.st_nlink, fmt | shown.mode,
                            self._shown_uid(shown.uid), self._shown_gid(shown.gid), 0,
                            shown.rdev, size, st.st_blksize, st.st_blocks,
                            a_sec, a_ns, m_sec, m_ns, c_sec, c_ns)
        if lower:
            self._lower_attrs[entry.real] = packed
        return packed

    def fgetattr(self, path: str, fh: _Handle) -> fuse.Stat:
        return self.getattr(path)

    def readlink(self, path: str) -> str:
        return os.readlink(self.union.get(path).real)

    def readdir(self, path: str, offset: int) -> Iterator[_Dirent]:
        # glibc skips entries whose inode is 0, so every entry carries one.
        yield _Dirent(".", stat.S_IFDIR, 1)
        yield _Dirent("..", stat.S_IFDIR, 1)
        for name, kind, ino in self.union.readdir_ino(path):
            yield _Dirent(name, kind, ino)

    def statfs(self) -> fuse.StatVfs:
        st = os.statvfs(self.union.upper or self.union.layers[0])
        return fuse.StatVfs(f_bsize=st.f_bsize, f_frsize=st.f_frsize, f_blocks=st.f_blocks,
                            f_bfree=st.f_bfree, f_bavail=st.f_bavail, f_files=st.f_files,
                            f_ffree=st.f_ffree, f_favail=st.f_favail, f_namemax=st.f_namemax)

    def _owner(self) -> tuple[int, int] | None:
        context = self.GetContext()
        uid, gid = context.get("uid", 0), context.get("gid", 0)
        return None if (uid, gid) == (os.geteuid(), os.getegid()) else (uid, gid)

    def mknod(self, path: str, mode: int, dev: int) -> None:
        self.union.create_node(path, stat.S_IFMT(mode) or stat.S_IFREG, mode, dev, self._owner())

    def mkdir(self, path: str, mode: int) -> None:
        self.union.create_node(path, stat.S_IFDIR, mode, 0, self._owner())

    def symlink(self, target: str, path: str) -> None:
        self.union.symlink(target, path, self._owner())

    def link(self, existing: str, path: str) -> None:
        self._copied_up(existing)
        self.union.link(existing, path)

    def unlink(self, path: str) -> None:
        self.union.unlink(path)

    def rmdir(self, path: str) -> None:
        self.union.rmdir(path)

    def rename(self, old: str, new: str) -> None:
        self.union.rename(old, new)

    def chmod(self, path: str, mode: int) -> None:
        self._copied_up(path)
        self.union.chmod(path, mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._copied_up(path)
        self.union.chown(path, uid, gid)

    def truncate(self, path: str, size: int) -> None:
        self._copied_up(path)
        self.union.truncate(path, size)

    def utimens(self, path: str, atime: fuse.Timespec, mtime: fuse.Timespec) -> None:
        # Only reached when the libfuse patch could not be applied.
        self._copied_up(path)
        self.union.utimens(path, (atime.tv_sec, atime.tv_nsec), (mtime.tv_sec, mtime.tv_nsec))

    def getxattr(self, path: str, name: str, size: int) -> str | int:
        # fuse-python wants str and encodes it back with surrogateescape: bytes survive.
        if name == CHANGES_XATTR and path == "/":
            value = self._dump_changes()
        else:
            value = self.union.getxattr(path, name)
        if size == 0:
            return len(value)
        if len(value) > size:
            raise OSError(errno.ERANGE, "value too long")
        return os.fsdecode(value)

    def listxattr(self, path: str, size: int) -> list[str] | int:
        names = self.union.listxattr(path)
        total = sum(len(os.fsencode(n)) + 1 for n in names)
        if size == 0:
            return total
        if total > size:
            raise OSError(errno.ERANGE, "list too long")
        return names

    def setxattr(self, path: str, name: str, value: bytes | str, flags: int) -> None:
        self._copied_up(path)
        raw = os.fsencode(value) if isinstance(value, str) else value
        self.union.setxattr(path, name, raw, flags)

    def removexattr(self, path: str, name: str) -> None:
        self._copied_up(path)
        self.union.removexattr(path, name)

    def _dump_changes(self) -> bytes:
        """Write the change record for the owner (asked through a getxattr on the root:
        a request the single FUSE thread serves like any other)."""
        created, modified, deleted = self.union.changes()
        from rootless.fsutil import atomic_write
        atomic_write(self.changes_file, json.dumps(
            {"created": created, "modified": modified, "deleted": deleted}).encode())
        return b"1"

    # -- files -------------------------------------------------------------------------

    def _copied_up(self, path: str) -> str:
        """Copy PATH up; read-only handles opened on the lower copy follow it."""
        entry = self.union.copy_up(path)
        for handle in self.lower_handles.pop(path, []):
            fd = os.open(entry.real, os.O_RDONLY | os.O_CLOEXEC)
            os.dup2(fd, handle.fd)
            os.close(fd)
            handle.real, handle.lower = entry.real, False
        return entry.real

    def open(self, path: str, flags: int) -> _Handle:
        clean = flags & ~(os.O_CREAT | os.O_EXCL | os.O_NOCTTY) | os.O_CLOEXEC
        writing = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC
        if writing:
            real = self._copied_up(path)
            self.union.note("modified", path)
            return self._opened(_Handle(os.open(real, clean), path, real, False))
        entry = self.union.get(path)
        handle = _Handle(os.open(entry.real, clean), path, entry.real, not entry.in_upper)
        if handle.lower:
            self.lower_handles.setdefault(path, []).append(handle)
        return self._opened(handle)

    def _opened(self, handle: _Handle) -> _Handle:
        self.handles[id(handle)] = handle
        return handle

    def create(self, path: str, flags: int, mode: int) -> _Handle:
        fd, real = self.union.create_file(path, flags, mode, self._owner())
        return self._opened(_Handle(fd, path, real, False))

    def read(self, path: str, size: int, offset: int, fh: _Handle) -> bytes:
        return os.pread(fh.fd, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: _Handle) -> int:
        return os.pwrite(fh.fd, data, offset)

    def ftruncate(self, path: str, size: int, fh: _Handle) -> None:
        os.ftruncate(fh.fd, size)

    def fsync(self, path: str, datasync: int, fh: _Handle) -> None:
        if datasync:
            os.fdatasync(fh.fd)
        else:
            os.fsync(fh.fd)

    def release(self, path: str, flags: int, fh: _Handle) -> None:
        self.handles.pop(id(fh), None)
        if fh.lower:
            handles = self.lower_handles.get(path, [])
            with contextlib.suppress(ValueError):
                handles.remove(fh)
            if not handles:
                self.lower_handles.pop(path, None)
        os.close(fh.fd)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_UTIMENS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec))
_GETATTR = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_FGETATTR = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p)
# Slots in struct fuse_operations (FUSE_USE_VERSION 26), in pointers.
_OPS_GETATTR, _OPS_FGETATTR, _OPS_UTIMENS, _OPS_READ_BUF = 0, 34, 36, 42
_READ_BUF = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.c_int64, ctypes.c_void_p)
# struct fuse_bufvec holding one struct fuse_buf: count idx off | size flags mem fd pos.
_BUFVEC = struct.Struct("<QQQ" + "QI4xQi4xq")
_FUSE_BUF_IS_FD, _FUSE_BUF_FD_SEEK = 1 << 1, 1 << 2
_FI_FH = 24  # offset of fh in struct fuse_file_info
# struct stat on x86_64: dev ino nlink mode uid gid pad rdev size blksize blocks, 3 timespecs.
_STAT = struct.Struct("<QQQIIIiQqqq" + "qq" * 3 + "24x")


class _LibfusePatch:
    """Swap three libfuse operations for ctypes callbacks that see full timestamps.

    fuse-python 1.0.9 converts times through C ints and whole seconds, and never
    sets ``utime_omit_ok``. ``struct fuse`` is private to libfuse, so its ``fs``
    member is found by value: the one pointer whose target starts with
    fuse-python's getattr callback (the first member of ``struct
    fuse_operations``). The two ints after it are ``nullpath_ok`` and
    ``utime_omit_ok`` (libfuse 2.8-2.9).
    """

    def __init__(self, server: CowFuse) -> None:
        self.server = server
        libfuse, module_base, getattr_offset = _libraries()
        lib = ctypes.CDLL(libfuse)
        lib.fuse_get_context.restype = ctypes.POINTER(ctypes.c_void_p)
        struct_fuse = lib.fuse_get_context()[0]
        getattr_func = module_base + getattr_offset
        readable = _readable_ranges()
        for offset in range(0, 1024, 8):
            ops = ctypes.c_void_p.from_address(struct_fuse + offset).value
            if not ops or not _inside(ops, 8, readable):
                continue
            if ctypes.c_void_p.from_address(ops).value != getattr_func:
                continue
            flags = (ctypes.c_int * 2).from_address(struct_fuse + offset + 8)
            if flags[0] not in (0, 1) or flags[1] not in (0, 1):
                continue
            self.callbacks: list[Any] = [_UTIMENS(self._utimens)]
            self._install(ops, _OPS_UTIMENS, self.callbacks[0])
            flags[1] = 1
            if platform.machine() == "x86_64" and _STAT.size == 144:
                self.callbacks += [_GETATTR(self._getattr), _FGETATTR(self._fgetattr)]
                self._install(ops, _OPS_GETATTR, self.callbacks[1])
                self._install(ops, _OPS_FGETATTR, self.callbacks[2])
                # Reads answered with the file descriptor: libfuse reads the data itself,
                # so no bytes object is made and copied per 128 KiB request.
                self.malloc = ctypes.CDLL(None).malloc
                self.malloc.restype = ctypes.c_void_p
                self.malloc.argtypes = [ctypes.c_size_t]
                self.callbacks.append(_READ_BUF(self._read_buf))
                self._install(ops, _OPS_READ_BUF, self.callbacks[3])
            return
        raise RuntimeError("libfuse's struct fuse has an unexpected layout")

    @staticmethod
    def _install(ops: int, index: int, callback: Any) -> None:
        slot = ctypes.c_void_p.from_address(ops + 8 * index)
        slot.value = ctypes.cast(callback, ctypes.c_void_p).value

    def _utimens(self, path: bytes, times: Any) -> int:
        try:
            name = os.fsdecode(path)
            self.server._copied_up(name)
            self.server.union.utimens(name, (times[0].tv_sec, times[0].tv_nsec),
                                      (times[1].tv_sec, times[1].tv_nsec))
            return 0
        except OSError as exc:
            return -(exc.errno or errno.EIO)
        except Exception:
            return -errno.EIO

    def _getattr(self, path: bytes, buf: int) -> int:
        try:
            ctypes.memmove(buf, self.server.stat_bytes(path.decode("utf-8", "surrogateescape")),
                           _STAT.size)
            return 0
        except OSError as exc:
            return -(exc.errno or errno.EIO)
        except Exception:
            return -errno.EIO

    def _fgetattr(self, path: bytes, buf: int, info: int) -> int:
        return self._getattr(path, buf)

    def _read_buf(self, path: bytes, bufp: int, size: int, offset: int, info: int) -> int:
        try:
            handle = self.server.handles.get(
                ctypes.c_uint64.from_address(info + _FI_FH).value)
            if handle is None:
                return -errno.EBADF
            vec = self.malloc(_BUFVEC.size)  # libfuse frees it
            if not vec:
                return -errno.ENOMEM
            ctypes.memmove(vec, _BUFVEC.pack(1, 0, 0, size, _FUSE_BUF_IS_FD | _FUSE_BUF_FD_SEEK,
                                             0, handle.fd, offset), _BUFVEC.size)
            ctypes.c_void_p.from_address(bufp).value = vec
            return 0
        except Exception:
            return -errno.EIO


def _libraries() -> tuple[str, int, int]:
    """(libfuse path, load address of fuse-python's _fuse module, offset of getattr_func)."""
    import fuseparts._fuse as module  # type: ignore[import-untyped]
    from elftools.elf.elffile import ELFFile

    module_path = os.path.realpath(module.__file__)
    libfuse = None
    base = None
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) < 6:
                continue
            path = fields[5]
            if os.path.realpath(path) == module_path and base is None:
                base = int(fields[0].split("-")[0], 16) - int(fields[2], 16)
            if "libfuse" in os.path.basename(path) and libfuse is None:
                libfuse = path
    if base is None or libfuse is None:
        raise RuntimeError("cannot find fuse-python's libraries in memory")
    with open(module_path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        if symtab is None:
            raise RuntimeError("fuse-python's module has no symbol table")
        for symbol in symtab.iter_symbols():  # type: ignore[attr-defined]
            if symbol.name == "getattr_func":
                return libfuse, base, int(symbol["st_value"])
    raise RuntimeError("getattr_func not found in fuse-python's module")


def _readable_ranges() -> list[tuple[int, int]]:
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, perms = line.split()[:2]
            if perms.startswith("r"):
                start, end = (int(x, 16) for x in span.split("-"))
                ranges.append((start, end))
    return ranges


def _inside(address: int, size: int, ranges: list[tuple[int, int]]) -> bool:
    return any(start <= address and address + size <= end for start, end in ranges)


# -- the server process and its handle -------------------------------------------------


def _server(lowers: list[Path], upper: Path, work: Path, target: Path, ready_w: int) -> None:
    from rootless.sandbox import libc
    libc.set_pdeathsig(signal.SIGKILL)
    union = Union(list(reversed(lowers)), upper)
    server = CowFuse(union, ready_w, work / CHANGES_FILE, dash_s_do="setsingle")
    debug = ["-d"] if os.environ.get("ROOTLESS_FUSE_DEBUG") else []
    server.parse([str(target), "-f", "-s", *debug, "-o", MOUNT_OPTIONS], errex=1)
    profile = os.environ.get("ROOTLESS_FUSE_PROFILE")
    if profile:  # a developer's view of where server time goes
        import cProfile
        cProfile.runctx("server.main()", globals(), {"server": server}, profile)
    else:
        server.main()


class FuseHandle(MountHandle):
    driver = "fuse"

    def __init__(self, target: Path, upper: Path, work: Path, pid: int) -> None:
        super().__init__(target, upper)
        self.pid = pid
        self.work = work
        self._final: Changes | None = None

    def alive(self) -> bool:
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return done == 0

    def changes(self) -> Changes | None:
        if self._final is not None or not self.mounted:
            return self._final
        try:
            os.getxattr(self.target, CHANGES_XATTR)
            data = json.loads((self.work / CHANGES_FILE).read_bytes())
        except (OSError, ValueError) as exc:
            raise CowfsError(f"the FUSE server of {self.target} is gone: {exc}") from exc
        return Changes(frozenset(data["created"]), frozenset(data["modified"]),
                       frozenset(data["deleted"]))

    def unmount(self) -> None:
        if not self.mounted:
            return
        from rootless.sandbox import libc
        with contextlib.suppress(CowfsError):
            self._final = self.changes()
        try:
            libc.umount2(str(self.target))
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                libc.umount2(str(self.target), libc.MNT_DETACH)
            elif exc.errno != errno.EINVAL:
                raise CowfsError(f"cannot unmount {self.target}: {exc.strerror}") from exc
        self.mounted = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            time.sleep(0.01)
        os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _detach(keep: int) -> None:
    """Make the server child independent of its owner's terminal and pipes.

    Its own session keeps a Ctrl-C for the container away from it, and closing
    inherited descriptors keeps it from holding the owner's pipes open (a
    caller waiting for EOF on ``rootless run``'s stdout must not wait for it).
    """
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)


def mount_fuse(lowers: list[Path], upper: Path, work: Path, target: Path) -> FuseHandle:
    ready_r, ready_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_r)
            _detach(ready_w)
            _server(lowers, upper, work, target, ready_w)
            code = 0
        except BaseException as exc:  # the parent reports it: it sees no "ready"
            with contextlib.suppress(Exception):
                print(f"rootless cowfs server: {exc}", file=sys.stderr)
        finally:
            os._exit(code)
    os.close(ready_w)
    try:
        ready, _, _ = select.select([ready_r], [], [], _READY_TIMEOUT)
        answer = os.read(ready_r, 1) if ready else b""
    finally:
        os.close(ready_r)
    if answer != b"R":
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        raise CowfsError(f"the FUSE filesystem did not mount at {target}",
                         hint="is /dev/fuse usable? try --storage-driver overlay or vfs")
    return FuseHandle(target, upper, work, pid)
