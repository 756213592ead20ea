"""User namespaces: the ID mapping and the fork that enters a new namespace.

Two mapping modes:

``full``
    container 0 is the calling user, container 1..N its ``/etc/subuid`` and
    ``/etc/subgid`` range, written by the setuid helpers ``newuidmap`` and
    ``newgidmap`` (from the parent, after the child unshared).
``single``
    container 0 is the calling user and nothing else is mapped; the child writes
    its own maps (``setgroups`` denied, as the kernel requires).  Calls that
    change ownership would fail, so the sandbox adds a seccomp filter making
    them report success (see ``seccomp.py``).

``IdMapping.detect()`` picks ``full`` when the helpers and ranges are usable,
``single`` otherwise; ``ROOTLESS_ID_MAPPING=full|single`` forces a mode.

``run_in_userns(fn)`` is the primitive other areas use (e.g. to test a FUSE
mount as mapped root): it forks, enters new user + mount namespaces, runs
``fn()`` there and returns the child's exit status.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from rootless.errors import RootlessError, SandboxError
from rootless.sandbox import libc

T = TypeVar("T")

Mode = Literal["full", "single"]

USERNS_REMEDY = (
    "enable unprivileged user namespaces: `sysctl -w kernel.unprivileged_userns_clone=1` "
    "(Debian), `sysctl -w user.max_user_namespaces=15000`, or on Ubuntu "
    "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
)


@dataclass(frozen=True, slots=True)
class IdRange:
    start: int
    count: int


@dataclass(frozen=True, slots=True)
class IdMapping:
    """How container IDs map to host IDs for one sandbox."""

    mode: Mode
    uid: int
    gid: int
    subuid: IdRange | None = None
    subgid: IdRange | None = None

    @classmethod
    def single(cls) -> IdMapping:
        return cls("single", os.geteuid(), os.getegid())

    @classmethod
    def detect(cls) -> IdMapping:
        """The best mode this host allows (``ROOTLESS_ID_MAPPING`` overrides)."""
        forced = os.environ.get("ROOTLESS_ID_MAPPING", "").strip()
        if forced == "single":
            return cls.single()
        full = cls.full_or_reason()
        if isinstance(full, IdMapping):
            return full
        if forced == "full":
            raise SandboxError(f"ROOTLESS_ID_MAPPING=full, but {full[0]}", hint=full[1])
        return cls.single()

    @classmethod
    def full_or_reason(cls) -> IdMapping | tuple[str, str]:
        """The full mapping, or (what is missing, the remedy)."""
        uid, gid = os.geteuid(), os.getegid()
        for tool in ("newuidmap", "newgidmap"):
            path = shutil.which(tool)
            if path is None:
                return (f"{tool} is not installed", "install it: `apt-get install uidmap`")
            if not _privileged_helper(path):
                return (f"{path} has neither the setuid bit nor file capabilities",
                        f"`chmod u+s {path}` (as root) or reinstall uidmap")
        name = _user_name(uid)
        subuid = _subid_range("/etc/subuid", name, uid)
        subgid = _subid_range("/etc/subgid", name, uid)
        if subuid is None:
            return (f"/etc/subuid has no range for {name or uid}",
                    f"`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 "
                    f"{name or uid}` (as root)")
        if subgid is None:
            return (f"/etc/subgid has no range for {name or uid}",
                    f"`usermod --add-subgids 100000-165535 {name or uid}` (as root)")
        return cls("full", uid, gid, subuid, subgid)

    def uid_map(self) -> list[tuple[int, int, int]]:
        """(container id, host id, count) lines of /proc/PID/uid_map."""
        lines = [(0, self.uid, 1)]
        if self.subuid is not None:
            lines.append((1, self.subuid.start, self.subuid.count))
        return lines

    def gid_map(self) -> list[tuple[int, int, int]]:
        lines = [(0, self.gid, 1)]
        if self.subgid is not None:
            lines.append((1, self.subgid.start, self.subgid.count))
        return lines

    @property
    def max_id(self) -> int:
        """The highest container uid that exists in this mapping."""
        return self.subuid.count if self.subuid else 0


def _privileged_helper(path: str) -> bool:
    st = os.stat(path)
    if st.st_mode & stat.S_ISUID and st.st_uid == 0:
        return True
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError:
        return False


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _subid_range(path: str, name: str | None, uid: int) -> IdRange | None:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (name, str(uid)):
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if count > 0:
            return IdRange(start, count)
    return None


def _write_maps_self(mapping: IdMapping) -> None:
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {mapping.uid} 1\n")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {mapping.gid} 1\n")


def _run_helper(argv: list[str]) -> None:
    # posix_spawn and a pipe for stderr: cheaper to import than subprocess.
    read_fd, write_fd = os.pipe()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ,
                              file_actions=[(os.POSIX_SPAWN_DUP2, write_fd, 2)])
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        raise SandboxError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        err = f.read().decode(errors="replace").strip()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SandboxError(f"{argv[0]} failed: {err or 'exit status ' + str(status)}",
                           hint="check /etc/subuid and /etc/subgid, or run "
                                "`rootless info`; ROOTLESS_ID_MAPPING=single avoids them")


def write_maps_from_parent(pid: int, mapping: IdMapping) -> None:
    """Run newuidmap/newgidmap for the child PID (full mode)."""
    for tool, lines in (("newuidmap", mapping.uid_map()), ("newgidmap", mapping.gid_map())):
        argv = [tool, str(pid)]
        for inside, outside, count in lines:
            argv += [str(inside), str(outside), str(count)]
        _run_helper(argv)


def fork_into_userns(mapping: IdMapping, flags: int = libc.CLONE_NEWNS) -> int:
    """Fork; the child enters a new user namespace (+ FLAGS) and is mapped root.

    Returns the child's pid in the parent and 0 in the child, like ``os.fork``.
    The child dies with its parent (PDEATHSIG). The parent raises SandboxError
    (after reaping the child) when the child could not unshare or be mapped.
    """
    parent = os.getpid()
    ready_r, ready_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(mapped_w)
        try:
            libc.set_pdeathsig(signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(125)
            libc.unshare(libc.CLONE_NEWUSER | flags)
            if mapping.mode == "single":
                _write_maps_self(mapping)
        except OSError as exc:
            os.write(ready_w, f"E{exc.errno} {exc.strerror}".encode())
            os._exit(125)
        os.write(ready_w, b"R")
        os.close(ready_w)
        if mapping.mode == "full" and os.read(mapped_r, 1) != b"M":
            os._exit(125)
        os.close(mapped_r)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        libc.set_pdeathsig(signal.SIGKILL)  # credential changes cleared it
        if os.getppid() != parent:
            os._exit(125)
        return 0
    os.close(ready_w)
    os.close(mapped_r)
    try:
        with os.fdopen(ready_r, "rb") as f:
            answer = f.read()
        if answer != b"R":
            raise _unshare_error(answer.decode(errors="replace"))
        if mapping.mode == "full":
            write_maps_from_parent(pid, mapping)
            os.write(mapped_w, b"M")
    except BaseException:
        os.close(mapped_w)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    os.close(mapped_w)
    return pid


def _unshare_error(answer: str) -> SandboxError:
    if answer.startswith("E"):
        errno_text, _, reason = answer[1:].partition(" ")
        if errno_text in ("1", "28", "22"):  # EPERM, ENOSPC (max_user_namespaces), EINVAL
            return SandboxError(f"cannot create a user namespace: {reason}",
                                hint=USERNS_REMEDY)
        return SandboxError(f"cannot create namespaces: {reason}")
    return SandboxError("the sandbox process died while entering its namespaces")


def flush_std_streams() -> None:
    """Flush Python's stdout and stderr before a fork, so nothing is written twice.
    Either may be None: `rootless run ... >&-` starts us with that descriptor closed."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


