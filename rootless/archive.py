"""Image archives: ``save`` writes and ``load`` reads docker-archive and oci-archive tars.

docker-archive (what ``docker save`` / ``podman save`` write and ``docker load``
reads)::

    manifest.json               [{"Config": "<hex>.json", "RepoTags": [...], "Layers": [...]}]
    <config hex>.json           the config, byte for byte (the image ID is kept)
    <diff_id hex>.tar           each layer, uncompressed

oci-archive is an OCI image layout in a tar: ``oci-layout``, ``index.json``
(with the name in ``io.containerd.image.name`` and the tag in
``org.opencontainers.image.ref.name``, as Docker writes it) and
``blobs/sha256/<hex>``, blobs copied unchanged.

``load`` checks the whole archive (tar structure, every digest, layers
against the config's diff_ids) and only then adds the images to the index.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from rootless.errors import DigestMismatch, LayerError, StoreError
from rootless.oci.digest import CHUNK, Digest, Hasher, sha256_of
from rootless.oci.model import (
    CONTAINERD_IMAGE_NAME,
    GZIP_LAYER_TYPES,
    INDEX_TYPES,
    OCI_CONFIG,
    OCI_LAYER,
    REF_NAME,
    Descriptor,
    Index,
    Manifest,
    load_json_object,
)
from rootless.oci.tarstream import TarChecker
from rootless.reference import ImageReference
from rootless.rootfs_import import host_architecture, open_maybe_compressed
from rootless.store import Store, StoredImage

FORMATS = ("docker-archive", "oci-archive")


@dataclass(frozen=True, slots=True)
class SaveItem:
    """An image to save and the names to record for it (none when saved by ID)."""

    image: StoredImage
    tags: tuple[ImageReference, ...]


# -- save ----------------------------------------------------------------------


def _tar_info(name: str, size: int, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = 0
    return info


def _uncompressed_layer(store: Store, layer: Descriptor) -> Iterator[bytes]:
    """The layer tar's bytes, decompressing gzip blobs as they stream."""
    if layer.media_type in GZIP_LAYER_TYPES:
        decompressor = zlib.decompressobj(31)
        with store.open_blob(layer.digest) as f:
            while chunk := f.read(CHUNK):
                yield decompressor.decompress(chunk)
            yield decompressor.flush()
    elif layer.media_type in (OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar"):
        with store.open_blob(layer.digest) as f:
            while chunk := f.read(CHUNK):
                yield chunk
    else:
        raise StoreError(f"cannot save layer {layer.digest}: media type {layer.media_type} "
                         f"is not supported in a docker-archive")


class _ChunkReader:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        if size < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:size], self._buf[size:]
        return out


def save_docker_archive(store: Store, items: Sequence[SaveItem], out: IO[bytes]) -> None:
    """Write ``items`` as a docker-archive to ``out`` (streamed; ``out`` need not seek)."""
    manifest: list[dict[str, Any]] = []
    written: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for item in items:
            image = item.image
            config_name = f"{image.config_digest.hex}.json"
            if config_name not in written:
                tar.addfile(_tar_info(config_name, len(image.config_bytes)),
                            _ChunkReader(iter([image.config_bytes])))
                written.add(config_name)
            layer_names = []
            for layer, diff_id in zip(image.layers, image.diff_ids, strict=True):
                name = f"{diff_id.hex}.tar"
                layer_names.append(name)
                if name in written:
                    continue
                hasher = Hasher()
                for chunk in _uncompressed_layer(store, layer):
                    hasher.update(chunk)
                if hasher.digest() != diff_id:
                    raise DigestMismatch(f"layer {layer.digest} does not decompress to "
                                         f"diff_id {diff_id}")
                tar.addfile(_tar_info(name, hasher.size),
                            _ChunkReader(_uncompressed_layer(store, layer)))
                written.add(name)
            manifest.append({"Config": config_name,
                             # Full names: podman reads a short "busybox:1" as
                             # localhost/busybox; docker load accepts both.
                             "RepoTags": [str(t) for t in item.tags] or None,
                             "Layers": layer_names})
        data = json.dumps(manifest, separators=(",", ":")).encode()
        tar.addfile(_tar_info("manifest.json", len(data)),
                    _ChunkReader(iter([data])))


