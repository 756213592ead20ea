"""Garbage collection: delete what no image in index.json needs.

Roots are the manifests listed in index.json (tagged or dangling). Blobs they
do not reach, unpacked layer dirs whose diff_id no image lists, and temp
files whose writer is gone (killed mid-write) are removed. Runs with
``gc.lock`` exclusive (so no lease is open) and the store lock held.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rootless.errors import StoreError
from rootless.fsutil import force_rmtree, tree_size
from rootless.oci.digest import Digest, is_digest
from rootless.oci.model import INDEX_TYPES, Index, Manifest, load_json_object


@dataclass
class GcReport:
    blobs: list[Digest] = field(default_factory=list)
    layer_dirs: list[Digest] = field(default_factory=list)
    temp_entries: int = 0
    reclaimed: int = 0
    skipped: bool = False  # another process held a lease; nothing was collected
    undeletable: list[Path] = field(default_factory=list)  # temp dirs we may not remove


def reachable_blobs(read_blob: Callable[[Digest], bytes], roots: list[Digest]) -> set[Digest]:
    """Blobs reachable from the manifests or indexes ``roots``, following indexes."""
    seen: set[Digest] = set()
    todo = list(roots)
    while todo:
        digest = todo.pop()
        if digest in seen:
            continue
        seen.add(digest)
        raw = read_blob(digest)
        doc = load_json_object(raw, f"manifest {digest}")
        if doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
            todo.extend(d.digest for d in Index.parse(raw).manifests)
            continue
        manifest = Manifest.parse(raw)
        seen.add(manifest.config.digest)
        seen.update(d.digest for d in manifest.layers)
    return seen


def _try_lock(path: Path) -> bool:
    """True if nobody holds a flock on ``path`` (so its writer is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


STALE_AFTER = 3600.0


def _stale(path: Path) -> bool:
    try:
        return time.time() - path.lstat().st_mtime > STALE_AFTER
    except FileNotFoundError:
        return False


def sweep_temp(tmp_dir: Path, report: GcReport) -> None:
    """Remove temp files and dirs whose writer has exited (flock no longer held)."""
    for entry in sorted(tmp_dir.iterdir()):
        if entry.name.endswith(".inuse"):
            continue
        guard = Path(f"{entry}.inuse")
        if entry.is_dir() and not entry.is_symlink():
            if guard.exists() and not _try_lock(guard):
                continue
            size = tree_size(entry)
            try:
                force_rmtree(entry)
            except OSError:
                report.undeletable.append(entry)  # another uid's files: say so, go on
                continue
            report.reclaimed += size
            with contextlib.suppress(FileNotFoundError):
                guard.unlink()
        elif entry.name.startswith("blob-") and _try_lock(entry):
            report.reclaimed += entry.lstat().st_size
            entry.unlink()
        elif not entry.name.startswith("blob-") and _stale(entry):
            # atomic_write temp files (index.json, build cache entries) of a
            # killed process; a live writer renames its file within moments.
            report.reclaimed += entry.lstat().st_size
            entry.unlink()
        else:
            continue
        report.temp_entries += 1
    for guard in tmp_dir.glob("*.inuse"):
        if not Path(str(guard)[:-len(".inuse")]).exists() and _try_lock(guard):
            with contextlib.suppress(FileNotFoundError):
                guard.unlink()


def sweep_blobs(blobs_dir: Path, keep: set[Digest], report: GcReport) -> None:
    for path in blobs_dir.iterdir():
        name = f"sha256:{path.name}"
        if not is_digest(name) or name in keep:
            continue
        report.reclaimed += path.stat().st_size
        path.unlink()
        report.blobs.append(Digest(name))


def sweep_layer_dirs(layers_dir: Path, tmp_dir: Path, keep: set[Digest],
                     report: GcReport) -> None:
    """Remove unpacked layers no image uses; renamed away first, so a half-deleted
    layer is never visible under its diff_id."""
    for path in sorted(layers_dir.iterdir()):
        name = f"sha256:{path.name}"
        if is_digest(name) and name in keep:
            continue
        doomed = tmp_dir / f"gc-layer-{path.name}"
        try:
            os.rename(path, doomed)
        except OSError as exc:
            raise StoreError(f"cannot remove unpacked layer {path}: {exc.strerror}") from exc
        report.reclaimed += tree_size(doomed)
        try:
            force_rmtree(doomed)
        except PermissionError as exc:
            raise StoreError(f"cannot remove unpacked layer {doomed}: {exc}",
                             hint="files owned by another uid need "
                                  "'rootless unshare rm -rf' or the owner") from exc
        if is_digest(name):
            report.layer_dirs.append(Digest(name))
