"""What to run in a sandbox: the process, its mounts, its root filesystem."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class MountSpec:
    """A mount added inside the container at TARGET (an absolute container path).

    ``bind``: SOURCE is a host file or directory (``RUN --mount=type=cache`` and
    ``type=secret`` are binds of directories/files the caller prepared);
    ``tmpfs``: SOURCE is ignored, OPTIONS are tmpfs options (e.g. ``size=64m``).
    A missing target is created in the container's writable layer.
    """

    source: str
    target: str
    readonly: bool = False
    kind: Literal["bind", "tmpfs"] = "bind"
    options: str = ""


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """The command to run and everything around it.

    ``argv[0]`` without a slash is looked up in the container's ``PATH`` (from
    ``env``; Docker's default PATH when absent).  ``user`` is Docker's
    ``-u`` syntax (``name``, ``uid``, ``name:group``, ``uid:gid``), resolved
    through the container's ``/etc/passwd`` and ``/etc/group`` with
    supplementary groups; HOME is set from passwd when ``env`` lacks it.
    ``cwd`` is created when missing, as Docker does for WorkingDir.
    ``stdin``/``stdout``/``stderr`` are host file descriptors (None: /dev/null
    for stdin, inherit for the others).  With ``tty`` the sandbox allocates a
    pseudo-terminal and relays it to those descriptors.
    ``network``: ``host`` shares the host's network namespace, ``none`` gives a
    private one with only loopback, up.  ``hostname`` None keeps the host's.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "/"
    user: str = "0:0"
    tty: bool = False
    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None
    network: Literal["host", "none"] = "host"
    hostname: str | None = None
    mounts: tuple[MountSpec, ...] = ()
    readonly_rootfs: bool = False
    etc_files: bool = True  # bind-mount generated /etc/hosts, /etc/hostname, /etc/resolv.conf


@dataclass(slots=True)
class Rootfs:
    """A root filesystem ready inside the sandbox's mount namespace.

    ``release`` runs (inside the namespace) after the container's last process
    exited, before the namespace disappears: e.g. unmount a FUSE filesystem so
    its daemon flushes the upper directory.
    """

    path: str
    release: Callable[[], None] | None = None


# Called inside the new user + mount namespace (as mapped root, still in the
# host's PID namespace: what it forks, e.g. a FUSE server, is not visible to the
# container) to mount the container's root filesystem.
RootfsSetup = Callable[[], Rootfs]
