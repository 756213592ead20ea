"""Writing blobs: a temp file under ``<root>/tmp``, hashed as it is written,
verified, fsynced and renamed into ``blobs/sha256/<hex>``.

The rename is the commit: a reader (or a process killed at any moment) sees
either no blob or the complete, verified one. The temp file is flocked while
it is written, so garbage collection can tell an abandoned temp file (its
writer was killed) from one that is still being written.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from types import TracebackType

from rootless.errors import DigestMismatch, StoreError
from rootless.fsutil import fsync_dir
from rootless.oci.digest import Digest, Hasher

BLOB_MODE = 0o444


class BlobWriter:
    """Accepts ``write(bytes)``; on ``commit()`` the content becomes a blob.

    Use as a context manager (``Store.blob_writer``): a clean exit commits,
    an exception discards the temp file. ``digest`` and ``size`` are known
    after commit. Not thread-safe.
    """

    def __init__(self, blobs_dir: Path, tmp_dir: Path, expected: str | None = None,
                 expected_size: int | None = None) -> None:
        self._blobs_dir = blobs_dir
        self._expected = Digest(expected) if expected is not None else None
        self._expected_size = expected_size
        try:
            fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="blob-")
        except OSError as exc:
            raise StoreError(f"cannot write to the store ({tmp_dir}): "
                             f"{exc.strerror or exc}") from exc
        fcntl.flock(fd, fcntl.LOCK_EX)
        # Unbuffered: callers write in large chunks, and what was written is on
        # disk (visible to gc and to tests killing us mid-write) right away.
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._tmp = Path(name)
        self._hasher = Hasher()
        self._done = False
        self.digest: Digest | None = None

    @property
    def size(self) -> int:
        return self._hasher.size

    @property
    def tmp_path(self) -> Path:
        return self._tmp

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._done:
            raise StoreError("write to a blob that is already committed or discarded")
        self._hasher.update(data)
        view = memoryview(data).cast("B")
        try:
            while view:
                written = self._file.write(view)  # raw writes may be partial
                view = view[written or 0:]
        except OSError as exc:  # ENOSPC, EIO, a quota: the store's problem, told plainly
            raise StoreError(f"writing to {self._tmp.parent}: {exc.strerror or exc}") from exc
        return len(data)

    def commit(self) -> Digest:
        """Verify and move into place. Idempotent: an existing blob is kept as is."""
        actual = self._hasher.digest()
        try:
            if self._expected is not None and actual != self._expected:
                raise DigestMismatch(
                    f"content has digest {actual}, expected {self._expected}",
                    hint="the download or archive is corrupt or was cut short")
            if self._expected_size is not None and self.size != self._expected_size:
                raise DigestMismatch(
                    f"blob {actual} has {self.size} bytes, expected {self._expected_size}")
            self._file.flush()
            os.fsync(self._file.fileno())
            final = self._blobs_dir / actual.hex
            if final.exists():
                self._discard()
            else:
                os.chmod(self._tmp, BLOB_MODE)
                os.replace(self._tmp, final)
                fsync_dir(self._blobs_dir)
                self._close()
        except OSError as exc:
            self._discard()
            raise StoreError(f"storing blob {actual}: {exc.strerror or exc}") from exc
        except BaseException:
            self._discard()
            raise
        self.digest = actual
        return actual

    def discard(self) -> None:
        self._discard()

    def _close(self) -> None:
        if not self._done:
            self._done = True
            self._file.close()  # also releases the flock

    def _discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)
        self._close()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None and not self._done:
            self.commit()
        elif not self._done:
            self._discard()
