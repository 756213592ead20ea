"""Layer tar → unpacked layer directory in the on-disk form of ``layer_ondisk``.

The tar is read once, as a stream (gzip and zstd recognised by their magic):
the same chunks feed tarfile, the framing checks of ``TarChecker`` and the
sha256 that must equal the layer's diff_id, so verifying costs no second pass.
Hostile entries (absolute paths, ``..``, paths through symlinks, hard links
out of the layer) are refused; on any error the destination is removed.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

from rootless.errors import LayerError
from rootless.oci.digest import Hasher
from rootless.oci.layer_ondisk import (
    OPAQUE_NAME,
    PRIVATE_XATTR_PREFIXES,
    STASHED_XATTR_PREFIX,
    WHITEOUT_PREFIX,
    Override,
    flag_records_kept,
    is_opaque,
    is_whiteout,
    make_opaque,
    make_whiteout,
    owner_writable_mode,
    write_device_record,
    write_link_owner,
    write_override,
)
from rootless.oci.tarstream import TarChecker

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20


class _CheckedReader:
    """Hands the plain tar bytes to tarfile (which needs only ``read``) while
    TarChecker validates the framing and the hasher sums them: the diff_id is
    the digest of exactly these chunks, so verifying costs no second pass (and
    no copy: the chunk read is the chunk tarfile gets)."""

    def __init__(self, source: BinaryIO, checker: TarChecker) -> None:
        self._source = source
        self._checker = checker
        self.hasher = Hasher()

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._checker.feed(data)
            self.hasher.update(data)
        return data

    def drain(self) -> None:
        """Read past the tar's end-of-archive blocks and padding: tarfile stops at
        them, the diff_id covers every byte."""
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


def extract(tar_stream: BinaryIO | Path, dest: Path, *, name: str | None = None,
            diff_id: str | None = None) -> None:
    """Unpack one layer tar into DEST (created; must not exist) in the on-disk form.

    With DIFF_ID (the image config's ``rootfs.diff_ids`` entry), the sha256 of
    the decompressed stream must equal it. Raises LayerError naming the layer
    for a hostile entry, a truncated or corrupt stream, something that is not a
    tar, or content that is not the one the image names; DEST is removed then.
    """
    label = name or (tar_stream.name if isinstance(tar_stream, Path) else "layer")
    try:
        dest.mkdir(mode=0o755)
    except FileExistsError:
        raise LayerError(f"layer {label}: destination {dest} already exists") from None
    try:
        if isinstance(tar_stream, Path):
            with tar_stream.open("rb") as f:
                actual = _extract(f, dest, label)
        else:
            actual = _extract(tar_stream, dest, label)
        if diff_id is not None and actual != diff_id:
            raise LayerError(f"layer {label} does not match its image: its content has "
                             f"diff_id {actual}, the image config says {diff_id}",
                             hint="the image is corrupt: pull or load it again")
        flag_records_kept(dest)
    except BaseException:
        _remove_tree(dest)
        raise


def _extract(source: BinaryIO, dest: Path, label: str) -> str:
    """Unpack SOURCE into DEST; the digest of its decompressed bytes (the diff_id)."""
    checker = TarChecker(f"layer {label}")
    try:
        with _decompressed(source, label) as plain:
            reader = _CheckedReader(plain, checker)
            try:
                # Stream mode ("r|") only ever calls read().
                with tarfile.open(fileobj=cast(BinaryIO, reader), mode="r|",
                                  bufsize=_CHUNK) as tar:
                    _Extractor(dest, label).run(tar)
                reader.drain()
            except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno is not None:
                    raise LayerError(f"layer {label}: {exc.strerror}: "
                                     f"{exc.filename or ''}") from exc
                checker.finish()  # the more precise reason, if the framing is wrong
                raise LayerError(f"layer {label} is not a valid tar archive: {exc}") from exc
            checker.finish()
            return reader.hasher.digest()
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
