"""The copy-on-write root filesystem: image layers stacked under one writable upper.

Three drivers share one on-disk format (see ``rootless.oci.layer``):

``overlay``  kernel overlayfs, mounted with ``-o userxattr`` in a user namespace;
``fuse``     our union filesystem, served over /dev/fuse by a forked child;
``vfs``      plain copies: the union is copied into the target and compared on unmount.

Usage, from inside the sandbox's user + mount namespace (mapped root)::

    choice = select_driver(opts.storage_driver)          # .name, .reason
    with mount_rootfs(lowers, upper, work, target, choice.name) as handle:
        ...                                               # run the step in target
        changed = handle.changes()
    diff(upper, out, paths=changed.paths() if changed else None)

``lowers`` are given base layer FIRST, topmost LAST: the order of a manifest's
``layers`` array. ``ensure_unpacked(store, layers)`` gives those directories,
extracting layers from their blobs on first use.

``changes()`` is live for ``fuse`` and ``overlay`` (the upper is read back) and
known after ``unmount()`` for ``vfs``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Imported on first use: `rootless run --rm` mounts overlayfs through
# rootless.cowfs.overlay alone, and every module counts for its start-up latency.
if TYPE_CHECKING:
    from rootless.cowfs.driver import (
        Changes,
        DriverChoice,
        MountHandle,
        driver_report,
        mount_rootfs,
        probe,
        select_driver,
    )
    from rootless.cowfs.layers import ensure_unpacked, unpack_layer

__all__ = [
    "Changes",
    "DriverChoice",
    "MountHandle",
    "driver_report",
    "ensure_unpacked",
    "mount_rootfs",
    "probe",
    "select_driver",
    "unpack_layer",
]

_HOMES = {"ensure_unpacked": "layers", "unpack_layer": "layers"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f"{__name__}.{_HOMES.get(name, 'driver')}")
    return getattr(module, name)