def run_in_userns(fn: Callable[[], int | None], mapping: IdMapping | None = None,
                  flags: int = libc.CLONE_NEWNS) -> int:
    """Run FN in a forked child that is root in new user + mount namespaces.

    Returns the child's exit code: FN's return value (None = 0), 1 if it raised
    (the traceback goes to stderr), 128+N if signal N killed it.
    """
    mapping = mapping or IdMapping.detect()
    flush_std_streams()
    pid = fork_into_userns(mapping, flags)
    if pid == 0:
        code = 1
        try:
            if flags & libc.CLONE_NEWNS:
                libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
            code = fn() or 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            flush_std_streams()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) \
        else 128 + os.WTERMSIG(status)


def call_in_userns(mapping: IdMapping, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a forked child that is root of a new user + mount namespace
    (mounts it makes vanish with it); its result or exception comes back pickled,
    so a ``RootlessError`` raised inside is raised here with its location intact."""
    import pickle

    out_r, out_w = os.pipe()
    flush_std_streams()
    pid = fork_into_userns(mapping, libc.CLONE_NEWNS)
    if pid == 0:
        os.close(out_r)
        code = 0
        try:
            libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
            payload = pickle.dumps((True, fn()))
        except BaseException as exc:
            code = 1
            error = exc if isinstance(exc, RootlessError) else SandboxError(
                f"{type(exc).__name__}: {exc}")
            try:
                # Class, args and attributes: unpickling would call __init__ with args
                # alone, which our errors with a location do not accept.
                payload = pickle.dumps((False, (type(error), error.args, vars(error))))
            except Exception:
                fallback = SandboxError(repr(exc))
                payload = pickle.dumps((False, (SandboxError, fallback.args, vars(fallback))))
        try:
            with os.fdopen(out_w, "wb") as out:
                out.write(payload)
        finally:
            os._exit(code)
    os.close(out_w)
    with os.fdopen(out_r, "rb") as f:
        payload = f.read()
    _, status = os.waitpid(pid, 0)
    if not payload:
        raise SandboxError(f"the namespace helper process died (wait status {status})")
    ok, value = pickle.loads(payload)
    if not ok:
        cls, args, attrs = value
        error = cls.__new__(cls)
        Exception.__init__(error, *args)
        error.__dict__.update(attrs)
        raise error
    return value
