"""Descriptors, manifests, indexes and image configs (OCI and Docker schema2).

Manifests and configs are kept as the bytes they arrived as: their digest is
the identity of an image, so re-serialising them would change it. The typed
wrappers here only read those bytes. JSON *we* write is canonical
(sorted keys, no spaces), so the same image always gets the same digest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rootless.errors import StoreError
from rootless.oci.digest import Digest, sha256_of

# OCI image spec media types.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
# Docker image manifest v2 schema 2 media types.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
GZIP_LAYER_TYPES = frozenset({OCI_LAYER_GZIP, DOCKER_LAYER_GZIP, OCI_LAYER_NONDIST_GZIP,
                              DOCKER_LAYER_FOREIGN})

# Annotation naming a tag in an OCI layout's index.json.
REF_NAME = "org.opencontainers.image.ref.name"
# Annotation containerd and Docker read for the full image name in an OCI archive.
CONTAINERD_IMAGE_NAME = "io.containerd.image.name"


def canonical_json(value: Any) -> bytes:
    """The bytes rootless writes for JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise StoreError(f"{what} is not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A pointer to content: media type, digest and size (OCI descriptor)."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest),
                               "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = dict(self.platform)
        return out

    @classmethod
    def from_json(cls, value: Any, what: str = "descriptor") -> Descriptor:
        if not isinstance(value, dict):
            raise StoreError(f"{what} is not a JSON object")
        try:
            size = value["size"]
            if not isinstance(size, int) or size < 0:
                raise StoreError(f"{what} has an invalid size {size!r}")
            return cls(
                media_type=str(value.get("mediaType", "")),
                digest=Digest(value["digest"]),
                size=size,
                annotations=dict(value.get("annotations") or {}),
                platform=value.get("platform"),
            )
        except KeyError as exc:
            raise StoreError(f"{what} has no {exc.args[0]!r}") from None


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """A layer blob in the store.

    ``digest`` hashes the (compressed) blob as stored and pushed; ``diff_id``
    hashes the uncompressed tar, as listed in the config's rootfs.diff_ids.
    """

    digest: Digest
    diff_id: Digest
    size: int
    media_type: str = OCI_LAYER_GZIP
    uncompressed_size: int | None = None

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest (OCI or Docker schema2), read from its original bytes."""

    raw: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str]

    @property
    def digest(self) -> Digest:
        return sha256_of(self.raw)

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None) -> Manifest:
        doc = load_json_object(raw, "image manifest")
        kind = doc.get("mediaType") or media_type or OCI_MANIFEST
        if kind in INDEX_TYPES or "manifests" in doc:
            raise StoreError("expected an image manifest, got an image index")
        if kind not in MANIFEST_TYPES:
            raise StoreError(f"unsupported manifest media type {kind!r}")
        if doc.get("schemaVersion") != 2:
            raise StoreError(f"unsupported manifest schemaVersion {doc.get('schemaVersion')!r}")
        layers = doc.get("layers") or []
        if not isinstance(layers, list):
            raise StoreError("image manifest: layers is not a list")
        return cls(
            raw=raw,
            media_type=kind,
            config=Descriptor.from_json(doc.get("config"), "manifest config"),
            layers=tuple(Descriptor.from_json(d, "manifest layer") for d in layers),
            annotations=dict(doc.get("annotations") or {}),
        )

    @staticmethod
    def build(config: Descriptor, layers: list[Descriptor],
              annotations: Mapping[str, str] | None = None) -> bytes:
        """Canonical bytes of a new OCI image manifest."""
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [d.to_json() for d in layers],
        }
        if annotations:
            doc["annotations"] = dict(annotations)
        return canonical_json(doc)


@dataclass(frozen=True, slots=True)
class Index:
    """An image index / manifest list, or an OCI layout's index.json."""

    media_type: str
    manifests: tuple[Descriptor, ...]

    @classmethod
    def parse(cls, raw: bytes) -> Index:
        doc = load_json_object(raw, "image index")
        entries = doc.get("manifests") or []
        if not isinstance(entries, list):
            raise StoreError("image index: manifests is not a list")
        return cls(str(doc.get("mediaType") or OCI_INDEX),
                   tuple(Descriptor.from_json(d, "index entry") for d in entries))

    @staticmethod
    def build(manifests: list[Descriptor]) -> bytes:
        return canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                               "manifests": [d.to_json() for d in manifests]})


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    created: str | None
    created_by: str
    comment: str
    author: str
    empty_layer: bool


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """A read-only view of an image config (the JSON whose digest is the image ID)."""

    raw: bytes
    doc: Mapping[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> ImageConfig:
        doc = load_json_object(raw, "image config")
        rootfs = doc.get("rootfs")
        if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids", []), list):
            raise StoreError("image config has no rootfs.diff_ids")
        return cls(raw, doc)

    @property
    def digest(self) -> Digest:
        return sha256_of(self.raw)

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        return tuple(Digest(d) for d in self.doc["rootfs"].get("diff_ids") or [])

    @property
    def container_config(self) -> Mapping[str, Any]:
        """The ``config`` member: Env, Cmd, Entrypoint, WorkingDir, User, Labels, ..."""
        value = self.doc.get("config")
        return value if isinstance(value, dict) else {}

    @property
    def created(self) -> datetime | None:
        return parse_time(self.doc.get("created"))

    @property
    def architecture(self) -> str:
        return str(self.doc.get("architecture") or "")

    @property
    def os(self) -> str:
        return str(self.doc.get("os") or "")

    @property
    def history(self) -> tuple[HistoryEntry, ...]:
        entries = self.doc.get("history") or []
        return tuple(
            HistoryEntry(
                created=h.get("created"),
                created_by=str(h.get("created_by") or ""),
                comment=str(h.get("comment") or ""),
                author=str(h.get("author") or ""),
                empty_layer=bool(h.get("empty_layer")),
            )
            for h in entries if isinstance(h, dict)
        )


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (Go prints nanoseconds; Python takes microseconds)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = ""
        while tail and tail[0].isdigit():
            digits, tail = digits + tail[0], tail[1:]
        text = f"{head}.{(digits + '000000')[:6]}{tail}"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp


def format_time(stamp: datetime) -> str:
    """RFC 3339 in UTC with a Z, as Docker writes ``created``."""
    text = stamp.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")
