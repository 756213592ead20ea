"""The kernel's FUSE protocol, spoken over /dev/fuse: mount, request loop, replies.

Knows the wire format of <linux/fuse.h> and nothing of unions or layers;
``fuse.py`` subclasses ``Session`` with the filesystem's operations.

Why not a libfuse binding: libfuse 2 (what fuse-python wraps) has no
READDIRPLUS, caps requests at 128 KiB, passes xattr values as text and times
through 32-bit seconds. Speaking the protocol directly gives READDIRPLUS (a
stat walk costs one request per directory page instead of one per file), 1 MiB
requests, ``HANDLE_KILLPRIV_V2`` (writes clear setuid bits here, so the kernel
need not ask for ``security.capability`` before each one), 64-bit nanosecond
times and bytes for xattrs, with one Python function call per request and no C
layer between.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import sys
import time
from collections.abc import Callable

from rootless.sandbox import libc

# Opcodes (enum fuse_opcode).
LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK = 1, 2, 3, 4, 5, 6
MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK, OPEN, READ, WRITE = 8, 9, 10, 11, 12, 13, 14, 15, 16
STATFS, RELEASE, FSYNC, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR = 17, 18, 20, 21, 22, 23, 24
FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR, FSYNCDIR = 25, 26, 27, 28, 29, 30
ACCESS, CREATE, INTERRUPT, DESTROY, BATCH_FORGET = 34, 35, 36, 38, 42
FALLOCATE, READDIRPLUS, RENAME2, LSEEK = 43, 44, 45, 46

# INIT flags we ask for (each only if the kernel offers it).
ASYNC_READ = 1 << 0
ATOMIC_O_TRUNC = 1 << 3
BIG_WRITES = 1 << 5
DO_READDIRPLUS = 1 << 13
PARALLEL_DIROPS = 1 << 18
MAX_PAGES = 1 << 22
CACHE_SYMLINKS = 1 << 23
HANDLE_KILLPRIV_V2 = 1 << 28
NO_OPENDIR_SUPPORT = 1 << 24   # offered by the kernel; the server answers ENOSYS
WANTED_FLAGS = (ASYNC_READ | ATOMIC_O_TRUNC | BIG_WRITES | DO_READDIRPLUS | PARALLEL_DIROPS
                | MAX_PAGES | CACHE_SYMLINKS | HANDLE_KILLPRIV_V2)

# SETATTR valid bits, open-reply flags, request flags.
FATTR_MODE, FATTR_UID, FATTR_GID, FATTR_SIZE = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FATTR_ATIME, FATTR_MTIME, FATTR_FH = 1 << 4, 1 << 5, 1 << 6
FATTR_ATIME_NOW, FATTR_MTIME_NOW, FATTR_KILL_SUIDGID = 1 << 7, 1 << 8, 1 << 11
FOPEN_KEEP_CACHE = 1 << 1
FOPEN_CACHE_DIR = 1 << 3
GETATTR_FH = 1 << 0
WRITE_KILL_SUIDGID = 1 << 2
OPEN_KILL_SUIDGID = 1 << 0
FSYNC_FDATASYNC = 1 << 0
RENAME_NOREPLACE, RENAME_EXCHANGE = 1 << 0, 1 << 1

KERNEL_MAJOR, KERNEL_MINOR = 7, 31
PAGES = 256                              # 1 MiB requests
MAX_WRITE = PAGES * 4096
BUFFER_SIZE = MAX_WRITE + 8192           # the kernel wants room for headers + one write

IN_HEADER = struct.Struct("<IIQQIIIHH")  # len opcode unique nodeid uid gid pid extlen pad
OUT_HEADER = struct.Struct("<IiQ")       # len error unique
# struct fuse_attr: ino size blocks atime mtime ctime, 3 nsec, mode nlink uid gid rdev
# blksize flags.
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")
ENTRY_HEAD = struct.Struct("<QQQQII")    # nodeid generation entry_valid attr_valid 2 nsec
ATTR_OUT_HEAD = struct.Struct("<QII")    # attr_valid attr_valid_nsec dummy
DIRENT = struct.Struct("<QQII")          # ino off namelen type
DIRENT_HEAD = struct.Struct("<QQ")       # ... in two parts: what changes with the offset
DIRENT_TAIL = struct.Struct("<II")
INIT_IN = struct.Struct("<IIII")
INIT_OUT = struct.Struct("<IIIIHHIIHHI28x")
OPEN_OUT = struct.Struct("<QII")
WRITE_OUT = struct.Struct("<II")
SIZE_OUT = struct.Struct("<II")          # getxattr_out
KSTATFS = struct.Struct("<QQQQQIIII24x")
SETATTR_IN = struct.Struct("<IIQQQQQQIIIIIIII")
READ_IN = struct.Struct("<QQII")         # fh offset size flags (lock owner etc. follow)
RELEASE_IN = struct.Struct("<QII")
FSYNC_IN = struct.Struct("<QI")
GETATTR_IN = struct.Struct("<IIQ")
CREATE_IN = struct.Struct("<IIII")       # flags mode umask open_flags
OPEN_IN = struct.Struct("<II")
MKNOD_IN = struct.Struct("<IIII")
MKDIR_IN = struct.Struct("<II")
RENAME_IN = struct.Struct("<Q")
RENAME2_IN = struct.Struct("<QII")
LINK_IN = struct.Struct("<Q")
SETXATTR_IN = struct.Struct("<II")       # without FUSE_SETXATTR_EXT: size flags
GETXATTR_IN = struct.Struct("<II")
FORGET_IN = struct.Struct("<Q")
FORGET_ONE = struct.Struct("<QQ")
FALLOCATE_IN = struct.Struct("<QQQI")
LSEEK_IN = struct.Struct("<QQI")
LSEEK_OUT = struct.Struct("<Q")
NOTIFY_INVAL_INODE = 2
NOTIFY_INVAL_INODE_OUT = struct.Struct("<Qqq")  # nodeid offset length

NO_REPLY = None
POLL_SECONDS = 50e-6  # keep polling this long after a reply
Reply = bytes | bytearray | memoryview | None
Handler = Callable[[int, memoryview], Reply]


def open_device() -> int:
    return os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)


def mount(device: int, target: str, fsname: str, subtype: str) -> None:
    """Mount the FUSE connection DEVICE at TARGET (as root of a user namespace)."""
    options = (f"fd={device},rootmode=40000,user_id={os.geteuid()},group_id={os.getegid()},"
               "default_permissions,allow_other")
    libc.mount(fsname, target, f"fuse.{subtype}", libc.MS_NOSUID | libc.MS_NODEV, options)


def cstring(data: memoryview) -> str:
    """The first NUL-terminated name in DATA, as a str (undecodable bytes kept)."""
    raw = bytes(data)
    return os.fsdecode(raw[:raw.index(0)] if 0 in raw else raw)


def two_cstrings(data: memoryview) -> tuple[str, str]:
    raw = bytes(data)
    first, _, rest = raw.partition(b"\0")
    second = rest[:rest.index(0)] if 0 in rest else rest
    return os.fsdecode(first), os.fsdecode(second)


def dirent_parts(name: bytes, kind: int) -> tuple[bytes, bytes]:
    """A ``struct fuse_dirent`` but its ino and offset (``DIRENT_HEAD``, packed per
    reply): (namelen and type, the name padded to 8 bytes)."""
    return DIRENT_TAIL.pack(len(name), kind >> 12), name + b"\0" * (-len(name) % 8)


class Session:
    """A served FUSE connection: read a request, call its handler, write the reply.

    Handlers take (nodeid, payload) and return the reply's body, ``NO_REPLY``
    (none is due, or the handler sent it with ``reply_spliced``), or raise
    OSError (sent as the error). The caller's uid, gid and pid are in
    ``self.uid``/``self.gid``/``self.pid`` while a handler runs. One thread:
    measured faster than several on metadata, and it keeps the filesystem's
    state free of locks.
    """

    def __init__(self, device: int) -> None:
        self.device = device
        self.uid = self.gid = self.pid = 0
        self.kernel_flags = 0
        self.unique = 0
        self.pipe: tuple[int, int, int] | None = None   # for reply_spliced
        # Whether another CPU can run the server while the caller runs: then polling
        # for the next request and copying read data are cheaper than their
        # alternatives (sleeping, splicing); on one CPU they take the caller's time.
        self.spare_cpu = len(os.sched_getaffinity(0)) > 1
        self.handlers: dict[int, Handler] = {INIT: self.init}

    def init(self, nodeid: int, payload: memoryview) -> bytes:
        major, minor, max_readahead, flags = INIT_IN.unpack_from(payload)
        if major != KERNEL_MAJOR:
            raise OSError(errno.EPROTO, f"FUSE protocol {major}.{minor} is not 7.x")
        self.kernel_flags = flags
        self.initialised()
        return INIT_OUT.pack(KERNEL_MAJOR, KERNEL_MINOR, max_readahead, flags & WANTED_FLAGS,
                             16, 12, MAX_WRITE, 1, PAGES, 0, 0)

    def notify_inval_attributes(self, nodeid: int) -> None:
        """Tell the kernel NODEID's cached attributes are stale. Pages are left alone:
        invalidating them waits on page locks a pending READ may hold, and that READ
        waits on this (single) server thread."""
        body = NOTIFY_INVAL_INODE_OUT.pack(nodeid, -1, 0)
        try:
            os.writev(self.device, [OUT_HEADER.pack(16 + len(body), NOTIFY_INVAL_INODE, 0), body])
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # the kernel no longer knows the node: nothing to do
                raise

    def reply_spliced(self, fd: int, offset: int, size: int) -> bool:
        """Answer the current READ with SIZE bytes of FD at OFFSET, moved through a pipe
        (the file's pages go to the kernel without passing through Python). False when
        the answer does not fit the pipe: the caller replies the ordinary way."""
        if self.pipe is None:
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            try:
                capacity = fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 1 << 20)
            except OSError:
                capacity = 1 << 16
            self.pipe = (read_end, write_end, capacity)
        read_end, write_end, capacity = self.pipe
        total = OUT_HEADER.size + size
        if total > capacity:
            return False
        os.write(write_end, OUT_HEADER.pack(total, 0, self.unique))
        moved = 0
        while moved < size:
            done = os.splice(fd, write_end, size - moved, offset_src=offset + moved)
            if done == 0:  # the file shrank under us: pad with what a read past EOF gives
                os.write(write_end, bytes(size - moved))
                break
            moved += done
        left = total
        while left:
            left -= os.splice(read_end, self.device, left)
        return True

    def initialised(self) -> None:
        """Called once the kernel's INIT arrived (before it is answered)."""

    def serve(self) -> None:
        """Answer requests until the filesystem is unmounted."""
        device = self.device
        buffer = bytearray(BUFFER_SIZE)
        view = memoryview(buffer)
        readv, writev = os.readv, os.writev
        unpack, pack = IN_HEADER.unpack_from, OUT_HEADER.pack
        handlers = self.handlers
        # After a reply, poll for the next request for a moment before sleeping: a
        # process working through a tree asks again within microseconds, and waking a
        # sleeping server costs tens of them (measured here: 50-60 us per round trip
        # sleeping, 25 us polling). Only with a CPU to spare: on one CPU the poll
        # would take the time of the very process it waits for.
        poll_for = POLL_SECONDS if self.spare_cpu else 0.0
        os.set_blocking(device, not poll_for)
        poller = select.poll()
        poller.register(device, select.POLLIN)
        clock, pause = time.monotonic, os.sched_yield
        poll_until = 0.0
        while True:
            try:
                size = readv(device, [buffer])
            except BlockingIOError:
                if clock() < poll_until:
                    pause()  # let the process we serve run, if it shares this CPU
                else:
                    poller.poll()
                continue
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.EINTR):
                    continue  # an interrupted request the kernel took back
                if exc.errno == errno.ENODEV:
                    return    # unmounted
                raise
            _, opcode, unique, nodeid, self.uid, self.gid, self.pid, _, _ = unpack(buffer)
            self.unique = unique
            handler = handlers.get(opcode)
            error = 0
            body: Reply = b""
            if handler is None:
                if opcode in (FORGET, BATCH_FORGET, INTERRUPT):
                    continue
                error = errno.ENOSYS
            else:
                try:
                    body = handler(nodeid, view[IN_HEADER.size:size])
                except OSError as exc:
                    error = exc.errno or errno.EIO
                except Exception as exc:  # a bug must not take the filesystem down
                    print(f"rootless cowfs: opcode {opcode}: {exc!r}", file=sys.stderr)
                    error = errno.EIO
                if body is NO_REPLY and not error:
                    continue
            poll_until = clock() + poll_for
            try:
                if error:
                    writev(device, [pack(16, -error, unique)])
                else:
                    assert body is not None
                    writev(device, [pack(16 + len(body), 0, unique), body])
            except OSError as exc:
                if exc.errno == errno.ENODEV:
                    return
                if exc.errno != errno.ENOENT:  # ENOENT: the request was interrupted
                    raise
