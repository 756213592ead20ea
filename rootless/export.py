"""``rootless export``: a container's filesystem as one flat tar, as ``docker export``.

The container's view is its image's layers with its upper directory on top.
The layers are read as OCI layer tars (the image's blobs; the upper through
``oci.layer.diff``) from the top down: the first layer to mention a path
wins, and whiteouts and opaque directories hide what lies below them. The
result has no whiteouts; extracted anywhere, it is the container's rootfs.
"""

from __future__ import annotations

import contextlib
import posixpath
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rootless.errors import ContainerError, LayerError
from rootless.oci.layer import OPAQUE_NAME, WHITEOUT_PREFIX
from rootless.oci.model import GZIP_LAYER_TYPES
from rootless.store import Store

LayerSource = Callable[[], AbstractContextManager[IO[bytes]]]


def find_container(store: Store, name_or_id: str) -> tuple[dict[str, Any], Path]:
    """The record and directory of a container, by name, full ID or unique ID prefix."""
    from rootless.containers import Containers

    container = Containers(store.containers_dir).get(name_or_id)
    return container.doc, container.path


@dataclass
class _Visibility:
    """What upper layers already decided about paths, as layers are read top down."""

    emitted: set[str] = field(default_factory=set)
    non_dirs: set[str] = field(default_factory=set)    # emitted as something else than a dir
    whiteouts: set[str] = field(default_factory=set)
    opaque: set[str] = field(default_factory=set)

    def hidden(self, path: str) -> bool:
        if path in self.emitted or path in self.whiteouts:
            return True
        parent = posixpath.dirname(path)
        while parent:
            if parent in self.whiteouts or parent in self.opaque or parent in self.non_dirs:
                return True
            parent = posixpath.dirname(parent)
        return "" in self.opaque


def _normal(name: str) -> str:
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path


def flatten(layers_top_down: list[LayerSource], out: IO[bytes]) -> None:
    """Write the merged view of OCI layer tars (topmost first) as one tar to ``out``."""
    seen = _Visibility()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dest:
        for source in layers_top_down:
            whiteouts: set[str] = set()
            opaque: set[str] = set()
            with source() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    path = _normal(member.name)
                    parent, base = posixpath.split(path)
                    if base == OPAQUE_NAME:
                        opaque.add(parent)
                        continue
                    if base.startswith(WHITEOUT_PREFIX):
                        whiteouts.add(posixpath.join(parent, base[len(WHITEOUT_PREFIX):]))
                        continue
                    if not path or seen.hidden(path):
                        continue
                    member.name = path
                    if member.islnk():
                        member.linkname = _normal(member.linkname)
                    data = tar.extractfile(member) if member.isreg() else None
                    dest.addfile(member, data)
                    seen.emitted.add(path)
                    if not member.isdir():
                        seen.non_dirs.add(path)
            seen.whiteouts |= whiteouts
            seen.opaque |= opaque


def _blob_source(store: Store, digest: str, media_type: str) -> LayerSource:
    @contextlib.contextmanager
    def open_layer() -> Iterator[IO[bytes]]:
        with store.open_blob(digest) as raw:
            if media_type in GZIP_LAYER_TYPES or raw.read(2) == b"\x1f\x8b":
                raw.seek(0)
                yield _Gunzip(raw)  # type: ignore[misc]
            else:
                raw.seek(0)
                yield raw
    return open_layer


class _Gunzip:
    """A minimal read-only stream decompressing gzip (tarfile's r| needs only read)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(31)
        self._buf = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            chunk = self._raw.read(1 << 20)
            if not chunk:
                self._buf += self._z.flush()
                break
            try:
                self._buf += self._z.decompress(chunk)
            except zlib.error as exc:
                raise LayerError(f"layer blob is not valid gzip: {exc}") from None
        if size < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:size], self._buf[size:]
        return out


def _upper_source(store: Store, upper: Path) -> LayerSource:
    @contextlib.contextmanager
    def open_upper() -> Iterator[IO[bytes]]:
        from rootless.oci.layer import diff

        with store.temp_dir("export-") as tmp:
            tar_path = tmp / "upper.tar"
            try:
                diff(upper, tar_path)
            except PermissionError as exc:
                raise ContainerError(f"cannot read the container's files: {exc}") from None
            with tar_path.open("rb") as f:
                yield f
    return open_upper


def export_container(store: Store, name_or_id: str, out: IO[bytes]) -> None:
    record, directory = find_container(store, name_or_id)
    image = store.resolve(str(record.get("Image") or ""))
    sources: list[LayerSource] = []
    upper = directory / "upper"
    if upper.is_dir():
        sources.append(_upper_source(store, upper))
    sources.extend(_blob_source(store, d.digest, d.media_type) for d in reversed(image.layers))
    flatten(sources, out)
