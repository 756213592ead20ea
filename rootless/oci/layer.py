"""OCI layer tars ⇄ unpacked layer directories; the one module that knows whiteouts.

On disk, an unpacked layer (and a container's upper directory) uses the form
kernel overlayfs reads in a user namespace, so both cowfs drivers share it:

* a deleted path is a character device 0:0 (an unprivileged user may create
  one: the kernel exempts whiteouts from CAP_MKNOD since Linux 5.8);
* an opaque directory carries the xattr ``user.overlay.opaque=y``;
* what the user cannot set on disk (another owner, a device node, modes that
  would lock the owner out such as a ``0555`` directory) lives in
  ``user.rootless.override_stat = "UID:GID:0MODE[:KIND]"``, KIND being
  ``char-MAJ-MIN`` or ``block-MAJ-MIN`` (the node is stored as an empty file).

A tar uses the OCI spelling (``.wh.NAME``, ``.wh..wh..opq``). ``extract``
converts on the way in, ``diff`` on the way out; nothing else in rootless
spells a whiteout.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rootless.errors import LayerError
from rootless.oci.tarstream import TarChecker

WHITEOUT_PREFIX = ".wh."
OPAQUE_NAME = ".wh..wh..opq"
OPAQUE_XATTR = "user.overlay.opaque"
OVERRIDE_XATTR = "user.rootless.override_stat"
# Xattrs an unprivileged user cannot set (security.capability, ...), kept under this prefix.
STASHED_XATTR_PREFIX = "user.rootless.xattr."
DEVICES_XATTR = "user.rootless.devices"  # on a directory: some entries are device records
LINK_OWNER_PREFIX = "user.rootless.link."  # on a directory: owners of its symlinks
# Our own bookkeeping and kernel overlayfs's; never shown through a mount nor exported.
PRIVATE_XATTR_PREFIXES = ("user.rootless.", "user.overlay.", "trusted.overlay.")

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20


# -- the on-disk form ---------------------------------------------------------------------


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
    uid, gid = _namespace_id(st.st_uid, _OWN_UID), _namespace_id(st.st_gid, _OWN_GID)
    if fmt == stat.S_IFLNK:
        owner = read_link_owner(path)
        return Presented(fmt, *(owner or (uid, gid)), 0o777)
    override = read_override(path) if fmt in (stat.S_IFREG, stat.S_IFDIR) else None
    if override is None:
        return Presented(fmt, uid, gid, stat.S_IMODE(st.st_mode), st.st_rdev)
    device = override.device()
    if device is not None and fmt == stat.S_IFREG:
        return Presented(device[0], override.uid, override.gid, override.mode,
                         os.makedev(device[1], device[2]))
    mode = override.mode
    disk_mode = stat.S_IMODE(st.st_mode)
    if disk_mode != owner_writable_mode(mode, fmt == stat.S_IFDIR):
        mode = disk_mode  # changed on disk by a driver that does not know overrides
    return Presented(fmt, override.uid, override.gid, mode, st.st_rdev)


_OWN_UID, _OWN_GID = os.getuid(), os.getgid()


def _namespace_id(on_disk: int, own: int) -> int:
    # Outside a user namespace our own files mean container root (ID 0).
    return 0 if own != 0 and on_disk == own else on_disk


# -- extract ------------------------------------------------------------------------------


class _CheckedReader(io.RawIOBase):
    """Passes bytes through to tarfile while TarChecker validates the framing."""

    def __init__(self, source: BinaryIO, checker: TarChecker) -> None:
        self._source = source
        self._checker = checker

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        if not data:
            return 0
        self._checker.feed(data)
        buffer[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


@contextlib.contextmanager
def _decompressed(source: BinaryIO, name: str) -> Iterator[BinaryIO]:
    """The plain tar bytes of SOURCE: gzip and zstd are recognised by their magic."""
    buffered = source if isinstance(source, io.BufferedReader) else io.BufferedReader(
        _Raw(source), _CHUNK)
    head = buffered.peek(4)[:4]
    if head.startswith(_GZIP_MAGIC):
        with gzip.GzipFile(fileobj=buffered, mode="rb") as plain:
            yield plain  # type: ignore[misc]
    elif head.startswith(_ZSTD_MAGIC):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise LayerError(f"layer {name} is zstd-compressed and no zstd decoder is installed",
                             hint="apt-get install zstd")
        proc = subprocess.Popen([zstd, "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        def feed() -> None:
            assert proc.stdin is not None
            try:
                while chunk := buffered.read(_CHUNK):
                    proc.stdin.write(chunk)
            except (BrokenPipeError, OSError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    proc.stdin.close()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            assert proc.stdout is not None
            yield proc.stdout  # type: ignore[misc]
        finally:
            assert proc.stdout is not None
            proc.stdout.close()
            proc.kill()
            proc.wait()
            feeder.join()
    else:
        yield buffered


class _Raw(io.RawIOBase):
    def __init__(self, source: BinaryIO) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def extract(tar_stream: BinaryIO | Path, dest: Path, *, name: str | None = None) -> None:
    """Unpack one layer tar into DEST (created; must not exist) in the on-disk form.

    Raises LayerError naming the layer for a hostile entry, a truncated or
    corrupt stream, or something that is not a tar; DEST is removed then.
    """
    label = name or (tar_stream.name if isinstance(tar_stream, Path) else "layer")
    try:
        dest.mkdir(mode=0o755)
    except FileExistsError:
        raise LayerError(f"layer {label}: destination {dest} already exists") from None
    try:
        if isinstance(tar_stream, Path):
            with tar_stream.open("rb") as f:
                _extract(f, dest, label)
        else:
            _extract(tar_stream, dest, label)
    except BaseException:
        _remove_tree(dest)
        raise


def _extract(source: BinaryIO, dest: Path, label: str) -> None:
    checker = TarChecker(f"layer {label}")
    try:
        with _decompressed(source, label) as plain:
            reader = _CheckedReader(plain, checker)
            try:
                with tarfile.open(fileobj=reader, mode="r|", bufsize=_CHUNK) as tar:
                    _Extractor(dest, label).run(tar)
                reader.drain()
            except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno is not None:
                    raise LayerError(f"layer {label}: {exc.strerror}: "
                                     f"{exc.filename or ''}") from exc
                checker.finish()  # the more precise reason, if the framing is wrong
                raise LayerError(f"layer {label} is not a valid tar archive: {exc}") from exc
            checker.finish()
    except LayerError:
        raise
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise LayerError(f"layer {label} is corrupt: {exc}") from exc


class _Extractor:
    def __init__(self, dest: Path, label: str) -> None:
        self.dest = dest
        self.label = label
        self.dir_times: list[tuple[str, int]] = []
        self.seen: set[str] = set()

    def refuse(self, member: tarfile.TarInfo, why: str) -> LayerError:
        return LayerError(f"layer {self.label}: refusing entry {member.name!r}: {why}")

    def run(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            self.entry(tar, member)
        # Directory times last: creating their children changed them.
        for path, mtime in reversed(self.dir_times):
            with contextlib.suppress(OSError):
                os.utime(path, ns=(mtime, mtime), follow_symlinks=False)

    def relative(self, member: tarfile.TarInfo, name: str) -> str:
        if name.startswith("/"):
            raise self.refuse(member, "absolute path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.refuse(member, "'..' in path")
        return "/".join(parts)

    def parent_dir(self, member: tarfile.TarInfo, rel: str) -> str:
        """The real parent directory of REL, created as needed, never through a symlink."""
        current = str(self.dest)
        for part in rel.split("/")[:-1]:
            current = os.path.join(current, part)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise self.refuse(member, "path goes through a symbolic link")
            if not stat.S_ISDIR(st.st_mode):
                raise self.refuse(member, "a parent is not a directory")
        return current

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = self.relative(member, member.name)
        if not rel:
            self.apply_meta(str(self.dest), member, is_dir=True)
            return
        parent = self.parent_dir(member, rel)
        base = rel.rsplit("/", 1)[-1]
        if base == OPAQUE_NAME:
            make_opaque(parent)
            # Whiteouts beside an opaque marker are redundant, and kernel overlayfs
            # would show them in a directory that only one layer provides.
            for entry in os.scandir(parent):
                if not entry.is_dir(follow_symlinks=False) and is_whiteout(
                        entry.stat(follow_symlinks=False)):
                    os.unlink(entry.path)
            return
        if base.startswith(WHITEOUT_PREFIX):
            hidden = base[len(WHITEOUT_PREFIX):]
            if hidden in ("", ".", ".."):
                raise self.refuse(member, "whiteout of nothing")
            target = os.path.join(parent, hidden)
            if not os.path.lexists(target) and not is_opaque(parent):
                make_whiteout(target)
            return
        path = os.path.join(parent, base)
        if member.isdir():
            self.make_dir(path)
            self.apply_meta(path, member, is_dir=True)
            return
        self.clear(path)
        if member.isreg():
            self.write_file(tar, member, path)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            self.hardlink(member, path)
            return  # shares the target's inode and metadata
        elif member.isfifo():
            os.mkfifo(path, 0o600)
        elif member.ischr() or member.isblk():
            if member.ischr() and member.devmajor == 0 and member.devminor == 0:
                make_whiteout(path)  # a tar made from an overlay upper: already a whiteout
                return
            kind = f"{'char' if member.ischr() else 'block'}-{member.devmajor}-{member.devminor}"
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.chmod(path, 0o600)
            write_device_record(path, Override(member.uid, member.gid, member.mode & 0o7777,
                                               kind))
            self.set_times(path, member)
            return
        else:
            raise self.refuse(member, f"unsupported tar entry type {member.type!r}")
        self.apply_meta(path, member, is_dir=False)

    def make_dir(self, path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o700)
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            os.mkdir(path, 0o700)

    def clear(self, path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            _remove_tree(Path(path))
        else:
            os.unlink(path)

    def write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        source = tar.extractfile(member)
        assert source is not None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)

    def hardlink(self, member: tarfile.TarInfo, path: str) -> None:
        target_rel = self.relative(member, member.linkname)
        if not target_rel:
            raise self.refuse(member, "hard link to the layer root")
        target_parent = self.parent_dir(member, target_rel)
        target = os.path.join(target_parent, target_rel.rsplit("/", 1)[-1])
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise self.refuse(member, f"hard link to {member.linkname!r}, "
                                      "which is not earlier in this layer") from None
        if stat.S_ISDIR(st.st_mode) or is_whiteout(st):
            raise self.refuse(member, "hard link to a directory or whiteout")
        os.link(target, path, follow_symlinks=False)

    def apply_meta(self, path: str, member: tarfile.TarInfo, *, is_dir: bool) -> None:
        mode = member.mode & 0o7777
        uid, gid = member.uid, member.gid
        if member.issym():
            if (uid, gid) != (0, 0):
                write_link_owner(path, (uid, gid))
            self.set_times(path, member)
            return
        # Other owners are recorded, not set: files owned by subordinate IDs could
        # not be read, nor deleted, outside a user namespace.
        owned = uid == 0 and gid == 0
        disk_mode = owner_writable_mode(mode, is_dir)
        os.chmod(path, disk_mode)
        if not owned or disk_mode != mode:
            write_override(path, Override(uid, gid, mode))
        for key, value in (member.pax_headers or {}).items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if name.startswith(PRIVATE_XATTR_PREFIXES):
                continue
            raw = value.encode("utf-8", "surrogateescape")
            if not name.startswith("user."):
                # security.capability and friends need privileges: kept as a record,
                # so that the layer leaves the store as it came in.
                name = STASHED_XATTR_PREFIX + name
            with contextlib.suppress(OSError):
                os.setxattr(path, name, raw)
        if is_dir:
            self.dir_times.append((path, int(member.mtime * 1_000_000_000)))
        else:
            self.set_times(path, member)

    def set_times(self, path: str, member: tarfile.TarInfo) -> None:
        ns = int(member.mtime * 1_000_000_000)
        with contextlib.suppress(OSError):
            os.utime(path, ns=(ns, ns), follow_symlinks=False)


def _remove_tree(path: Path) -> None:
    from rootless.fsutil import force_rmtree

    with contextlib.suppress(OSError):
        force_rmtree(path)


# -- diff ---------------------------------------------------------------------------------


def source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise LayerError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds") from None


def diff(upper: Path, out: BinaryIO | Path, *, paths: Iterable[str] | None = None,
         epoch: int | None = None, compress: bool = False) -> None:
    """Write the OCI layer tar for an upper directory to OUT.

    Entries come in byte order of their paths, whiteouts as ``.wh.`` files,
    ownership and modes as presented; with EPOCH (default: SOURCE_DATE_EPOCH)
    every time later than it is clamped to it. PATHS (relative to UPPER, e.g.
    from ``MountHandle.changes()``) limits the walk to them and their
    parents; by default the whole upper is walked (only what changed is in it).
    The bytes are the same for the same content.
    """
    clamp = source_date_epoch() if epoch is None else epoch
    if isinstance(out, Path):
        with out.open("wb") as f:
            diff(upper, f, paths=paths, epoch=clamp, compress=compress)
        return
    if compress:
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz:
            _write_tar(upper, gz, paths, clamp)  # type: ignore[arg-type]
    else:
        _write_tar(upper, out, paths, clamp)


def _walk(upper: Path, paths: Iterable[str] | None) -> list[str]:
    if paths is None:
        found: list[str] = []
        for dirpath, dirs, files in os.walk(upper):
            rel = os.path.relpath(dirpath, upper)
            prefix = "" if rel == "." else rel + "/"
            found.extend(prefix + name for name in dirs + files)
        return sorted(found, key=os.fsencode)
    wanted: set[str] = set()
    for path in paths:
        rel = path.strip("/")
        if not rel or not os.path.lexists(upper / rel):
            continue
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            wanted.add("/".join(parts[:i]))
        if os.path.isdir(upper / rel) and not os.path.islink(upper / rel):
            wanted.update(rel + "/" + sub for sub in _walk(upper / rel, None))
    return sorted(wanted, key=os.fsencode)


def _write_tar(upper: Path, out: BinaryIO, paths: Iterable[str] | None,
               clamp: int | None) -> None:
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in _walk(upper, paths):
            full = upper / rel
            st = os.lstat(full)
            if is_whiteout(st):
                tar.addfile(_info(_whiteout_name(rel), tarfile.REGTYPE, 0, 0, 0o644,
                                  _clamped(st.st_mtime_ns, clamp)))
                continue
            if stat.S_ISSOCK(st.st_mode):
                continue  # sockets have no tar form; Docker leaves them out too
            info = _member(full, rel, st, clamp)
            if info.type == tarfile.REGTYPE and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in links:
                    info.type = tarfile.LNKTYPE
                    info.linkname = links[key]
                    info.size = 0
                    tar.addfile(info)
                    continue
                links[key] = rel
            if info.type == tarfile.REGTYPE:
                with open(full, "rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
            if info.type == tarfile.DIRTYPE and is_opaque(full):
                tar.addfile(_info(rel + "/" + OPAQUE_NAME, tarfile.REGTYPE, 0, 0, 0o644,
                                  _clamped(st.st_mtime_ns, clamp)))


def _whiteout_name(rel: str) -> str:
    head, _, base = rel.rpartition("/")
    return (head + "/" if head else "") + WHITEOUT_PREFIX + base


def _clamped(mtime_ns: int, clamp: int | None) -> int:
    seconds = mtime_ns // 1_000_000_000
    return min(seconds, clamp) if clamp is not None else seconds


def _info(name: str, kind: bytes, uid: int, gid: int, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.uid, info.gid, info.mode, info.mtime = uid, gid, mode, mtime
    info.uname = info.gname = ""
    return info


def _member(full: Path, rel: str, st: os.stat_result, clamp: int | None) -> tarfile.TarInfo:
    shown = presented(full, st)
    kinds = {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE,
             stat.S_IFLNK: tarfile.SYMTYPE, stat.S_IFIFO: tarfile.FIFOTYPE,
             stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE}
    kind = kinds.get(shown.fmt)
    if kind is None:
        raise LayerError(f"cannot put {rel!r} in a layer: sockets have no tar form")
    info = _info(rel, kind, shown.uid, shown.gid, shown.mode, _clamped(st.st_mtime_ns, clamp))
    if kind == tarfile.REGTYPE:
        info.size = st.st_size
    elif kind == tarfile.SYMTYPE:
        info.linkname = os.readlink(full)
    elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(shown.rdev), os.minor(shown.rdev)
    if kind != tarfile.SYMTYPE:
        xattrs = _exported_xattrs(full)
        if xattrs:
            info.pax_headers = xattrs
    return info


def _exported_xattrs(path: Path) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    found: dict[str, str] = {}
    for key in sorted(names):
        exported = key
        if key.startswith(STASHED_XATTR_PREFIX):
            exported = key[len(STASHED_XATTR_PREFIX):]
        elif key.startswith(PRIVATE_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(path, key, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.EPERM, errno.EACCES):
                continue
            raise
        found["SCHILY.xattr." + exported] = value.decode("utf-8", "surrogateescape")
    return dict(sorted(found.items()))
