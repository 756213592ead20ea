"""``rootless push``: store → registry, as ``docker push`` does it.

Every blob is HEADed first; a blob the registry holds in another repository we
know the image from is mounted instead of uploaded; the rest are uploaded in
parallel (one streamed PUT, or PATCH chunks when asked). The manifest goes
last, as the exact bytes in the store, so an image pulled and pushed back keeps
its digest.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import requests

from rootless.errors import ReferenceError_, RegistryError
from rootless.reference import ImageReference
from rootless.registry.client import FOREIGN_LAYER_TYPES, Manifest, RegistryClient
from rootless.registry.parallel import check, run_all
from rootless.registry.progress import Progress, QuietProgress
from rootless.registry.transport import about

if TYPE_CHECKING:
    from rootless.store import Store, StoredImage

PARALLEL_UPLOADS = 5


@dataclass(frozen=True, slots=True)
class PushResult:
    reference: ImageReference
    digest: str
    size: int


def push_image(
    store: Store,
    ref: str | ImageReference,
    session: requests.Session | None = None,
    progress: Progress | None = None,
    *,
    source: str | None = None,
    tls_verify: bool | None = None,
    chunk_size: int | None = None,
    client: RegistryClient | None = None,
) -> PushResult:
    """Push the image ``source`` (default: ``ref`` itself) from the store to ``ref``."""
    reference = ImageReference.parse(ref) if isinstance(ref, str) else ref
    if reference.digest is not None and reference.tag is None:
        raise ReferenceError_(f"{ref}: push needs a tag, not a digest")
    progress = progress or QuietProgress()
    image = store.resolve(source or str(reference))
    client = client or RegistryClient(reference.domain, session, tls_verify=tls_verify)
    try:
        return _push(store, image, reference, client, progress, chunk_size)
    except RegistryError as exc:
        raise about(exc, reference.domain, reference.familiar) from None


def _push(store: Store, image: StoredImage, reference: ImageReference, client: RegistryClient,
          progress: Progress, chunk_size: int | None) -> PushResult:
    subject = reference.familiar
    repo = reference.repository
    client.want(repo, "pull,push")
    sources = _mount_sources(image, reference)
    for other in sources:
        client.want(other, "pull")
    progress.line(f"The push refers to repository [{reference.name}]")

    manifest = Manifest(image.manifest_bytes, image.media_type, str(image.manifest_digest))
    doc = manifest.json()
    blobs: list[dict[str, Any]] = [*doc.get("layers", []), doc["config"]]

    def push_blob(desc: dict[str, Any], cancelled: threading.Event) -> None:
        digest = str(desc["digest"])
        if desc.get("mediaType") in FOREIGN_LAYER_TYPES:
            progress.status(digest, "Skipped foreign layer")
            return
        if client.blob_exists(repo, digest, subject):
            progress.status(digest, "Layer already exists")
            return
        for other in sources:
            if client.mount_blob(repo, digest, other, subject):
                progress.status(digest, f"Mounted from {other}")
                return
        size = int(desc["size"])
        progress.status(digest, "Preparing")

        def open_blob() -> BinaryIO:
            return store.open_blob(digest)

        def advance(done: int) -> None:
            check(cancelled)
            progress.advance(digest, done, size, "Pushing")

        client.upload_blob(repo, digest, size, open_blob, subject, advance,
                           chunk_size=chunk_size)
        progress.status(digest, "Pushed")

    try:
        run_all([functools.partial(push_blob, desc) for desc in blobs], PARALLEL_UPLOADS)
    finally:
        progress.close()
    tag = reference.tag or "latest"
    digest = client.put_manifest(repo, tag, manifest, subject)
    progress.line(f"{tag}: digest: {digest} size: {len(manifest.data)}")
    return PushResult(reference, digest, len(manifest.data))


def _mount_sources(image: StoredImage, target: ImageReference) -> list[str]:
    """Other repositories of the same registry this image was tagged from."""
    out: list[str] = []
    for other in image.tags:
        if (other.domain == target.domain and other.repository != target.repository
                and other.repository not in out):
            out.append(other.repository)
    return out
