"""``rootless exec``: one more process inside a running container's namespaces.

The container's command (the first child of its init that we may inspect)
holds the namespaces and the root to join: user first (which gives us every
capability inside it), then mount, UTS, IPC, network and PID, then a chroot
to its root through ``/proc/PID/root``.  A fork then lands in the PID
namespace and execs like the container's command did.
"""

from __future__ import annotations

import os
import signal
import socket

from rootless.errors import ContainerError
from rootless.sandbox import libc
from rootless.sandbox.process import (
    FORWARDED_SIGNALS,
    Stdio,
    become_and_exec,
    diagnose_report,
    exit_code,
    import_optional_parts,
    install_forwarding,
)
from rootless.sandbox.runner import SandboxProcess, status_error
from rootless.sandbox.spec import ProcessSpec

NAMESPACES = ("user", "mnt", "uts", "ipc", "net", "pid")


def command_pid(init_pid: int) -> int:
    """The host PID of the container's command (child of INIT_PID we may inspect)."""
    try:
        with open(f"/proc/{init_pid}/task/{init_pid}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        children = []
    for pid in children:
        try:
            os.readlink(f"/proc/{pid}/ns/mnt")
            return pid
        except OSError:
            continue  # not ours to inspect
    raise ContainerError("the container's main process is gone")


def _single_mapping(pid: int) -> bool:
    with open(f"/proc/{pid}/uid_map") as f:
        return len(f.read().strip().splitlines()) == 1


def exec_in(init_pid: int, spec: ProcessSpec) -> int:
    """Run SPEC in the container whose init is INIT_PID; return its exit status."""
    target = command_pid(init_pid)
    fake_ownership = _single_mapping(target)
    ns_fds = {}
    for name in NAMESPACES:
        if os.readlink(f"/proc/{target}/ns/{name}") != os.readlink(f"/proc/self/ns/{name}"):
            ns_fds[name] = os.open(f"/proc/{target}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    # O_PATH: a FUSE root (mounted with allow_other inside the container's user
    # namespace) refuses to be opened from outside it; the fchdir below happens
    # after joining that namespace, where the permission check passes.
    root_fd = os.open(f"/proc/{target}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    console_parent = console_child = None
    stdin = spec.stdin if spec.stdin is not None else os.open(os.devnull, os.O_RDONLY)
    stdio = Stdio(stdin, spec.stdout if spec.stdout is not None else 1,
                  spec.stderr if spec.stderr is not None else 2)
    if spec.tty:
        from rootless.sandbox.tty import window_size

        console_parent, console_child = socket.socketpair()
        stdio = Stdio(0, 1, 2, console_child.fileno(), window_size(stdin))
    import_optional_parts(stdio, fake_ownership)  # before the chroot below
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    joiner = os.fork()
    if joiner == 0:
        code = 125
        try:
            os.close(status_r)
            libc.set_pdeathsig(signal.SIGKILL)
            for fd in ns_fds.values():
                libc.setns(fd)
            os.fchdir(root_fd)
            os.chroot(".")
            os.chdir("/")
            signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
            child = os.fork()
            if child == 0:
                libc.set_pdeathsig(signal.SIGKILL)
                become_and_exec(spec, not fake_ownership, fake_ownership, stdio, status_w)
            os.close(status_w)
            install_forwarding(child)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
            _, status = os.waitpid(child, 0)
            code = exit_code(status)
        except OSError as exc:
            os.write(status_w, f"err 125\tentering the container: {exc}\t\n".encode())
        finally:
            os._exit(code)
    for fd in (*ns_fds.values(), root_fd, status_w):
        os.close(fd)
    if console_child is not None:
        console_child.close()
    with os.fdopen(status_r, "rb") as f:
        text = f.read().decode(errors="replace")
    process = SandboxProcess(joiner, joiner)
    error = status_error(diagnose_report(text, f"/proc/{target}/root").splitlines())
    if error is None and console_parent is not None:
        _, fds, _, _ = socket.recv_fds(console_parent, 16, 1)
        process.pty_master = fds[0] if fds else None
    if console_parent is not None:
        console_parent.close()
    if error is not None:
        process.wait()
        raise error
    previous = {s: signal.signal(s, lambda signum, _f: process.signal(signum))
                for s in FORWARDED_SIGNALS[:3]}
    try:
        return process.relay_and_wait(spec)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
