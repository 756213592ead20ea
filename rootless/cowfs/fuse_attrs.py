"""File attributes as the fuse driver presents them: packed ``struct fuse_attr``.

Owners and modes come from the layer's records (``presented``), mapped to what
this user namespace can show; a lower layer's files never change, so their
packed attributes are computed once, and in directories an unpacked layer
flags as holding no records, from lstat alone.
"""

from __future__ import annotations

import contextlib
import os
import stat

from rootless.cowfs import fuse_kernel as k
from rootless.cowfs.union import Entry
from rootless.oci.layer_ondisk import OWN_GID, OWN_UID, has_records, presented, records_flagged


def _id_map(path: str) -> list[tuple[int, int]]:
    """(first, count) of the IDs this namespace maps."""
    ranges = []
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            inside, _, count = line.split()
            ranges.append((int(inside), int(count)))
    return ranges


def encode_dev(rdev: int) -> int:
    """A device number as the FUSE protocol carries it (the kernel's new_encode_dev)."""
    major, minor = os.major(rdev), os.minor(rdev)
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def decode_dev(value: int) -> int:
    return os.makedev((value & 0xFFF00) >> 8, (value & 0xFF) | ((value >> 12) & 0xFFF00))


class Attributes:
    """Packed attributes of the union's files; LOWERS are its read-only layer roots."""

    def __init__(self, lowers: list[str]) -> None:
        self.lowers = lowers
        self.uid_map = _id_map("/proc/self/uid_map")
        self.gid_map = _id_map("/proc/self/gid_map")
        self._shown_ids: dict[tuple[int, int], int] = {}
        self._lower: dict[str, bytes] = {}
        self._plain_dirs: dict[str, bool] = {}
        self._flagged_roots: dict[str, bool] = {}

    def shown_id(self, value: int, ranges: list[tuple[int, int]], kind: int) -> int:
        # An owner this namespace does not map would reach the kernel as "nobody", whom
        # even root may not override: show root instead (the record keeps the real one).
        shown = self._shown_ids.get((kind, value))
        if shown is None:
            mapped = any(first <= value < first + count for first, count in ranges)
            shown = self._shown_ids[(kind, value)] = value if mapped else 0
        return shown

    def of(self, real: str, st: os.stat_result, lower: bool) -> bytes:
        """The packed ``struct fuse_attr`` of REAL; those of lower files never change."""
        if lower:
            packed = self._lower.get(real)
            if packed is not None:
                return packed
        shown = presented(real, st)
        packed = self._pack(st, shown.fmt, shown.mode, shown.uid, shown.gid, shown.rdev)
        if lower:
            self._lower[real] = packed
        return packed

    def of_entry(self, entry: Entry) -> bytes:
        if not entry.in_upper and self.is_plain(entry.real.rpartition("/")[0]):
            return self.of_plain(entry.st)
        return self.of(entry.real, entry.st, not entry.in_upper)

    def of_plain(self, st: os.stat_result) -> bytes:
        """``of`` for a lower file without records: ``presented_from_stat`` inlined, as a
        directory listing calls it once per entry."""
        fmt = stat.S_IFMT(st.st_mode)
        uid, gid = st.st_uid, st.st_gid
        return self._pack(st, fmt, 0o777 if fmt == stat.S_IFLNK else stat.S_IMODE(st.st_mode),
                          0 if uid == OWN_UID else uid, 0 if gid == OWN_GID else gid, 0)

    def is_plain(self, directory: str) -> bool:
        """Whether lower DIRECTORY holds no records (its files need no xattr read)."""
        known = self._plain_dirs.get(directory)
        if known is None:
            root = next((r for r in self.lowers
                         if directory == r or directory.startswith(r + "/")), None)
            known = root is not None and self._flagged(root) and not has_records(directory)
            self._plain_dirs[directory] = known
        return known

    def _flagged(self, root: str) -> bool:
        known = self._flagged_roots.get(root)
        if known is None:
            known = self._flagged_roots[root] = records_flagged(root)
        return known

    def _pack(self, st: os.stat_result, fmt: int, mode: int, uid: int, gid: int,
              rdev: int) -> bytes:
        device = fmt == stat.S_IFCHR or fmt == stat.S_IFBLK
        a_sec, a_ns = divmod(st.st_atime_ns, 1_000_000_000)
        m_sec, m_ns = divmod(st.st_mtime_ns, 1_000_000_000)
        c_sec, c_ns = divmod(st.st_ctime_ns, 1_000_000_000)
        return k.ATTR.pack(
            st.st_ino, 0 if device else st.st_size, st.st_blocks, a_sec, m_sec, c_sec,
            a_ns, m_ns, c_ns, fmt | mode, st.st_nlink,
            self.shown_id(uid, self.uid_map, 0), self.shown_id(gid, self.gid_map, 1),
            encode_dev(rdev) if device else 0, st.st_blksize, 0)