def save_oci_archive(store: Store, items: Sequence[SaveItem], out: IO[bytes]) -> None:
    """Write ``items`` as an OCI image layout in a tar, blobs unchanged."""
    entries: list[Descriptor] = []
    blobs: dict[Digest, int] = {}
    for item in items:
        image = item.image
        desc = Descriptor(image.media_type, image.manifest_digest, len(image.manifest_bytes))
        for ref in item.tags or (None,):
            annotations = {} if ref is None else {
                CONTAINERD_IMAGE_NAME: str(ref), REF_NAME: ref.tag or "latest"}
            entries.append(Descriptor(desc.media_type, desc.digest, desc.size, annotations))
        for digest in image.blob_digests:
            blobs.setdefault(digest, store.blob_path(digest).stat().st_size)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        layout = b'{"imageLayoutVersion":"1.0.0"}'
        tar.addfile(_tar_info("oci-layout", len(layout)),
                    _ChunkReader(iter([layout])))
        for name in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for digest, size in blobs.items():
            with store.open_blob(digest) as f:
                tar.addfile(_tar_info(f"blobs/sha256/{digest.hex}", size), f)
        index = Index.build(entries)
        tar.addfile(_tar_info("index.json", len(index)),
                    _ChunkReader(iter([index])))


# -- load ----------------------------------------------------------------------


@contextlib.contextmanager
def _checked_archive(store: Store, stream: IO[bytes], what: str) -> Iterator[IO[bytes]]:
    """The archive as a seekable, uncompressed tar whose structure has been checked.

    A plain tar in a regular file is read in place; anything else (a pipe, a
    compressed archive) is spooled into the store's tmp dir first.
    """
    if _is_plain_tar_file(stream):
        checker = TarChecker(what)
        while chunk := stream.read(CHUNK):
            checker.feed(chunk)
        checker.finish()
        stream.seek(0)
        yield stream
        return
    with store.temp_dir("load-") as tmp:
        path = tmp / "archive.tar"
        checker = TarChecker(what)
        source = open_maybe_compressed(stream, what)
        with open(path, "wb") as f:
            while chunk := source.read(CHUNK):
                checker.feed(chunk)
                f.write(chunk)
        checker.finish()
        with open(path, "rb") as f:
            yield f


def _is_plain_tar_file(stream: IO[bytes]) -> bool:
    try:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode) or not stream.seekable():
            return False
        head = stream.read(6)
        stream.seek(0)
    except (OSError, ValueError, AttributeError):
        return False
    return not head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"))


def _member_bytes(tar: tarfile.TarFile, name: str, what: str) -> bytes:
    with _member(tar, name, what) as f:
        return f.read()


@contextlib.contextmanager
def _member(tar: tarfile.TarFile, name: str, what: str) -> Iterator[IO[bytes]]:
    for candidate in (name, f"./{name}", name.removeprefix("./")):
        try:
            f = tar.extractfile(candidate)
        except KeyError:
            continue
        if f is not None:
            with f:
                yield f
            return
    raise StoreError(f"{what}: {name} is missing from the archive")


def load_archive(store: Store, stream: IO[bytes], what: str = "archive") -> list[StoredImage]:
    """Load every image in a docker-archive or oci-archive (maybe compressed)."""
    created: set[Digest] = set()
    try:
        with store.lease(), _checked_archive(store, stream, what) as archive, \
                tarfile.open(fileobj=archive, mode="r:") as tar:
            names = {n.removeprefix("./") for n in tar.getnames()}
            if "manifest.json" in names:
                pending = _docker_archive(store, tar, what, created)
            elif "index.json" in names:
                pending = _oci_archive(store, tar, what, created)
            else:
                raise StoreError(f"{what} is neither a docker-archive nor an oci-archive "
                                 f"(no manifest.json or index.json)")
            with store.lock():
                return [store.add_manifest(manifest, tags) for manifest, tags in pending]
    except BaseException:
        store.discard_unreferenced(created)
        raise


def _put(store: Store, data: bytes | IO[bytes], created: set[Digest],
         expected: str | None = None) -> Descriptor:
    """Store a blob, noting it in ``created`` so a failed load can take it back."""
    if expected is not None and store.has_blob(expected):
        return Descriptor("", Digest(expected), store.blob_path(expected).stat().st_size)
    desc = store.put_blob(data, expected)
    created.add(desc.digest)
    return desc


