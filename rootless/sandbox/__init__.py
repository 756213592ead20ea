"""Containers as an ordinary user: namespaces, ID mapping, a clean root, PID 1.

The one API shared by ``rootless run`` and a build's RUN steps::

    from rootless.sandbox import Sandbox, ProcessSpec, MountSpec, IdMapping, Rootfs

    spec = ProcessSpec(argv=("sh", "-c", "make"), env={"PATH": "..."}, cwd="/src",
                       user="1000:1000", stdout=fd, stderr=fd, network="none",
                       hostname="build", mounts=(MountSpec("/host/cache", "/root/.cache"),
                                                 MountSpec("", "/tmp", kind="tmpfs")))
    status = Sandbox(rootfs, mapping=IdMapping.detect()).run(spec)

``rootfs`` is a directory used in place, or a ``RootfsSetup``: a callable run
inside the new user + mount namespaces (as mapped root, before the container's
PID namespace exists, so a FUSE server it forks is none of the container's
processes) returning a ``Rootfs(path, release)``, e.g. a cowfs mount over
read-only lowers with a fresh upper.  ``run`` returns the command's exit
status (128+N if signal N killed it); it raises ``ExecError`` (``.exit_code``
126 or 127, with an ELF diagnosis where one applies) when the command cannot
be executed, and ``SandboxError`` when the container cannot be set up.
``Sandbox.start`` returns a ``SandboxProcess`` (``.init_pid``, ``.signal()``,
``.wait()``) for callers that do not block (``run -d``).

Inside: user, mount, PID, UTS, IPC namespaces (network: host's, or a private
one with loopback up), ``pivot_root`` into the rootfs, fresh /proc, a tmpfs
/dev with the host's null, zero, full, random, urandom and tty bound in,
devpts, /dev/shm, read-only /sys, generated /etc/hosts, /etc/hostname and
/etc/resolv.conf bound over the image's files (created empty in the writable
layer when the image lacks them).  No mknod, no ptrace.

Modules: ``libc`` (ctypes system calls), ``userns`` (ID mapping, the
namespace fork, ``run_in_userns`` for other areas), ``seccomp`` (single-ID
mode's ownership faking), ``mounts`` (the mount tree), ``users`` (USER
resolution), ``process`` (PID 1 and the exec), ``runner`` (``Sandbox``),
``tty`` (``-t`` relay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Imported on first use, so that importing one submodule (e.g. ``spec`` for its
# dataclasses) does not load them all: `rootless run` start-up latency counts.
if TYPE_CHECKING:
    from rootless.sandbox.runner import ExecError, Sandbox, SandboxProcess
    from rootless.sandbox.spec import MountSpec, ProcessSpec, Rootfs, RootfsSetup
    from rootless.sandbox.userns import IdMapping, run_in_userns

__all__ = [
    "ExecError",
    "IdMapping",
    "MountSpec",
    "ProcessSpec",
    "Rootfs",
    "RootfsSetup",
    "Sandbox",
    "SandboxProcess",
    "run_in_userns",
]

_HOMES = {"ExecError": "runner", "Sandbox": "runner", "SandboxProcess": "runner",
          "MountSpec": "spec", "ProcessSpec": "spec", "Rootfs": "spec", "RootfsSetup": "spec",
          "IdMapping": "userns", "run_in_userns": "userns"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
