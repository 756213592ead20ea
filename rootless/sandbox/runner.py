"""``Sandbox``: start a ProcessSpec in fresh namespaces and wait for it.

Process tree (host view)::

    caller (rootless run / build)          forwards signals, relays the TTY
      └─ keeper: new user, mount, UTS, IPC (+net) namespaces; mapped root;
         │       mounts the rootfs, then unshares the PID namespace
         ├─ FUSE server (fuse driver): the keeper's child, in the host's PID namespace
         └─ init: PID 1 — reaps, forwards signals
              └─ command: own mount namespace, pivot_root, user, exec

The keeper mounts the root filesystem before the new PID namespace takes
effect, so a server that mount forks is none of the container's processes:
its ``ps`` does not list it and its ``kill -9 -1`` cannot take the file system
away.  The keeper shares its mount namespace with init, so the mount is the
container's; it unmounts it once init has exited (every container process
is gone by then).  Each process dies with its parent (PDEATHSIG), and killing
PID 1 empties the PID namespace, so a SIGKILLed caller leaves neither
processes nor mounts.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from rootless.errors import SandboxError
from rootless.sandbox import libc
from rootless.sandbox.process import (
    FORWARDED_SIGNALS,
    Stdio,
    exit_code,
    init_main,
    report_failure,
)
from rootless.sandbox.spec import ProcessSpec, Rootfs, RootfsSetup
from rootless.sandbox.userns import IdMapping, flush_std_streams, fork_into_userns


class ExecError(SandboxError):
    """The command could not be executed: 126 (cannot run) or 127 (not found)."""

    def __init__(self, message: str, *, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


def status_error(lines: list[str]) -> SandboxError | None:
    """The exception for the first ``err CODE\tMESSAGE\tHINT`` status line, if any."""
    for line in lines:
        if line.startswith("err "):
            code_text, _, rest = line[4:].partition("\t")
            message, _, hint = rest.partition("\t")
            code = int(code_text)
            if code in (126, 127):
                return ExecError(message, exit_code=code, hint=hint or None)
            return SandboxError(message, hint=hint or None)
    return None


@dataclass
class SandboxProcess:
    """A started container: the keeper's pid (our child) and PID 1's host pid."""

    keeper_pid: int
    init_pid: int
    pty_master: int | None = None
    _status: int | None = field(default=None, repr=False)

    def signal(self, signum: int) -> None:
        try:
            os.kill(self.init_pid, signum)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        """The command's exit status (128+N when killed by signal N)."""
        if self._status is None:
            while True:
                try:
                    _, status = os.waitpid(self.keeper_pid, 0)
                    break
                except ChildProcessError:
                    status = 125 << 8
                    break
            self._status = exit_code(status)
        return self._status

    def relay_and_wait(self, spec: ProcessSpec) -> int:
        """Relay the terminal (with ``-t``) until the command ends; its exit status."""
        if self.pty_master is not None:
            from rootless.sandbox.tty import relay

            relay(self, spec.stdin, spec.stdout if spec.stdout is not None else 1)
        return self.wait()


def mount_root(rootfs: str | RootfsSetup) -> Rootfs:
    """The container's root filesystem, mounted in this (new) mount namespace."""
    libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
    return Rootfs(rootfs) if isinstance(rootfs, str) else rootfs()


