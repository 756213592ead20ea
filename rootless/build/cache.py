"""The build cache: what a step produced, found again by its cache key.

::

    <root>/buildcache/entries/<key hex>.json   one finished step: the image state after it
    <root>/buildcache/mounts/<id hash>/        RUN --mount=type=cache directories

An entry holds the whole image state after the step (config with history, and
the layer list), so a fully cached build commits the very same config and the
same layer blobs: same image ID, layers byte for byte. The layer blobs live in
the store; the store's garbage collector keeps every blob an entry names
(``referenced_blobs``), and ``builder prune`` drops entries, then collects.

The cache is bookkeeping outside any rootfs: RUN never sees it (cache mounts
are bound in explicitly, one directory per id).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rootless.fsutil import atomic_write, force_rmtree, tree_size
from rootless.oci.digest import Digest
from rootless.oci.model import LayerInfo

ENTRIES = "entries"
MOUNTS = "mounts"


@dataclass(frozen=True, slots=True)
class ImageState:
    """The image being built, as of one step: its config and layers (oldest first)."""

    config: dict[str, Any]
    layers: tuple[LayerInfo, ...]

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config,
                "layers": [{"digest": str(la.digest), "diff_id": str(la.diff_id),
                            "size": la.size, "media_type": la.media_type,
                            "uncompressed_size": la.uncompressed_size} for la in self.layers]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ImageState:
        layers = tuple(LayerInfo(Digest(la["digest"]), Digest(la["diff_id"]), int(la["size"]),
                                 la["media_type"], la.get("uncompressed_size"))
                       for la in doc["layers"])
        return cls(doc["config"], layers)


@dataclass(frozen=True, slots=True)
class PruneReport:
    entries: int
    mounts: int
    reclaimed: int


class BuildCache:
    def __init__(self, directory: Path, tmp_dir: Path) -> None:
        self.dir = directory
        self.entries = directory / ENTRIES
        self.mounts = directory / MOUNTS
        self.tmp_dir = tmp_dir

    @classmethod
    def of_store(cls, store_root: Path) -> BuildCache:
        return cls(store_root / "buildcache", store_root / "tmp")

    def _path(self, key: str) -> Path:
        return self.entries / (key.split(":", 1)[-1] + ".json")

    def get(self, key: str, has_blob: Any = None) -> ImageState | None:
        """The state a step with ``key`` produced, or None. With ``has_blob`` (a
        predicate), an entry whose layer blobs have gone counts as a miss."""
        path = self._path(key)
        try:
            doc = json.loads(path.read_bytes())
            state = ImageState.from_json(doc)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if has_blob is not None and not all(has_blob(la.digest) for la in state.layers):
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # last use, for pruning by age
        return state

    def put(self, key: str, state: ImageState) -> None:
        self.entries.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"key": key, **state.to_json()}, sort_keys=True).encode()
        atomic_write(self._path(key), data, tmp_dir=self.tmp_dir)

    def mount_dir(self, mount_id: str) -> Path:
        """The persistent directory of ``RUN --mount=type=cache,id=...``."""
        name = hashlib.sha256(mount_id.encode()).hexdigest()[:32]
        path = self.mounts / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _entry_files(self) -> Iterator[Path]:
        if self.entries.is_dir():
            yield from sorted(self.entries.glob("*.json"))

    def referenced_blobs(self) -> set[str]:
        """Layer blobs (and nothing else) that cache entries need kept."""
        keep: set[str] = set()
        for path in self._entry_files():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                for layer in json.loads(path.read_bytes())["layers"]:
                    keep.add(layer["digest"])
        return keep

    def usage(self) -> tuple[int, int]:
        """(number of entries, bytes of cache-mount contents and bookkeeping)."""
        entries = list(self._entry_files())
        size = sum(p.stat().st_size for p in entries)
        if self.mounts.is_dir():
            size += tree_size(self.mounts)
        return len(entries), size

    def prune(self, *, keep_diff_ids: set[str], everything: bool,
              older_than: float | None = None) -> PruneReport:
        """Drop entries. Without ``everything``, only entries whose layers are not all
        in some image (``keep_diff_ids``) go; cache mounts go only with ``everything``."""
        removed = 0
        reclaimed = 0
        now = time.time()
        for path in self._entry_files():
            try:
                doc = json.loads(path.read_bytes())
                state = ImageState.from_json(doc)
                st = path.stat()
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if older_than is not None and now - st.st_mtime < older_than:
                continue
            in_use = all(str(la.diff_id) in keep_diff_ids for la in state.layers)
            if everything or not in_use:
                reclaimed += st.st_size
                path.unlink(missing_ok=True)
                removed += 1
        mounts = 0
        if everything and self.mounts.is_dir():
            for child in sorted(self.mounts.iterdir()):
                reclaimed += tree_size(child)
                force_rmtree(child)
                mounts += 1
        return PruneReport(removed, mounts, reclaimed)
