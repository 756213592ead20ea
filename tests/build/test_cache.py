"""Build cache bookkeeping: entries, cache-mount directories, pruning."""

from __future__ import annotations

from pathlib import Path

from rootless.build.cache import BuildCache, ImageState
from rootless.oci.digest import Digest
from rootless.oci.model import LayerInfo

LAYER = LayerInfo(Digest("sha256:" + "a" * 64), Digest("sha256:" + "b" * 64), 42)


def test_round_trip_and_blob_check(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "buildcache", tmp_path / "tmp")
    state = ImageState({"config": {"Env": ["A=1"]}}, (LAYER,))
    cache.put("sha256:" + "c" * 64, state)
    assert cache.get("sha256:" + "c" * 64) == state
    assert cache.get("sha256:" + "d" * 64) is None
    assert cache.get("sha256:" + "c" * 64, has_blob=lambda _d: False) is None
    assert cache.referenced_blobs() == {str(LAYER.digest)}


def test_prune_keeps_what_images_use_unless_all(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "buildcache", tmp_path / "tmp")
    cache.put("sha256:" + "1" * 64, ImageState({}, (LAYER,)))
    cache.put("sha256:" + "2" * 64, ImageState({}, ()))
    (cache.mount_dir("apt") / "pkg").write_text("x")
    report = cache.prune(keep_diff_ids={str(LAYER.diff_id)}, everything=False)
    assert report.entries == 0 and report.mounts == 0  # the empty-layer entry is in use too
    report = cache.prune(keep_diff_ids=set(), everything=False)
    assert report.entries == 1
    report = cache.prune(keep_diff_ids=set(), everything=True)
    assert report.entries == 1 and report.mounts == 1
    assert cache.usage() == (0, 0)


def test_cache_mount_dirs_are_per_id(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "buildcache", tmp_path / "tmp")
    assert cache.mount_dir("a") != cache.mount_dir("b")
    assert cache.mount_dir("a") == cache.mount_dir("a")
