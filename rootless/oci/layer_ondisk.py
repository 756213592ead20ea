"""The on-disk form of an unpacked layer (and of a container's upper directory).

It is the form kernel overlayfs reads in a user namespace, so every cowfs
driver shares it:

* a deleted path is a character device 0:0 (an unprivileged user may create
  one: the kernel exempts whiteouts from CAP_MKNOD since Linux 5.8);
* an opaque directory carries the xattr ``user.overlay.opaque=y``;
* what the user cannot set on disk (another owner, a device node, modes that
  would lock the owner out such as a ``0555`` directory) lives in
  ``user.rootless.override_stat = "UID:GID:0MODE[:KIND]"``, KIND being
  ``char-MAJ-MIN`` or ``block-MAJ-MIN`` (the node is stored as an empty file);
* a symlink's owner (symlinks hold no user xattrs) is recorded on its directory.

``presented`` turns all this back into what a container or a layer tar sees.
A tar spells whiteouts the OCI way (``WHITEOUT_PREFIX``, ``OPAQUE_NAME``);
``layer_extract`` and ``layer_diff`` convert, nothing else spells a whiteout.
This module is light (no tarfile): the mount drivers import it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

WHITEOUT_PREFIX = ".wh."
OPAQUE_NAME = ".wh..wh..opq"
OPAQUE_XATTR = "user.overlay.opaque"
OVERRIDE_XATTR = "user.rootless.override_stat"
# Xattrs an unprivileged user cannot set (security.capability, ...), kept under this prefix.
STASHED_XATTR_PREFIX = "user.rootless.xattr."
DEVICES_XATTR = "user.rootless.devices"  # on a directory: some entries are device records
LINK_OWNER_PREFIX = "user.rootless.link."  # on a directory: owners of its symlinks
# On a directory: some entry of it carries a record (override, device, link owner).
RECORDS_XATTR = "user.rootless.records"
# On an unpacked layer's root: every record in the tree flagged its directory, so a
# directory without RECORDS_XATTR holds plain files whose lstat says it all.
RECORDS_FLAGGED_XATTR = "user.rootless.records-flagged"
# Our own bookkeeping and kernel overlayfs's; never shown through a mount nor exported.
PRIVATE_XATTR_PREFIXES = ("user.rootless.", "user.overlay.", "trusted.overlay.")


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def make_whiteout(path: Path | str) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, 0)


def is_opaque(path: Path | str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def make_opaque(path: Path | str) -> None:
    os.setxattr(path, OPAQUE_XATTR, b"y", follow_symlinks=False)


def clear_opaque(path: Path | str) -> None:
    with contextlib.suppress(OSError):
        os.removexattr(path, OPAQUE_XATTR, follow_symlinks=False)


@dataclass(frozen=True, slots=True)
class Override:
    """Ownership, mode and node kind shown for a file instead of what the disk holds."""

    uid: int
    gid: int
    mode: int                 # permission bits (07777)
    kind: str | None = None   # "char-MAJ-MIN" / "block-MAJ-MIN" for device nodes

    def encode(self) -> bytes:
        text = f"{self.uid}:{self.gid}:0{self.mode & 0o7777:o}"
        return (text + (f":{self.kind}" if self.kind else "")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Override | None:
        parts = raw.decode(errors="replace").split(":")
        try:
            return cls(int(parts[0]), int(parts[1]), int(parts[2], 8),
                       parts[3] if len(parts) > 3 and parts[3] else None)
        except (ValueError, IndexError):
            return None

    def device(self) -> tuple[int, int, int] | None:
        """(S_IFCHR or S_IFBLK, major, minor) for a stored device node."""
        if not self.kind:
            return None
        what, _, numbers = self.kind.partition("-")
        major, _, minor = numbers.partition("-")
        fmt = {"char": stat.S_IFCHR, "block": stat.S_IFBLK}.get(what)
        if fmt is None or not major.isdigit() or not minor.isdigit():
            return None
        return fmt, int(major), int(minor)


def read_override(path: Path | str) -> Override | None:
    try:
        raw = os.getxattr(path, OVERRIDE_XATTR, follow_symlinks=False)
    except OSError:
        return None
    return Override.decode(raw)


def write_override(path: Path | str, override: Override) -> None:
    try:
        os.setxattr(path, OVERRIDE_XATTR, override.encode(), follow_symlinks=False)
    except PermissionError:
        if not os.path.islink(path):
            raise
        write_link_owner(path, (override.uid, override.gid))  # a symlink: owner only
        return
    _flag_records(os.path.dirname(os.fspath(path)) or ".")


def _flag_records(directory: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # a record on a layer's root itself
        os.setxattr(directory, RECORDS_XATTR, b"1", follow_symlinks=False)


def flag_records_kept(layer_root: Path | str) -> None:
    """Promise that every record under LAYER_ROOT flagged its directory."""
    os.setxattr(layer_root, RECORDS_FLAGGED_XATTR, b"1", follow_symlinks=False)


def records_flagged(layer_root: Path | str) -> bool:
    """Whether every record under LAYER_ROOT flagged its directory (see ``has_records``)."""
    try:
        return os.getxattr(layer_root, RECORDS_FLAGGED_XATTR, follow_symlinks=False) == b"1"
    except OSError:
        return False


def has_records(directory: Path | str) -> bool:
    """Whether some entry of DIRECTORY may carry a record. Meaningful only inside a layer
    whose records are flagged: elsewhere assume it does."""
    try:
        os.getxattr(directory, RECORDS_XATTR, follow_symlinks=False)
    except OSError:
        return False
    return True


def write_device_record(path: Path | str, override: Override) -> None:
    """Record a device node kept as an empty file, and flag its directory as holding
    one (so a directory listing knows which entries to look at twice)."""
    write_override(path, override)
    os.setxattr(os.path.dirname(os.fspath(path)) or ".", DEVICES_XATTR, b"1",
                follow_symlinks=False)


def has_device_records(directory: Path | str) -> bool:
    try:
        return os.getxattr(directory, DEVICES_XATTR, follow_symlinks=False) == b"1"
    except OSError:
        return False


def _link_key(name: str) -> str:
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
    return LINK_OWNER_PREFIX + digest


def read_link_owner(path: Path | str) -> tuple[int, int] | None:
    """The recorded owner of symlink PATH (symlinks hold no user xattrs: the record is
    on the directory, keyed by a hash of the name)."""
    head, name = os.path.split(os.fspath(path))
    try:
        raw = os.getxattr(head or ".", _link_key(name), follow_symlinks=False)
        uid, gid = raw.decode().split(":")
        return int(uid), int(gid)
    except (OSError, ValueError):
        return None


def write_link_owner(path: Path | str, owner: tuple[int, int] | None) -> None:
    """Record (or, with None or root, forget) the owner of symlink PATH."""
    head, name = os.path.split(os.fspath(path))
    key = _link_key(name)
    if owner is None or owner == (0, 0):
        with contextlib.suppress(OSError):
            os.removexattr(head or ".", key, follow_symlinks=False)
        return
    os.setxattr(head or ".", key, f"{owner[0]}:{owner[1]}".encode(), follow_symlinks=False)
    _flag_records(head or ".")


def owner_writable_mode(mode: int, is_dir: bool) -> int:
    """The mode kept on disk: the owner can always read, write (and enter) it."""
    return mode | (0o700 if is_dir else 0o600)


@dataclass(frozen=True, slots=True)
class Presented:
    """A file as a container or a layer tar sees it."""

    fmt: int          # stat.S_IFREG, S_IFDIR, ...
    uid: int
    gid: int
    mode: int         # permission bits
    rdev: int = 0


def presented(path: Path | str, st: os.stat_result) -> Presented:
    """Apply the override xattr (if any) to what lstat says."""
    fmt = stat.S_IFMT(st.st_mode)
    uid, gid = _namespace_id(st.st_uid, OWN_UID), _namespace_id(st.st_gid, OWN_GID)
    if fmt == stat.S_IFLNK:
        owner = read_link_owner(path)
        return Presented(fmt, *(owner or (uid, gid)), 0o777)
    override = read_override(path) if fmt in (stat.S_IFREG, stat.S_IFDIR) else None
    if override is None:
        return presented_from_stat(st)
    device = override.device()
    if device is not None and fmt == stat.S_IFREG:
        return Presented(device[0], override.uid, override.gid, override.mode,
                         os.makedev(device[1], device[2]))
    mode = override.mode
    disk_mode = stat.S_IMODE(st.st_mode)
    if disk_mode != owner_writable_mode(mode, fmt == stat.S_IFDIR):
        mode = disk_mode  # changed on disk by a driver that does not know overrides
    return Presented(fmt, override.uid, override.gid, mode, st.st_rdev)



def presented_from_stat(st: os.stat_result) -> Presented:
    """``presented`` for a file that carries no record: what lstat says."""
    fmt = stat.S_IFMT(st.st_mode)
    return Presented(fmt, _namespace_id(st.st_uid, OWN_UID), _namespace_id(st.st_gid, OWN_GID),
                     0o777 if fmt == stat.S_IFLNK else stat.S_IMODE(st.st_mode), st.st_rdev)


# Outside a user namespace our own files mean container root (ID 0); inside, we are 0.
OWN_UID, OWN_GID = os.getuid(), os.getgid()


def _namespace_id(on_disk: int, own: int) -> int:
    # Outside a user namespace our own files mean container root (ID 0).
    return 0 if own != 0 and on_disk == own else on_disk
