"""The image store: a content-addressed OCI image layout on disk.

::

    <root>/oci-layout, index.json   tags as org.opencontainers.image.ref.name
    <root>/blobs/sha256/<hex>       every blob once, read-only, shared between images
    <root>/tmp/                     temp files; renamed into place when complete
    <root>/lock                     flock held for multi-step mutations
    <root>/gc.lock                  shared by writers holding a lease, exclusive for GC
    <root>/layers/sha256/<diff_id>  unpacked layers (filled by the cowfs)
    <root>/containers/<id>/         container records (the sandbox's)

Guarantees, for every method below unless it says otherwise:

- Atomic: blobs and ``index.json`` are written to ``tmp/`` and renamed into
  place, so readers (and a process killed at any moment) see the old state or
  the new one, never a half-written file.
- Verified: a blob enters ``blobs/`` only once its content hashes to its name.
- Safe between processes: ``index.json`` changes happen under ``lock()``.
  Garbage collection also takes ``gc.lock`` exclusively; a caller that
  stores blobs and references them later (a pull, a build) holds
  ``lease()`` in between so a concurrent prune cannot collect them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from rootless.errors import (
    BlobNotFound,
    DigestMismatch,
    ImageNotFound,
    ReferenceError_,
    StoreError,
)
from rootless.fsutil import atomic_write
from rootless.oci.digest import CHUNK, Digest, Hasher, sha256_of
from rootless.oci.model import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    REF_NAME,
    Descriptor,
    Index,
    LayerInfo,
    Manifest,
    canonical_json,
    load_json_object,
)
from rootless.reference import ImageReference, is_image_id_prefix
from rootless.store.image import StoredImage

# Writing layers, collecting garbage and sizing layers import what they need when
# called: `rootless run` only resolves an image (its start-up latency is benchmarked).
if TYPE_CHECKING:
    from rootless.store.blobs import BlobWriter
    from rootless.store.gc import GcReport

__all__ = ["BlobWriter", "GcReport", "Store", "StoredImage"]


def __getattr__(name: str) -> Any:
    """``BlobWriter`` and ``GcReport``, imported on first use."""
    if name == "BlobWriter":
        from rootless.store.blobs import BlobWriter
        return BlobWriter
    if name == "GcReport":
        from rootless.store.gc import GcReport
        return GcReport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


class Store:
    """One store directory. Cheap to open; holds no state beyond lock depth."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.tmp_dir = self.root / "tmp"
        self.layers_dir = self.root / "layers" / "sha256"
        self.containers_dir = self.root / "containers"
        self.buildcache_dir = self.root / "buildcache"
        self.index_path = self.root / "index.json"
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._lease_fd: int | None = None
        self._lease_depth = 0
        self._thread_lock = threading.RLock()
        self._lock_owner: int | None = None
        self._lease_guard = threading.Lock()

    @classmethod
    def open(cls, root: Path) -> Store:
        """Open the store at ``root``, creating the layout if it is missing (idempotent)."""
        store = cls(root)
        try:
            for directory in (store.blobs_dir, store.tmp_dir, store.layers_dir,
                              store.containers_dir):
                directory.mkdir(parents=True, exist_ok=True)
            layout = store.root / "oci-layout"
            if not layout.exists():
                atomic_write(layout, OCI_LAYOUT, tmp_dir=store.tmp_dir)
            if not store.index_path.exists():
                with store.lock():
                    if not store.index_path.exists():
                        store._write_index([])
        except OSError as exc:
            raise StoreError(f"cannot use store {root}: {exc.strerror or exc}",
                             hint="choose another directory with --root or ROOTLESS_ROOT"
                             ) from exc
        return store

    # -- locking -------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's exclusive lock: against other processes (flock) and
        other threads using this Store object; reentrant within one thread.

        Take it around read-modify-write sequences on tags and images. Do not
        take a lease inside it expecting it to outlive the lock (lease first, then lock).
        """
        with self._thread_lock:
            if self._lock_depth == 0:
                self._lock_fd = _flocked(self.root / "lock", fcntl.LOCK_EX)
                self._lock_owner = threading.get_ident()
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None
                    self._lock_owner = None

    @contextlib.contextmanager
    def lease(self) -> Iterator[None]:
        """Keep garbage collection away while blobs are stored but not yet referenced.

        Shared between writers; ``gc()`` waits for all leases. Reentrant. Inside
        ``lock()`` (which gc also needs) a new lease is a no-op: taking gc.lock
        there could deadlock against a gc waiting for the store lock.
        """
        if self._lock_owner == threading.get_ident() and self._lease_depth == 0:
            yield
            return
        with self._lease_guard:
            if self._lease_depth == 0:
                self._lease_fd = _flocked(self.root / "gc.lock", fcntl.LOCK_SH)
            self._lease_depth += 1
        try:
            yield
        finally:
            with self._lease_guard:
                self._lease_depth -= 1
                if self._lease_depth == 0 and self._lease_fd is not None:
                    os.close(self._lease_fd)
                    self._lease_fd = None

    @contextlib.contextmanager
    def _gc_lock(self, wait: bool = True) -> Iterator[bool]:
        """Hold gc.lock exclusively, then the store lock; yields False (holding
        nothing) when ``wait`` is False and a lease is open."""
        fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            with self.lock():
                yield True
        finally:
            os.close(fd)

    # -- blobs ---------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / Digest(digest).hex

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, digest: str) -> BinaryIO:
        """Open a stored blob for reading (not re-verified: use read_blob for that)."""
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} is not in the store") from None

    def read_blob(self, digest: str) -> bytes:
        """The content of a blob, verified against its digest."""
        with self.open_blob(digest) as f:
            data = f.read()
        if sha256_of(data) != digest:
            raise DigestMismatch(f"blob {digest} in {self.root} is corrupt",
                                 hint="remove the image and pull or import it again")
        return data

    def blob_writer(self, expected_digest: str | None = None,
                    expected_size: int | None = None) -> BlobWriter:
        """A writer whose content becomes a blob on clean context exit (see BlobWriter).

        Verified against ``expected_digest``/``expected_size`` when given:
        DigestMismatch and nothing stored otherwise. Idempotent.
        """
        from rootless.store.blobs import BlobWriter

        return BlobWriter(self.blobs_dir, self.tmp_dir, expected_digest, expected_size)

    def put_blob(self, data: bytes | IO[bytes], expected: str | None = None,
                 media_type: str = "application/octet-stream") -> Descriptor:
        """Store ``data`` (bytes or a readable stream) and return its descriptor.

        Idempotent: success means the blob is in the store, not that this call
        wrote it. Atomic and verified (``expected``, when given).
        """
        with self.blob_writer(expected) as writer:
            if isinstance(data, bytes | bytearray | memoryview):
                writer.write(data)
            else:
                while chunk := data.read(CHUNK):
                    writer.write(chunk)
        assert writer.digest is not None
        return Descriptor(media_type, writer.digest, writer.size)

    def put_layer(self, tar_stream: IO[bytes], *, validate: bool = True,
                  what: str = "layer tar") -> LayerInfo:
        """Store an uncompressed layer tar as a gzip blob, hashing both forms as it streams.

        With ``validate`` the stream must be one complete tar archive
        (LayerError otherwise, nothing stored). Idempotent, atomic. The gzip
        output is deterministic (see oci.pgzip): same tar, same digest.
        """
        from rootless.oci.pgzip import ParallelGzip
        from rootless.oci.tarstream import TarChecker

        diff = Hasher()
        checker = TarChecker(what) if validate else None
        with self.blob_writer() as writer:
            gz = ParallelGzip(writer.write)
            try:
                while True:
                    try:
                        chunk = tar_stream.read(CHUNK)
                    except OSError as exc:
                        raise StoreError(f"reading layer: {exc}") from exc
                    if not chunk:
                        break
                    diff.update(chunk)
                    if checker is not None:
                        checker.feed(chunk)
                    gz.write(chunk)
                if checker is not None:
                    checker.finish()
                gz.close()
            finally:
                gz.abort()
        assert writer.digest is not None
        return LayerInfo(writer.digest, diff.digest(), writer.size, OCI_LAYER_GZIP, diff.size)

    # -- images --------------------------------------------------------------

    def commit_image(self, config: dict[str, Any], layers: Sequence[LayerInfo | Descriptor],
                     tags: Sequence[ImageReference] = ()) -> StoredImage:
        """Write ``config`` and an OCI manifest for ``layers`` (oldest first); tag it.

        When ``config`` has no ``rootfs``, it is filled from the layers' diff_ids
        (all layers must then be LayerInfo). The config is written as canonical
        JSON: the same config and layers always give the same image ID.
        Atomic: the image appears (with all its tags) in one index.json rename.
        """
        config = dict(config)
        known = [layer.diff_id if isinstance(layer, LayerInfo) else None for layer in layers]
        if "rootfs" not in config:
            if any(d is None for d in known):
                raise StoreError("commit_image: config has no rootfs and a layer has no diff_id")
            config["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in known]}
        diff_ids = config["rootfs"].get("diff_ids") or []
        if len(diff_ids) != len(layers) or any(
                k is not None and k != d for k, d in zip(known, diff_ids, strict=False)):
            raise StoreError("commit_image: rootfs.diff_ids do not match the layers")
        descriptors = [layer.descriptor() if isinstance(layer, LayerInfo) else layer
                       for layer in layers]
        with self.lease():
            config_desc = self.put_blob(canonical_json(config), media_type=OCI_CONFIG)
            manifest = Manifest.build(config_desc, descriptors)
            return self.add_manifest(manifest, tags)

    def add_manifest(self, manifest_bytes: bytes, tags: Sequence[ImageReference] = (),
                     media_type: str | None = None) -> StoredImage:
        """Store an image manifest whose config and layers are already stored; tag it.

        The bytes are kept as given (OCI or Docker schema2), so the manifest
        digest does not change. BlobNotFound if a referenced blob is missing.
        Idempotent; atomic (one index.json rename).
        """
        manifest = Manifest.parse(manifest_bytes, media_type)
        # Only tags name images in index.json; a digest is the manifest's own.
        tags = [t.with_tag(t.tag) for t in tags if t.tag is not None]
        with self.lease():
            config_bytes = self.read_blob(manifest.config.digest) \
                if self.has_blob(manifest.config.digest) else None
            if config_bytes is None:
                raise BlobNotFound(f"config {manifest.config.digest} is not in the store")
            load_json_object(config_bytes, "image config")
            desc = self.put_blob(manifest_bytes, media_type=manifest.media_type)
            with self.lock():
                for layer in manifest.layers:
                    if not self.has_blob(layer.digest):
                        raise BlobNotFound(f"layer {layer.digest} is not in the store")
                entries = self._read_index()
                if not any(e.digest == desc.digest for e in entries):
                    entries.append(desc)
                for ref in tags:
                    entries = _retag(entries, desc, ref)
                self._write_index(entries)
                return self._image(desc.digest, entries)

    def images(self) -> list[StoredImage]:
        """Every readable image in the store (tagged or dangling), in index order.

        Images whose blobs were damaged outside rootless are left out; ``damaged()``
        lists them.
        """
        entries = self._read_index()
        found = []
        for digest in dict.fromkeys(entry.digest for entry in entries):
            with contextlib.suppress(BlobNotFound, DigestMismatch):
                found.append(self._image(digest, entries))
        return found

    def damaged(self) -> list[tuple[str, str]]:
        """(name or manifest digest, problem) for each index entry whose blobs are unusable."""
        entries = self._read_index()
        out: list[tuple[str, str]] = []
        for digest in dict.fromkeys(entry.digest for entry in entries):
            try:
                self._image(digest, entries)
            except (BlobNotFound, DigestMismatch) as exc:
                names = [r.familiar for e in entries if e.digest == digest
                         if (r := _entry_ref(e)) is not None]
                out.append((names[0] if names else str(digest), str(exc)))
        return out

    def resolve(self, name_or_id: str) -> StoredImage:
        """Find an image by tag, ``name@digest``, or full or unique short image ID.

        As Docker: the text is tried as a name first, then as an image ID
        prefix (any length, but it must be unique). Reads only the blobs of
        the image it returns when a tag matches (``rootless run`` start-up).
        """
        entries = self._read_index()
        ref: ImageReference | None = None
        try:
            ref = ImageReference.parse(name_or_id)
        except ReferenceError_:
            if not is_image_id_prefix(name_or_id):
                raise
        if ref is not None:
            for entry in entries:
                if (ref.digest is not None and entry.digest == ref.digest) or (
                        ref.digest is None and _entry_ref(entry) == ref):
                    return self._image(entry.digest, entries)
        if is_image_id_prefix(name_or_id):
            prefix = name_or_id if name_or_id.startswith("sha256:") else f"sha256:{name_or_id}"
            matches: dict[Digest, Digest] = {}
            for digest in dict.fromkeys(e.digest for e in entries):
                config = Manifest.parse(self.read_blob(digest)).config.digest
                if config.startswith(prefix):
                    matches.setdefault(config, digest)
            if len(matches) == 1:
                return self._image(next(iter(matches.values())), entries)
            if len(matches) > 1:
                raise ImageNotFound(f"image ID prefix {name_or_id!r} is ambiguous: "
                                    f"{len(matches)} images match")
        raise ImageNotFound(f"No such image: {name_or_id}",
                            hint="list images with 'rootless images'")

    def tag(self, image: StoredImage, ref: ImageReference) -> StoredImage:
        """Point ``ref`` at ``image``, moving it from any other image. Idempotent."""
        if ref.digest is not None:
            raise StoreError(f"refusing to create a tag with a digest reference: {ref.familiar}")
        with self.lock():
            entries = self._read_index()
            desc = next((e for e in entries if e.digest == image.manifest_digest), None)
            if desc is None:
                raise ImageNotFound(f"No such image: {image.short_id}")
            entries = _retag(entries, _plain(desc), ref)
            self._write_index(entries)
            return self._image(image.manifest_digest, entries)

    def untag(self, ref: ImageReference) -> StoredImage:
        """Remove tag ``ref``; the image stays (dangling if it was its last tag).

        Returns the image as it is now. ImageNotFound if no image has that tag.
        """
        with self.lock():
            entries = self._read_index()
            hit = next((e for e in entries if _entry_ref(e) == ref), None)
            if hit is None:
                raise ImageNotFound(f"No such image: {ref.familiar}")
            entries = _drop_ref(entries, ref)
            self._write_index(entries)
            return self._image(hit.digest, entries)

    def forget(self, name_or_digest: str) -> list[Descriptor]:
        """Drop index entries by tag or manifest digest without reading any blob.

        The way out for an image whose blobs were damaged or deleted behind
        rootless's back (``rmi -f``). Returns the entries removed.
        """
        with self.lock():
            entries = self._read_index()
            try:
                ref: ImageReference | None = ImageReference.parse(name_or_digest)
            except ReferenceError_:
                ref = None
            hit = [e for e in entries if e.digest == name_or_digest
                   or (ref is not None and _entry_ref(e) == ref)]
            if hit:
                digests = {e.digest for e in hit}
                self._write_index([e for e in entries if e.digest not in digests])
            return hit

    def remove_image(self, image: StoredImage) -> None:
        """Remove the image and all its tags from the index (blobs go at the next gc())."""
        with self.lock():
            entries = [e for e in self._read_index() if e.digest != image.manifest_digest]
            self._write_index(entries)

    def gc(self, *, wait: bool = True) -> GcReport:
        """Delete blobs, unpacked layers and abandoned temp files no image needs.

        Waits for open leases (a pull or build storing blobs), or with
        ``wait=False`` does nothing then (``report.skipped``). Safe to run at
        any time; a killed gc leaves at worst some garbage for the next one.
        """
        from rootless.store.gc import GcReport, sweep_blobs, sweep_layer_dirs, sweep_temp

        if self._lease_depth > 0:
            raise StoreError("gc() called while holding a lease on the same store")
        with self._gc_lock(wait) as locked:
            if not locked:
                return GcReport(skipped=True)
            keep, keep_layers = self._gc_roots()
            report = GcReport()
            sweep_temp(self.tmp_dir, report)
            sweep_blobs(self.blobs_dir, keep, report)
            sweep_layer_dirs(self.layers_dir, self.tmp_dir, keep_layers, report)
            return report

    def discard_unreferenced(self, digests: set[Digest]) -> None:
        """Take back blobs a failed operation stored, unless an image now uses them.

        A garbage collection limited to ``digests``; skipped (left to gc())
        when this Store holds a lease, since gc waits for leases.
        """
        if not digests or self._lease_depth > 0:
            return
        with self._gc_lock(wait=False) as locked:
            if not locked:
                return  # a lease is open; the next gc() takes these back
            keep, _layers = self._gc_roots()
            for digest in digests - keep:
                with contextlib.suppress(FileNotFoundError):
                    self.blob_path(digest).unlink()

    def _gc_roots(self) -> tuple[set[Digest], set[Digest]]:
        """Blobs and unpacked layers (by diff_id) that images or the build cache need."""
        from rootless.store.gc import reachable_blobs

        entries = self._read_index()
        try:
            keep = reachable_blobs(self.read_blob, [e.digest for e in entries])
        except (BlobNotFound, DigestMismatch) as exc:
            names = ", ".join(sorted({str(r.familiar) for e in entries
                                      if (r := _entry_ref(e)) is not None})[:3])
            raise StoreError(f"cannot collect garbage: an image is damaged ({exc})",
                             hint=f"remove the damaged image with 'rootless rmi -f NAME' "
                                  f"(images: {names or 'untagged'})") from None
        cached_blobs, cached_layers = _build_cache_roots(self.buildcache_dir)
        keep |= cached_blobs
        keep_layers = {d for image in self.images() for d in image.diff_ids} | cached_layers
        return keep, keep_layers

    def layer_size(self, layer: Descriptor) -> int:
        """Uncompressed bytes of a stored layer, as Docker's SIZE columns count them."""
        from rootless.store.sizes import uncompressed_size

        return uncompressed_size(self.blob_path(layer.digest), layer.media_type)

    def image_size(self, image: StoredImage) -> int:
        """Uncompressed size of the image's layers (Docker's image Size)."""
        return sum(self.layer_size(layer) for layer in image.layers)

    # -- paths others fill ---------------------------------------------------

    def layer_dir(self, diff_id: str) -> Path:
        """Where the layer with this diff_id is (or will be) unpacked."""
        return self.layers_dir / Digest(diff_id).hex

    @contextlib.contextmanager
    def temp_dir(self, prefix: str = "dir-") -> Iterator[Path]:
        """A fresh directory under ``tmp/`` (same filesystem as the store), removed on exit
        unless renamed away. gc() leaves it alone while this context is open."""
        import tempfile

        from rootless.fsutil import force_rmtree

        path = Path(tempfile.mkdtemp(dir=self.tmp_dir, prefix=prefix))
        guard = os.open(f"{path}.inuse", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            try:
                force_rmtree(path)
            except OSError:
                pass  # e.g. files of a subordinate uid: left for the next gc()
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{path}.inuse")
            finally:
                os.close(guard)

    def containers_using(self, image_id: str) -> list[str]:
        """IDs of container records whose ``Image`` is ``image_id``."""
        users = []
        for record in sorted(self.containers_dir.glob("*/container.json")):
            try:
                doc = json.loads(record.read_bytes())
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("Image") == image_id:
                users.append(str(doc.get("Id") or record.parent.name))
        return users

    # -- index.json ----------------------------------------------------------

    def _read_index(self) -> list[Descriptor]:
        try:
            raw = self.index_path.read_bytes()
        except FileNotFoundError:
            return []
        return list(Index.parse(raw).manifests)

    def _write_index(self, entries: list[Descriptor]) -> None:
        assert self._lock_depth > 0, "index.json is written under the store lock"
        try:
            atomic_write(self.index_path, Index.build(entries), tmp_dir=self.tmp_dir)
        except OSError as exc:
            raise StoreError(f"cannot update {self.index_path}: {exc.strerror or exc}") from exc

    def _image(self, digest: Digest, entries: list[Descriptor]) -> StoredImage:
        manifest_bytes = self.read_blob(digest)
        manifest = Manifest.parse(manifest_bytes)
        config_bytes = self.read_blob(manifest.config.digest)
        tags = tuple(ref for e in entries if e.digest == digest
                     if (ref := _entry_ref(e)) is not None)
        return StoredImage(digest, manifest_bytes, config_bytes, tags)


def _build_cache_roots(buildcache_dir: Path) -> tuple[set[Digest], set[Digest]]:
    """Layer blobs and diff_ids the build cache will reuse (``buildcache/entries/*.json``
    list them as ``layers[].digest`` and ``.diff_id``); ``builder prune`` drops
    entries to free them."""
    blobs: set[Digest] = set()
    diff_ids: set[Digest] = set()
    for entry in sorted(buildcache_dir.glob("entries/*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            for layer in json.loads(entry.read_bytes())["layers"]:
                blobs.add(Digest(layer["digest"]))
                if layer.get("diff_id"):
                    diff_ids.add(Digest(layer["diff_id"]))
    return blobs, diff_ids


def _flocked(path: Path, operation: int) -> int:
    """An fd of ``path`` (created if missing) holding ``flock(operation)``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, operation)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _plain(desc: Descriptor) -> Descriptor:
    return Descriptor(desc.media_type, desc.digest, desc.size)


def _entry_ref(entry: Descriptor) -> ImageReference | None:
    name = entry.annotations.get(REF_NAME)
    if not name:
        return None
    try:
        return ImageReference.parse(name)
    except Exception:
        return None  # a name another tool wrote that is not a full reference


def _drop_ref(entries: list[Descriptor], ref: ImageReference) -> list[Descriptor]:
    """Entries without tag ``ref``; an image losing its last tag keeps a dangling entry."""
    out: list[Descriptor] = []
    for entry in entries:
        if _entry_ref(entry) == ref:
            still_listed = any(e.digest == entry.digest and e is not entry for e in entries)
            if not still_listed:
                out.append(_plain(entry))
            continue
        out.append(entry)
    return _dedupe(out)


def _retag(entries: list[Descriptor], desc: Descriptor, ref: ImageReference) -> list[Descriptor]:
    entries = _drop_ref(entries, ref)
    tagged = Descriptor(desc.media_type, desc.digest, desc.size, {REF_NAME: str(ref)})
    # The image's untagged entry (if any) gives way to the tagged one.
    entries = [e for e in entries if not (e.digest == desc.digest and not e.annotations)]
    entries.append(tagged)
    return _dedupe(entries)


def _dedupe(entries: list[Descriptor]) -> list[Descriptor]:
    """At most one entry per (digest, tag); an untagged entry only for untagged images."""
    tagged_digests = {e.digest for e in entries if _entry_ref(e) is not None}
    seen: set[tuple[str, str]] = set()
    out = []
    for entry in entries:
        ref = _entry_ref(entry)
        if ref is None and entry.digest in tagged_digests and not entry.annotations:
            continue
        key = (str(entry.digest), str(ref) if ref else entry.annotations.get(REF_NAME, ""))
        if key in seen:
            continue
        seen.add(key)
        out.append(entry)
    return out

