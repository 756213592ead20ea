"""``rootless pull``: registry → store, as ``docker pull`` does it.

1. HEAD the tag (uncounted by Docker Hub's rate limit) to learn its digest.
2. If the store already holds that manifest and its blobs, only tag it.
3. Otherwise GET the manifest by digest; for a list/index choose the platform.
4. Download the config and the missing layers in parallel, each streamed into a
   store blob writer that verifies the digest before the blob exists.
5. Record the manifest and its tag under the store lock, last: on any failure
   before that no image or tag appears and no incomplete blob is left behind
   (layers that did complete stay as verified blobs, as Docker keeps them, so
   the next attempt skips them).
"""

from __future__ import annotations

import functools
import json
import threading
from typing import TYPE_CHECKING, Any

import requests

from rootless.errors import DigestMismatch, ImageNotFound, RegistryError, StoreError
from rootless.oci.digest import Digest
from rootless.oci.model import OCI_INDEX, OCI_MANIFEST
from rootless.reference import ImageReference
from rootless.registry.client import IMAGE_ACCEPT, Manifest, RegistryClient
from rootless.registry.parallel import check, run_all
from rootless.registry.platforms import (
    Platform,
    available,
    host_platform,
    parse_platform,
    select_manifest,
)
from rootless.registry.progress import Progress, QuietProgress
from rootless.registry.transport import about

if TYPE_CHECKING:
    from rootless.store import Store, StoredImage

PARALLEL_DOWNLOADS = 6


def pull_image(
    store: Store,
    ref: str | ImageReference,
    platform: str | Platform | None = None,
    session: requests.Session | None = None,
    progress: Progress | None = None,
    *,
    tls_verify: bool | None = None,
    client: RegistryClient | None = None,
) -> StoredImage:
    """Pull one image into the store and tag it; returns what the store recorded.

    The build calls this for a FROM whose image the store lacks.
    """
    reference = ImageReference.parse(ref) if isinstance(ref, str) else ref
    wanted = parse_platform(platform) if isinstance(platform, str) else platform
    progress = progress or QuietProgress()
    client = client or RegistryClient(reference.domain, session, tls_verify=tls_verify)
    try:
        return _Puller(store, client, reference, wanted, progress).run()
    except RegistryError as exc:
        raise about(exc, reference.domain, reference.familiar) from None


def pull_all_tags(
    store: Store,
    ref: str | ImageReference,
    platform: str | Platform | None = None,
    session: requests.Session | None = None,
    progress: Progress | None = None,
    *,
    tls_verify: bool | None = None,
) -> list[StoredImage]:
    reference = ImageReference.parse(ref) if isinstance(ref, str) else ref
    client = RegistryClient(reference.domain, session, tls_verify=tls_verify)
    client.want(reference.repository)
    tags = client.list_tags(reference.repository, reference.familiar_name)
    if not tags:
        raise ImageNotFound(f"{reference.familiar_name}: repository has no tags")
    return [pull_image(store, reference.with_tag(tag), platform, progress=progress,
                       client=client) for tag in sorted(tags)]