def _docker_archive(store: Store, tar: tarfile.TarFile, what: str,
                    created: set[Digest]) -> list[tuple[bytes, list[ImageReference]]]:
    try:
        entries = json.loads(_member_bytes(tar, "manifest.json", what))
    except json.JSONDecodeError as exc:
        raise StoreError(f"{what}: manifest.json is not valid JSON: {exc}") from None
    if not isinstance(entries, list):
        raise StoreError(f"{what}: manifest.json is not a list")
    pending = []
    for entry in entries:
        config_bytes = _member_bytes(tar, str(entry.get("Config")), what)
        config = load_json_object(config_bytes, f"{what}: config")
        diff_ids = [Digest(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
        layer_paths = entry.get("Layers") or []
        if len(layer_paths) != len(diff_ids):
            raise StoreError(f"{what}: {len(layer_paths)} layers but the config lists "
                             f"{len(diff_ids)} diff_ids")
        layers = []
        for layer_path, diff_id in zip(layer_paths, diff_ids, strict=True):
            with _member(tar, str(layer_path), what) as f:
                head = f.read(2)
                f.seek(0)
                if head == b"\x1f\x8b":
                    desc = _put(store, f, created)
                    actual = _gunzip_digest(store, desc.digest)
                    layer = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip",
                                       desc.digest, desc.size)
                else:
                    info = store.put_layer(f)
                    created.add(info.digest)
                    actual, layer = info.diff_id, info.descriptor()
            if actual != diff_id:
                raise DigestMismatch(f"{what}: layer {layer_path} has diff_id {actual}, "
                                     f"the config says {diff_id}")
            layers.append(layer)
        config_desc = _put(store, config_bytes, created)
        manifest = Manifest.build(Descriptor(OCI_CONFIG, config_desc.digest, config_desc.size),
                                  layers)
        tags = [ImageReference.parse(t) for t in entry.get("RepoTags") or []]
        pending.append((manifest, tags))
    return pending


def _gunzip_digest(store: Store, digest: Digest) -> Digest:
    hasher = Hasher()
    decompressor = zlib.decompressobj(31)
    try:
        with store.open_blob(digest) as f:
            while chunk := f.read(CHUNK):
                hasher.update(decompressor.decompress(chunk))
        hasher.update(decompressor.flush())
    except zlib.error as exc:
        raise LayerError(f"layer {digest} is not valid gzip: {exc}") from None
    return hasher.digest()


def _oci_archive(store: Store, tar: tarfile.TarFile, what: str,
                 created: set[Digest]) -> list[tuple[bytes, list[ImageReference]]]:
    index = Index.parse(_member_bytes(tar, "index.json", what))
    pending: list[tuple[bytes, list[ImageReference]]] = []
    by_digest: dict[Digest, list[ImageReference]] = {}
    for entry in index.manifests:
        manifest_digest = _pick_manifest(tar, entry, what)
        tags = by_digest.setdefault(manifest_digest, [])
        ref = _oci_entry_name(entry)
        if ref is not None and ref not in tags:
            tags.append(ref)
    for manifest_digest, tags in by_digest.items():
        raw = _blob_bytes(tar, manifest_digest, what)
        manifest = Manifest.parse(raw)
        for desc in (manifest.config, *manifest.layers):
            with _member(tar, f"blobs/sha256/{desc.digest.hex}", what) as f:
                _put(store, f, created, desc.digest)
        _put(store, raw, created, manifest_digest)
        pending.append((raw, tags))
    return pending


def _blob_bytes(tar: tarfile.TarFile, digest: Digest, what: str) -> bytes:
    data = _member_bytes(tar, f"blobs/sha256/{digest.hex}", what)
    if sha256_of(data) != digest:
        raise DigestMismatch(f"{what}: blob {digest} does not match its digest")
    return data


def _pick_manifest(tar: tarfile.TarFile, entry: Descriptor, what: str) -> Digest:
    """The image manifest an index entry means: itself, or the host platform's child."""
    digest = entry.digest
    for _depth in range(4):
        raw = _blob_bytes(tar, digest, what)
        doc = json.loads(raw)
        if doc.get("mediaType") not in INDEX_TYPES and "manifests" not in doc:
            return digest
        children = Index.parse(raw).manifests
        arch = host_architecture()
        match = [c for c in children if c.platform and c.platform.get("os") == "linux"
                 and c.platform.get("architecture") == arch]
        if not match and not children:
            raise StoreError(f"{what}: image index {digest} is empty")
        digest = (match or list(children))[0].digest
    raise StoreError(f"{what}: image indexes nested too deeply")


def _oci_entry_name(entry: Descriptor) -> ImageReference | None:
    name = entry.annotations.get(CONTAINERD_IMAGE_NAME)
    if not name:
        ref_name = entry.annotations.get(REF_NAME, "")
        # A bare tag ("latest") names no repository; full references do.
        name = ref_name if ("/" in ref_name or ":" in ref_name) else ""
    return ImageReference.parse(name) if name else None

