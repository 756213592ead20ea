"""The Linux system calls Python 3.11 lacks, through ctypes on libc.

Every wrapper raises ``OSError`` with errno and the path involved, like the
``os`` module does, so callers can handle them the same way.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_SET_CHILD_SUBREAPER = 36
SECCOMP_MODE_FILTER = 2

AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1

_MACHINE = os.uname().machine
# System call numbers that glibc has no wrapper for (or only a recent one).
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "mount_setattr": 442, "close_range": 436, "seccomp": 317},
    "aarch64": {"pivot_root": 41, "mount_setattr": 442, "close_range": 436, "seccomp": 277},
}.get(_MACHINE, {})


def _check(result: int, *paths: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), *paths[:1])
    return result


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) itself (glibc's posix_fallocate would write zeros where the
    filesystem cannot allocate)."""
    _check(_libc.fallocate(ctypes.c_int(fd), ctypes.c_int(mode), ctypes.c_int64(offset),
                           ctypes.c_int64(length)))


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)))


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)))


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(
        source.encode() if source is not None else None,
        target.encode(),
        fstype.encode() if fstype is not None else None,
        ctypes.c_ulong(flags),
        data.encode() if data is not None else None,
    ), target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), target)


def _syscall(name: str, *args: object) -> int:
    number = _SYSCALLS.get(name)
    if number is None:
        raise OSError(38, f"{name} is not wired for {_MACHINE}")
    return int(_libc.syscall(ctypes.c_long(number), *args))


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_syscall("pivot_root", new_root.encode(), put_old.encode()), new_root)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def make_readonly(path: str, recursive: bool = True) -> None:
    """Make the mount at PATH read-only (all mounts below it too, if recursive).

    mount_setattr(2) keeps the flags the kernel locked on a bind mount made in a
    user namespace (nosuid, nodev...), which a MS_REMOUNT would have to repeat.
    """
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    try:
        _check(_syscall("mount_setattr", ctypes.c_int(-100), path.encode(),
                        ctypes.c_uint(flags), ctypes.byref(attr),
                        ctypes.c_size_t(ctypes.sizeof(attr))), path)
    except OSError as exc:
        if exc.errno != 38:  # ENOSYS: kernels before 5.12
            raise
        st = os.statvfs(path)
        locked = st.f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
        mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | locked)


def close_range_cloexec(first: int) -> None:
    """Mark every descriptor from FIRST up close-on-exec (CLOSE_RANGE_CLOEXEC)."""
    try:
        _check(_syscall("close_range", ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF),
                        ctypes.c_uint(1 << 2)))
    except OSError:
        for fd in os.listdir("/proc/self/fd"):
            if int(fd) >= first:
                try:
                    os.set_inheritable(int(fd), False)
                except OSError:
                    pass


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(0), ctypes.c_ulong(0)))


def set_pdeathsig(signum: int) -> None:
    prctl(PR_SET_PDEATHSIG, signum)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def install_seccomp(program: bytes) -> None:
    """Load a classic BPF PROGRAM (an array of struct sock_filter) as seccomp filter."""

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog))


def install_seccomp_listener(program: bytes) -> int:
    """Load PROGRAM with SECCOMP_FILTER_FLAG_NEW_LISTENER; return the listener fd."""

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    seccomp_set_mode_filter, flag_new_listener = 1, 1 << 3
    return _check(_syscall("seccomp", ctypes.c_uint(seccomp_set_mode_filter),
                           ctypes.c_uint(flag_new_listener), ctypes.byref(prog)))


def sethostname(name: str) -> None:
    data = name.encode()
    _check(_libc.sethostname(data, ctypes.c_size_t(len(data))))