class Sandbox:
    """Runs processes in a container whose root filesystem is ROOTFS.

    ROOTFS is a directory (used in place: writes go to it) or a callable run
    inside the new namespaces, as mapped root, that mounts and returns the root
    (see ``spec.RootfsSetup``).  ``fake_ownership`` (default: in single-ID
    mode) installs the seccomp filter of ``seccomp.py``.
    """

    def __init__(self, rootfs: str | os.PathLike[str] | RootfsSetup,
                 mapping: IdMapping | None = None, fake_ownership: bool | None = None,
                 count_faked: bool = False) -> None:
        self.rootfs: str | RootfsSetup = rootfs if callable(rootfs) else os.fspath(rootfs)
        self.mapping = mapping or IdMapping.detect()
        self.fake_ownership = (self.mapping.mode == "single" if fake_ownership is None
                               else fake_ownership)
        # Count the calls the filter faked and print them on stderr at exit (--debug).
        self.count_faked = count_faked

    def start(self, spec: ProcessSpec) -> SandboxProcess:
        """Start SPEC; return once the command was exec'd (or raise why not).

        Raises ExecError (exit_code 126/127) when the command cannot be run,
        SandboxError for any other failure to set the container up.
        """
        console_parent = console_child = None
        null_fd = os.open(os.devnull, os.O_RDONLY) if spec.stdin is None and not spec.tty \
            else None
        stdin = spec.stdin if spec.stdin is not None else null_fd
        stdio = Stdio(stdin if stdin is not None else 0,
                      spec.stdout if spec.stdout is not None else 1,
                      spec.stderr if spec.stderr is not None else 2)
        if spec.tty:
            import socket  # only -t needs it (`rootless run` start-up latency counts)

            console_parent, console_child = socket.socketpair()
            from rootless.sandbox.tty import window_size

            stdio = Stdio(0, 1, 2, console_child.fileno(),
                          window_size(spec.stdin if spec.stdin is not None else 0))
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        # No CLONE_NEWPID yet: the keeper unshares it after mounting the rootfs.
        flags = (libc.CLONE_NEWNS | libc.CLONE_NEWUTS | libc.CLONE_NEWIPC
                 | (libc.CLONE_NEWNET if spec.network == "none" else 0))
        flush_std_streams()
        try:
            keeper = fork_into_userns(self.mapping, flags)
            if keeper == 0:
                os.close(status_r)
                self._keeper_main(spec, stdio, status_w)
        finally:
            for fd in (null_fd, status_w):
                if fd is not None:
                    os.close(fd)
            if console_child is not None:
                console_child.close()
        with os.fdopen(status_r, "rb") as status_file:
            lines = status_file.read().decode(errors="replace").splitlines()
        init_pid = 0
        for line in lines:
            if line.startswith("pid "):
                init_pid = int(line[4:])
        process = SandboxProcess(keeper, init_pid)
        error = status_error(lines)
        if error is None and console_parent is not None:
            import socket

            _, fds, _, _ = socket.recv_fds(console_parent, 16, 1)
            process.pty_master = fds[0] if fds else None
            if process.pty_master is None:
                error = SandboxError("the container did not send its terminal")
        if console_parent is not None:
            console_parent.close()
        if error is not None:
            process.wait()
            if process.pty_master is not None:
                os.close(process.pty_master)
            raise error
        if init_pid == 0:
            process.wait()
            raise SandboxError("the container's init process died during setup")
        return process

    def _keeper_main(self, spec: ProcessSpec, stdio: Stdio,
                     status_w: int) -> None:
        code = 125
        root: Rootfs | None = None
        try:
            try:
                root = mount_root(self.rootfs)
                # From here on our children are in the container's PID namespace
                # (the first is its PID 1); what the mount forked stays outside.
                libc.unshare(libc.CLONE_NEWPID)
                init = os.fork()
            except BaseException as exc:
                report_failure(status_w, exc)
                return  # exits with 125 below
            if init == 0:
                init_main(spec, root.path, self.mapping.mode == "full",
                          self.fake_ownership, stdio, status_w, self.count_faked)
            os.write(status_w, f"pid {init}\n".encode())
            os.close(status_w)
            for signum in FORWARDED_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)  # the caller forwards to init
            _, status = os.waitpid(init, 0)
            code = exit_code(status)
        finally:
            if root is not None and root.release is not None:
                try:
                    root.release()
                except BaseException as exc:  # the command's status matters more
                    print(f"rootless: releasing the root filesystem: {exc}", file=sys.stderr)
            flush_std_streams()
            os._exit(code)

    def run(self, spec: ProcessSpec,
            on_start: Callable[[SandboxProcess], None] | None = None) -> int:
        """Run SPEC to completion; forward SIGINT/SIGTERM/SIGHUP; return its status.

        ON_START is called once the command runs (e.g. to record its PID).
        """
        received: list[int] = []
        process: SandboxProcess | None = None

        def forward(signum: int, _frame: FrameType | None) -> None:
            if process is not None:
                process.signal(signum)
            else:
                received.append(signum)

        previous = {s: signal.signal(s, forward)
                    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            process = self.start(spec)
            for signum in received:
                process.signal(signum)
            if on_start is not None:
                on_start(process)
            return process.relay_and_wait(spec)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
