"""The ``fuse`` driver: ``Union`` served over the kernel's FUSE protocol by a forked child.

The owner (root of the sandbox's user namespace) opens /dev/fuse and mounts
it with mount(2) itself: no libfuse, no setuid ``fusermount``. A forked child
serves the connection (``fuse_ops.CowFs`` on ``fuse_kernel.Session``) and dies
with its owner (PR_SET_PDEATHSIG); when it is gone the kernel aborts the
connection and every access fails with ENOTCONN instead of hanging.

``ROOTLESS_FUSE_DEBUG=1`` prints every request on the server's stderr;
``ROOTLESS_FUSE_PROFILE=FILE`` writes a cProfile of the server to FILE.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import select
import signal
import sys
import time
from pathlib import Path

from rootless.cowfs import fuse_kernel as k
from rootless.cowfs.driver import Changes, MountHandle
from rootless.cowfs.fuse_ops import CHANGES_FILE, CHANGES_XATTR, CowFs
from rootless.cowfs.union import Union
from rootless.errors import CowfsError
from rootless.sandbox import libc

_READY_TIMEOUT = 20.0


# -- the server process and its handle -----------------------------------------------------


def _server(device: int, lowers: list[Path], upper: Path, work: Path, ready_w: int) -> None:
    libc.set_pdeathsig(signal.SIGKILL)
    # One descriptor per file the container holds open: allow as many as the host does.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    union = Union(list(reversed(lowers)), upper)
    server = CowFs(device, union, ready_w, work / CHANGES_FILE)
    if os.environ.get("ROOTLESS_FUSE_DEBUG"):
        _trace(server)
    profile = os.environ.get("ROOTLESS_FUSE_PROFILE")
    if profile:  # a developer's view of where server time goes
        import cProfile
        cProfile.runctx("server.serve()", globals(), {"server": server}, profile)
    else:
        server.serve()


def _trace(server: CowFs) -> None:
    def traced(opcode: int, handler: k.Handler) -> k.Handler:
        def call(node: int, payload: memoryview) -> k.Reply:
            try:
                reply = handler(node, payload)
            except OSError as exc:
                print(f"fuse op {opcode} node {node}: {exc}", file=sys.stderr, flush=True)
                raise
            print(f"fuse op {opcode} node {node}: ok", file=sys.stderr, flush=True)
            return reply
        return call

    for opcode, handler in list(server.handlers.items()):
        server.handlers[opcode] = traced(opcode, handler)


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


def _detach(keep: tuple[int, ...]) -> None:
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
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


def mount_fuse(lowers: list[Path], upper: Path, work: Path, target: Path) -> FuseHandle:
    try:
        device = k.open_device()
    except OSError as exc:
        raise CowfsError(f"cannot open /dev/fuse: {exc.strerror}",
                         hint="try --storage-driver overlay or vfs") from exc
    try:
        k.mount(device, str(target), "rootless", "cowfs")
    except OSError as exc:
        os.close(device)
        raise CowfsError(f"cannot mount the FUSE filesystem at {target}: {exc.strerror}",
                         hint="try --storage-driver overlay or vfs") from exc
    ready_r, ready_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_r)
            _detach((device, ready_w))
            _server(device, lowers, upper, work, ready_w)
            code = 0
        except BaseException as exc:  # the parent reports it: it sees no "ready"
            with contextlib.suppress(Exception):
                print(f"rootless cowfs server: {exc}", file=sys.stderr)
        finally:
            os._exit(code)
    # Only the server may hold the connection: when it dies, the kernel aborts it.
    os.close(device)
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
        with contextlib.suppress(OSError):
            libc.umount2(str(target), libc.MNT_DETACH)
        raise CowfsError(f"the FUSE filesystem did not mount at {target}",
                         hint="is /dev/fuse usable? try --storage-driver overlay or vfs")
    return FuseHandle(target, upper, work, pid)
