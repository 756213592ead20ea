"""Driver selection and the mount handle every driver returns."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from rootless.errors import CowfsError

DRIVERS = ("overlay", "fuse", "vfs")


@dataclass(frozen=True, slots=True)
class DriverChoice:
    name: str      # "overlay" | "fuse" | "vfs"
    reason: str    # one line for `rootless info`


@dataclass(frozen=True, slots=True)
class Changes:
    """Paths (relative to the root, no leading slash) a mount saw change."""

    created: frozenset[str]
    modified: frozenset[str]
    deleted: frozenset[str]

    def paths(self) -> list[str]:
        return sorted(self.created | self.modified | self.deleted)


class MountHandle:
    """A mounted root filesystem; ``unmount()`` (or leaving the ``with``) takes it down."""

    driver = "none"

    def __init__(self, target: Path, upper: Path) -> None:
        self.target = target
        self.upper = upper
        self.mounted = True

    def unmount(self) -> None:
        raise NotImplementedError

    def changes(self) -> Changes | None:
        """What changed since mounting; None where the driver does not track it."""
        return None

    def __enter__(self) -> MountHandle:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.unmount()


def mount_rootfs(lowers: list[Path], upper: Path, work: Path, target: Path,
                 driver: str = "auto") -> MountHandle:
    """Mount LOWERS (base first, topmost LAST) + UPPER at TARGET with DRIVER.

    ``overlay`` and ``fuse`` must be called inside a user + mount namespace
    where the caller is (mapped) root; ``vfs`` works anywhere. WORK is a
    scratch directory on the same filesystem as UPPER.
    """
    name = select_driver(driver, upper.parent).name if driver == "auto" else driver
    if name in ("overlay", "fuse") and os.geteuid() != 0:
        # Outside a user namespace mounting would need the setuid fusermount.
        raise CowfsError(f"the {name} driver mounts only inside rootless's user namespace",
                         hint="this is a bug in rootless: mount_rootfs was called outside "
                              "the sandbox")
    for path in (upper, work, target):
        path.mkdir(parents=True, exist_ok=True)
    if name == "overlay":
        from rootless.cowfs.overlay import mount_overlay
        return mount_overlay(lowers, upper, work, target)
    if name == "fuse":
        from rootless.cowfs.fuse import mount_fuse
        return mount_fuse(lowers, upper, work, target)
    if name == "vfs":
        from rootless.cowfs.vfs import mount_vfs
        return mount_vfs(lowers, upper, work, target)
    raise CowfsError(f"unknown storage driver {driver!r}",
                     hint="use one of auto, overlay, fuse, vfs")


_probed: dict[tuple[str, int], str | None] = {}


def unavailable(name: str, where: Path | None = None) -> str | None:
    """Why driver NAME cannot work here (None: it works).

    Cached in memory and, for the costly overlayfs probe (a namespace and a
    mount), in $XDG_RUNTIME_DIR: that lives until reboot, as the kernel does.
    """
    import tempfile

    base = where if where is not None and where.exists() else Path(tempfile.gettempdir())
    key = (name, os.stat(base).st_dev)
    if key not in _probed:
        _probed[key] = _cached_check(name, base, key[1])
    return _probed[key]


def _probe_cache() -> Path | None:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "rootless" / "cowfs-probe.json" if runtime else None


def _cached_check(name: str, base: Path, device: int) -> str | None:
    if name != "overlay":
        return _check(name, base)
    import json

    cache = _probe_cache()
    key = f"{os.uname().release}:{device}:{name}"
    known: dict[str, str | None] = {}
    if cache is not None:
        with contextlib.suppress(OSError, ValueError):
            known = json.loads(cache.read_text())
        if isinstance(known, dict) and key in known:
            return known[key]
    result = _check(name, base)
    if cache is not None:
        with contextlib.suppress(OSError):
            cache.parent.mkdir(parents=True, exist_ok=True)
            from rootless.fsutil import atomic_write
            atomic_write(cache, json.dumps({**known, key: result}).encode())
    return result


def _check(name: str, base: Path) -> str | None:
    if name == "vfs":
        return None
    if name == "fuse":
        return _fuse_unavailable()
    if name == "overlay":
        from rootless.cowfs.overlay import overlay_unavailable
        return overlay_unavailable(base)
    return f"unknown driver {name!r}"


def _fuse_unavailable() -> str | None:
    try:
        fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return "/dev/fuse is missing"
    except OSError as exc:
        return f"/dev/fuse cannot be opened: {exc.strerror}"
    os.close(fd)
    return None


def select_driver(requested: str = "auto", where: Path | None = None) -> DriverChoice:
    """The driver to use for REQUESTED (``auto|overlay|fuse|vfs``) and why.

    WHERE is a directory on the filesystem that will hold the layers (the
    store root); whether overlayfs accepts user xattrs depends on it.
    """
    if requested in DRIVERS:
        why = unavailable(requested, where)
        if why is not None:
            raise CowfsError(f"storage driver {requested} is not usable here: {why}",
                             hint="use --storage-driver auto to pick one that works")
        return DriverChoice(requested, f"requested ({_what(requested)})")
    if requested != "auto":
        raise CowfsError(f"unknown storage driver {requested!r}",
                         hint="use one of auto, overlay, fuse, vfs")
    reasons: list[str] = []
    for name in DRIVERS:
        why = unavailable(name, where)
        if why is None:
            prefix = "; ".join(reasons)
            return DriverChoice(name, f"{_what(name)}" + (f" (not {prefix})" if prefix else ""))
        reasons.append(f"{name}: {why}")
    raise CowfsError("no storage driver works here")  # vfs always works


def _what(name: str) -> str:
    return {"overlay": "kernel overlayfs in a user namespace",
            "fuse": "FUSE union filesystem (in Python, over /dev/fuse)",
            "vfs": "plain copies"}[name]


def probe(where: Path | None = None) -> DriverChoice:
    """What ``auto`` picks here, and why (for ``rootless info``)."""
    return select_driver("auto", where)


def driver_report(where: Path | None = None) -> dict[str, str]:
    """Each driver → "ok" or why it cannot work (for ``rootless info``)."""
    return {name: unavailable(name, where) or "ok" for name in DRIVERS}


def clear_directory(path: Path) -> None:
    """Empty PATH, keeping it (a mount point must survive its mount)."""
    from rootless.fsutil import force_rmtree

    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                force_rmtree(Path(entry.path))
            else:
                os.unlink(entry.path)