class _Puller:
    def __init__(self, store: Store, client: RegistryClient, reference: ImageReference,
                 wanted: Platform | None, progress: Progress) -> None:
        self.store = store
        self.client = client
        self.ref = reference
        self.wanted = wanted
        self.progress = progress
        self.repo = reference.repository
        self.subject = reference.familiar

    def run(self) -> StoredImage:
        self.client.want(self.repo)
        if self.ref.tag is not None and self.ref.digest is None:
            self.progress.line(f"{self.ref.tag}: Pulling from {self.repo}")
        top_digest = self._resolve_digest()
        manifest = self._manifest(top_digest)
        from_index = manifest.is_index
        if from_index:
            self._keep(manifest)
            manifest = self._choose(manifest)
        image_manifest = _parse_image_manifest(manifest, self.subject)
        config_desc = image_manifest["config"]
        layers: list[dict[str, Any]] = image_manifest["layers"]
        fresh = not all(self._has(d["digest"]) for d in [config_desc, *layers])
        tags = [self.ref.with_tag(self.ref.tag)] if self.ref.tag else []
        # The lease keeps a concurrent prune from collecting blobs not yet referenced.
        with self.store.lease():
            self._fetch_blobs(config_desc, layers)
            if not from_index:
                self._warn_platform(config_desc)
            try:
                image = self.store.add_manifest(manifest.data, tags,
                                                media_type=manifest.media_type)
            except StoreError as exc:
                raise RegistryError(f"{self.subject}: {exc}") from None
        self.progress.line(f"Digest: {top_digest}")
        status = "Downloaded newer image for" if fresh else "Image is up to date for"
        self.progress.line(f"Status: {status} {self.ref.familiar}")
        return image

    def _resolve_digest(self) -> str:
        if self.ref.digest is not None:
            return self.ref.digest
        assert self.ref.tag is not None
        info = self.client.head_manifest(self.repo, self.ref.tag, self.subject)
        if info is not None:
            return info.digest
        # No digest from HEAD (or 404): GET tells us, or says what is wrong.
        try:
            manifest = self.client.get_manifest(self.repo, self.ref.tag, self.subject)
        except RegistryError as exc:
            if exc.status != 404:
                raise
            # Some registries 404 an Accept that names manifest lists: ask for images only.
            try:
                manifest = self.client.get_manifest(self.repo, self.ref.tag, self.subject,
                                                    accept=IMAGE_ACCEPT)
            except RegistryError:
                raise exc from None
        self._keep(manifest)
        return manifest.digest

    def _manifest(self, digest: str) -> Manifest:
        """A manifest by digest, from the store when it is there (no counted GET)."""
        local = self._local_manifest(digest)
        if local is not None:
            return local
        manifest = self.client.get_manifest(self.repo, digest, self.subject)
        return manifest

    def _local_manifest(self, digest: str) -> Manifest | None:
        if not self._has(digest):
            return None
        try:
            with self.store.open_blob(Digest(digest)) as f:
                data = f.read()
            doc = json.loads(data)
        except (OSError, ValueError, StoreError):
            return None
        media_type = str(doc.get("mediaType") or "")
        if not media_type:
            media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
        return Manifest(data, media_type, digest)

    def _keep(self, manifest: Manifest) -> None:
        """Keep an index's bytes so the next pull of this tag needs no GET."""
        if not self._has(manifest.digest):
            self.store.put_blob(manifest.data, expected=Digest(manifest.digest))

    def _choose(self, index: Manifest) -> Manifest:
        wanted = self.wanted or host_platform()
        try:
            doc = index.json()
        except ValueError:
            raise RegistryError(f"{self.subject}: malformed manifest list") from None
        entry = select_manifest(doc, wanted)
        if entry is None:
            offered = ", ".join(available(doc)) or "none"
            raise ImageNotFound(f"{self.subject}: no matching manifest for {wanted} in the "
                                f"manifest list entries (available: {offered})")
        child = self._manifest(str(entry["digest"]))
        if child.is_index:
            raise RegistryError(f"{self.subject}: nested manifest lists are not supported")
        return child

    def _warn_platform(self, config_desc: dict[str, Any]) -> None:
        try:
            with self.store.open_blob(Digest(config_desc["digest"])) as f:
                config = json.load(f)
        except (OSError, ValueError, StoreError):
            return
        os_, arch = config.get("os"), config.get("architecture")
        if not os_ or not arch:
            return
        if self.wanted is None:
            host = host_platform()
            if os_ != host.os or arch != host.architecture:
                self.progress.warn(
                    f"The requested image's platform ({os_}/{arch}) does not match the "
                    f"detected host platform ({host}) and no specific platform was requested")
        elif os_ != self.wanted.os or arch != self.wanted.architecture:
            self.progress.warn(f"image {self.subject} is {os_}/{arch}, not the requested "
                               f"platform {self.wanted}: the registry sent a single manifest")

    def _has(self, digest: str) -> bool:
        try:
            return bool(self.store.has_blob(Digest(digest)))
        except StoreError:
            return False

    def _fetch_blobs(self, config_desc: dict[str, Any], layers: list[dict[str, Any]]) -> None:
        """The config (quietly) and the missing layers, all at once."""
        tasks = [functools.partial(self._fetch, config_desc, show=False)]
        for desc in layers:
            if self._has(desc["digest"]):
                self.progress.status(desc["digest"], "Already exists")
            else:
                self.progress.status(desc["digest"], "Pulling fs layer")
                tasks.append(functools.partial(self._fetch, desc))
        try:
            run_all(tasks, PARALLEL_DOWNLOADS)
        finally:
            self.progress.close()

    def _fetch(self, desc: dict[str, Any], cancelled: threading.Event | None = None,
               show: bool = True) -> None:
        digest = Digest(desc["digest"])
        if self._has(digest):
            return
        size = int(desc["size"])

        def advance(done: int) -> None:
            if cancelled is not None:
                check(cancelled)
            if show:
                self.progress.advance(digest, done, size)

        try:
            with self.store.blob_writer(digest, size) as writer:
                self.client.fetch_blob(self.repo, desc, writer, self.subject, advance)
        except DigestMismatch as exc:
            raise RegistryError(f"{self.subject}: blob {digest}: digest mismatch ({exc})",
                                code="DIGEST_INVALID") from None
        if show:
            self.progress.status(digest, "Pull complete")


def _parse_image_manifest(manifest: Manifest, subject: str) -> dict[str, Any]:
    """The manifest's config and layer descriptors, checked enough to trust the digests."""
    try:
        doc = manifest.json()
        config = doc["config"]
        layers = doc.get("layers") or []
        for desc in [config, *layers]:
            Digest(desc["digest"])
            if not isinstance(desc["size"], int) or desc["size"] < 0:
                raise ValueError("bad size")
    except (ValueError, KeyError, TypeError, StoreError):
        raise RegistryError(f"{subject}: malformed manifest {manifest.digest}") from None
    return {"config": config, "layers": list(layers)}
