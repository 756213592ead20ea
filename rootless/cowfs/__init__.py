"""The copy-on-write root filesystem: image layers stacked under one writable upper.

Three drivers share one on-disk format (see ``rootless.oci.layer``):

``overlay``  kernel overlayfs, mounted with ``-o userxattr`` in a user namespace;
``fuse``     our union filesystem on fuse-python, served by a forked child;
``vfs``      plain copies: the union is copied into the target and compared on unmount.

Usage, from inside the sandbox's user + mount namespace (mapped root)::

    choice = select_driver(opts.storage_driver)          # .name, .reason
    with mount_rootfs(lowers, upper, work, target, choice.name) as handle:
        ...                                               # run the step in target
        changed = handle.changes()
    diff(upper, out, paths=changed.paths() if changed else None)

``lowers`` are given base layer FIRST, topmost LAST: the order of a manifest's
``layers`` array.
"""

from __future__ import annotations

from rootless.cowfs.driver import (
    Changes,
    DriverChoice,
    MountHandle,
    driver_report,
    mount_rootfs,
    probe,
    select_driver,
)

__all__ = [
    "Changes",
    "DriverChoice",
    "MountHandle",
    "driver_report",
    "mount_rootfs",
    "probe",
    "select_driver",
]
