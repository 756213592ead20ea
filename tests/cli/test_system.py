"""system df and system prune through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.helpers import Rootless


def _df(rootless: Rootless) -> dict[str, dict[str, str]]:
    lines = rootless("system", "df", "--format", "json").stdout.splitlines()
    return {doc["Type"]: doc for doc in map(json.loads, lines)}


def test_df_counts_a_shared_layer_once(rootless: Rootless, store_root: Path,
                                       busybox_tar: Path) -> None:
    rootless("import", "-c", "CMD sh", busybox_tar, "one")
    rootless("import", "-c", "CMD ls", busybox_tar, "two")
    blobs = sorted((store_root / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    # One layer blob, two configs, two manifests: the layer is stored once.
    assert len(blobs) == 5
    layer_size = blobs[-1].stat().st_size
    assert sum(b.stat().st_size for b in blobs[:-1]) < 2000

    out = rootless("system", "df").stdout.splitlines()
    assert out[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split()[0] for line in out[1:]] == ["Images", "Containers", "Local", "Build"]
    usage = _df(rootless)
    assert usage["Images"]["TotalCount"] == "2" and usage["Images"]["Active"] == "0"
    total_mb = float(usage["Images"]["Size"].removesuffix("MB"))
    assert abs(total_mb - layer_size / 1e6) < 0.01, (usage, layer_size)
    assert usage["Images"]["Reclaimable"].endswith("(100%)")
    assert usage["Containers"]["TotalCount"] == "0"

    verbose = rootless("system", "df", "-v").stdout
    rows = [line.split() for line in verbose.splitlines() if line.startswith(("one", "two"))]
    assert len(rows) == 2
    for row in rows:  # ... SIZE, SHARED SIZE, UNIQUE SIZE, CONTAINERS
        assert row[-3].endswith("MB")  # the layer, shared by both
        assert row[-2].endswith("B") and not row[-2].endswith(("kB", "MB"))  # config+manifest
        assert row[-1] == "0"


def test_df_counts_containers_and_build_cache(rootless: Rootless, store_root: Path,
                                              busybox_tar: Path) -> None:
    from rootless.containers import Container

    image_id = rootless("import", busybox_tar, "busybox").stdout.strip()
    for cid, running in (("a" * 64, True), ("b" * 64, False)):
        directory = store_root / "containers" / cid
        (directory / "upper").mkdir(parents=True)
        (directory / "upper" / "file").write_bytes(b"x" * 1000)
        container = Container(directory, {"Id": cid, "Image": image_id,
                                          "State": {"Running": False}})
        container.save()
        if running:  # this test process plays the one waiting for the container
            container.mark_running(os.getpid(), os.getpid())
    cache = store_root / "buildcache" / "entries"
    cache.mkdir(parents=True)
    (cache / ("c" * 64 + ".json")).write_text(json.dumps({"config": {}, "layers": []}))
    usage = _df(rootless)
    assert usage["Images"]["Active"] == "1" and usage["Images"]["Reclaimable"] == "0B (0%)"
    assert usage["Containers"]["TotalCount"] == "2" and usage["Containers"]["Active"] == "1"
    assert usage["Build Cache"]["TotalCount"] == "1"

    out = rootless("system", "prune", "-a", "-f").stdout
    assert "Deleted Containers:\n" + "b" * 64 in out
    assert "Total reclaimed space:" in out
    assert [p.name for p in (store_root / "containers").iterdir()] == ["a" * 64]
    assert rootless("images", "-q").stdout.strip() == image_id[7:19]  # still in use
    assert list(cache.iterdir()) == []


def test_system_prune_all_empties_the_store(rootless: Rootless, store_root: Path,
                                            busybox_tar: Path) -> None:
    rootless("import", busybox_tar, "busybox")
    rootless("import", "-c", "CMD ls", busybox_tar, "other")
    # An unpacked layer with a directory its owner cannot write, as distro rootfs have.
    [info] = json.loads(rootless("image", "inspect", "busybox").stdout)
    layer = store_root / "layers" / "sha256" / info["RootFS"]["Layers"][0][7:]
    (layer / "usr" / "locked").mkdir(parents=True)
    (layer / "usr" / "locked" / "f").write_text("x")
    (layer / "usr" / "locked").chmod(0o000)
    (layer / "usr").chmod(0o555)
    assert "WARNING! This will remove" in rootless("system", "prune", "-a", input="").stdout
    assert rootless("images", "-q").stdout != ""
    out = rootless("system", "prune", "-a", "-f").stdout
    assert out.count("deleted: sha256:") == 2
    assert rootless("images", "-q").stdout == ""
    for sub in ("blobs/sha256", "layers/sha256", "tmp"):
        assert list((store_root / sub).iterdir()) == [], sub
    assert _df(rootless)["Images"]["Size"] == "0B"
