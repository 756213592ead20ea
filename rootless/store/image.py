"""What the store answers about one image: ``StoredImage``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rootless.oci.digest import Digest
from rootless.oci.model import Descriptor, ImageConfig, Manifest
from rootless.reference import ImageReference


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An image manifest in the store, its config, and the tags pointing at it.

    ``image_id`` is the config digest (as Docker's image ID). ``layers`` are the
    manifest's layer descriptors, oldest (base) first; ``diff_ids`` are the
    digests of the same layers uncompressed, from the config, in the same order.
    """

    manifest_digest: Digest
    manifest_bytes: bytes
    config_bytes: bytes
    tags: tuple[ImageReference, ...]

    @property
    def parsed_manifest(self) -> Manifest:
        return Manifest.parse(self.manifest_bytes)

    @property
    def manifest(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.manifest_bytes)
        return value

    @property
    def media_type(self) -> str:
        return self.parsed_manifest.media_type

    @property
    def image_config(self) -> ImageConfig:
        return ImageConfig.parse(self.config_bytes)

    @property
    def config(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.config_bytes)
        return value

    @property
    def config_digest(self) -> Digest:
        return self.parsed_manifest.config.digest

    @property
    def image_id(self) -> Digest:
        return self.config_digest

    @property
    def short_id(self) -> str:
        return self.image_id.short

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.parsed_manifest.layers

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        return self.image_config.diff_ids

    @property
    def created(self) -> datetime | None:
        return self.image_config.created

    @property
    def size(self) -> int:
        """Bytes of the config and layer blobs (compressed, as stored)."""
        manifest = self.parsed_manifest
        return manifest.config.size + sum(d.size for d in manifest.layers)

    @property
    def blob_digests(self) -> tuple[Digest, ...]:
        """Every blob this image needs: manifest, config, layers."""
        manifest = self.parsed_manifest
        return (self.manifest_digest, manifest.config.digest,
                *(d.digest for d in manifest.layers))

    @property
    def repo_digests(self) -> tuple[str, ...]:
        """``name@manifest-digest`` for each repository the image is tagged in."""
        names = dict.fromkeys(t.familiar_name for t in self.tags)
        return tuple(f"{name}@{self.manifest_digest}" for name in names)

    @property
    def dangling(self) -> bool:
        return not self.tags
