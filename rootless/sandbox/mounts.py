"""The container's mount tree, built inside its mount namespace, then pivot_root.

Everything here runs as mapped root in the sandbox's private mount namespace,
so nothing it mounts is visible on the host and all of it vanishes with the
namespace.  Device nodes are bind mounts of the host's (never mknod).
"""

from __future__ import annotations

import os

from rootless.sandbox import libc
from rootless.sandbox.spec import MountSpec, ProcessSpec

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_NOSUID_NODEV = libc.MS_NOSUID | libc.MS_NODEV


def resolve_in_root(root: str, path: str) -> str:
    """The host path of container PATH, following symlinks as if ROOT were /.

    A hostile image cannot make a mount target escape the root with
    ``/data -> /etc`` or ``../../``.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _ensure_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)


def _ensure_file(path: str) -> None:
    if not os.path.lexists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


def _mount_dev(rootfs: str, full_mapping: bool) -> None:
    dev = resolve_in_root(rootfs, "/dev")
    _ensure_dir(dev)
    libc.mount("tmpfs", dev, "tmpfs", libc.MS_NOSUID | libc.MS_NOEXEC, "mode=755,size=65536k")
    for name in DEVICES:
        target = os.path.join(dev, name)
        _ensure_file(target)
        libc.mount(f"/dev/{name}", target, None, libc.MS_BIND)
    for sub in ("pts", "shm"):
        os.mkdir(os.path.join(dev, sub))
    pts_options = "newinstance,ptmxmode=0666,mode=0620" + (",gid=5" if full_mapping else "")
    libc.mount("devpts", os.path.join(dev, "pts"), "devpts",
               libc.MS_NOSUID | libc.MS_NOEXEC, pts_options)
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    libc.mount("shm", os.path.join(dev, "shm"), "tmpfs", _NOSUID_NODEV | libc.MS_NOEXEC,
               "mode=1777,size=65536k")
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{number}", os.path.join(dev, name))


def _mount_sys(rootfs: str, own_netns: bool) -> None:
    target = resolve_in_root(rootfs, "/sys")
    _ensure_dir(target)
    if own_netns:
        try:
            libc.mount("sysfs", target, "sysfs",
                       _NOSUID_NODEV | libc.MS_NOEXEC | libc.MS_RDONLY)
            return
        except OSError:
            pass  # fall back to the host's, read-only
    libc.mount("/sys", target, None, libc.MS_BIND | libc.MS_REC)
    libc.make_readonly(target, recursive=True)


def _etc_contents(spec: ProcessSpec) -> dict[str, str]:
    if spec.hostname:
        hostname = spec.hostname
    else:
        import socket

        hostname = socket.gethostname()
    hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    resolv = ""
    if spec.network == "host":
        for name in ("/etc/hosts", "/etc/resolv.conf"):
            try:
                with open(name) as f:
                    text = f.read()
            except OSError:
                text = ""
            if name == "/etc/hosts" and text:
                hosts = text if text.endswith("\n") else text + "\n"
            elif name == "/etc/resolv.conf":
                resolv = text
    hosts += f"127.0.1.1\t{hostname}\n"
    return {"hosts": hosts, "hostname": hostname + "\n", "resolv.conf": resolv}


def _bind_etc_files(rootfs: str, spec: ProcessSpec) -> None:
    """Bind generated files over the image's, leaving the image untouched."""
    etc = resolve_in_root(rootfs, "/etc")
    if not os.path.isdir(etc):
        return
    # The sources live on the container's /dev tmpfs just long enough to be bound.
    staging = os.path.join(resolve_in_root(rootfs, "/dev"), ".rootless-etc")
    os.mkdir(staging, 0o755)
    for name, text in _etc_contents(spec).items():
        source = os.path.join(staging, name)
        with open(source, "w") as f:
            f.write(text)
        target = resolve_in_root(rootfs, f"/etc/{name}")
        if not target.startswith(etc + "/") or os.path.isdir(target):
            continue
        try:
            _ensure_file(target)
        except OSError:
            continue  # read-only image directory: keep the image's file
        libc.mount(source, target, None, libc.MS_BIND)
        os.unlink(source)
    os.rmdir(staging)


def _mount_user(rootfs: str, mount: MountSpec) -> None:
    target = resolve_in_root(rootfs, mount.target)
    if mount.kind == "tmpfs":
        _ensure_dir(target)
        libc.mount("tmpfs", target, "tmpfs", _NOSUID_NODEV,
                   mount.options or "mode=1777")
    else:
        if os.path.isdir(mount.source):
            _ensure_dir(target)
        else:
            _ensure_file(target)
        libc.mount(mount.source, target, None, libc.MS_BIND | libc.MS_REC)
    if mount.readonly:
        libc.make_readonly(target, recursive=True)


def loopback_up() -> None:
    """Bring ``lo`` up in this (new) network namespace: SIOCSIFFLAGS, IFF_UP."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, siocgifflags, ifreq))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def enter_rootfs(rootfs: str, spec: ProcessSpec, full_mapping: bool) -> None:
    """Mount /proc, /dev, /sys, /etc files and SPEC's mounts under ROOTFS, pivot into it.

    Call in the new mount + PID namespaces (so /proc shows the container's
    processes).  Afterwards ``/`` is ROOTFS and no host path is reachable.
    """
    libc.mount(rootfs, rootfs, None, libc.MS_BIND | libc.MS_REC)
    proc = resolve_in_root(rootfs, "/proc")
    _ensure_dir(proc)
    libc.mount("proc", proc, "proc", _NOSUID_NODEV | libc.MS_NOEXEC)
    _mount_dev(rootfs, full_mapping)
    _mount_sys(rootfs, spec.network == "none")
    if spec.etc_files:
        _bind_etc_files(rootfs, spec)
    for mount in spec.mounts:
        _mount_user(rootfs, mount)
    if spec.readonly_rootfs:
        libc.make_readonly(rootfs, recursive=False)
    os.chdir(rootfs)
    libc.pivot_root(".", ".")
    libc.umount2(".", libc.MNT_DETACH)
    os.chdir("/")
