"""The store's contracts: idempotent, atomic, verified writes; tags; resolve; gc."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from rootless.errors import (
    BlobNotFound,
    DigestMismatch,
    ImageNotFound,
    LayerError,
    ReferenceError_,
    StoreError,
)
from rootless.oci.digest import sha256_of
from rootless.oci.model import DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, LayerInfo
from rootless.reference import ImageReference
from rootless.store import Store
from tests.helpers import tar_bytes


def ref(text: str) -> ImageReference:
    return ImageReference.parse(text)


def small_tar(files: dict[str, bytes]) -> bytes:
    return tar_bytes(dict(files))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store")


def commit(store: Store, layers: list[LayerInfo], tags: list[str] = (),  # type: ignore[assignment]
           cmd: str = "sh") -> object:
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": [cmd]},
              "created": "2024-01-01T00:00:00Z"}
    return store.commit_image(config, layers, [ref(t) for t in tags])


def test_open_creates_the_oci_layout(tmp_path: Path) -> None:
    root = tmp_path / "s"
    Store.open(root)
    Store.open(root)  # idempotent
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads((root / "index.json").read_text())["manifests"] == []
    for sub in ("blobs/sha256", "tmp", "layers/sha256", "containers"):
        assert (root / sub).is_dir()


def test_put_blob_is_idempotent_and_verified(store: Store) -> None:
    d1 = store.put_blob(b"hello")
    d2 = store.put_blob(io.BytesIO(b"hello"), expected=str(sha256_of(b"hello")))
    assert d1.digest == d2.digest == sha256_of(b"hello") and d1.size == 5
    assert store.blob_path(d1.digest).read_bytes() == b"hello"
    assert store.read_blob(d1.digest) == b"hello"
    with pytest.raises(DigestMismatch):
        store.put_blob(b"other", expected=str(sha256_of(b"hello!")))
    assert not store.has_blob(sha256_of(b"other"))
    assert list(store.tmp_dir.iterdir()) == []


def test_blob_writer_discards_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError), store.blob_writer() as writer:
        writer.write(b"partial")
        raise RuntimeError("download failed")
    assert not store.has_blob(sha256_of(b"partial"))
    assert list(store.tmp_dir.iterdir()) == []
    with store.blob_writer(str(sha256_of(b"ab")), 2) as writer:
        writer.write(b"a")
        writer.write(b"b")
    assert writer.digest == sha256_of(b"ab") and store.has_blob(writer.digest)


def test_corrupt_blob_is_detected_on_read(store: Store) -> None:
    desc = store.put_blob(b"{}")
    path = store.blob_path(desc.digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"[]")
    with pytest.raises(DigestMismatch, match="corrupt"):
        store.read_blob(desc.digest)
    with pytest.raises(BlobNotFound):
        store.open_blob(sha256_of(b"missing"))


def test_put_layer_is_deterministic_and_hashes_both_forms(store: Store) -> None:
    data = small_tar({"a": b"x" * 10000, "b/c": b"y"})
    one = store.put_layer(io.BytesIO(data))
    two = store.put_layer(io.BytesIO(data))
    assert one == two
    assert one.diff_id == sha256_of(data) and one.uncompressed_size == len(data)
    assert one.digest == sha256_of(store.blob_path(one.digest).read_bytes())
    assert store.blob_path(one.digest).read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.parametrize("data", [b"", b"not a tar at all" * 64])
def test_put_layer_refuses_non_tar(store: Store, data: bytes) -> None:
    with pytest.raises(LayerError):
        store.put_layer(io.BytesIO(data))
    assert list(store.blobs_dir.iterdir()) == [] and list(store.tmp_dir.iterdir()) == []


def test_put_layer_refuses_truncated_tar(store: Store) -> None:
    data = small_tar({"a": b"x" * 100000})
    with pytest.raises(LayerError, match="truncated"):
        store.put_layer(io.BytesIO(data[:50000]))
    assert list(store.blobs_dir.iterdir()) == []


def test_commit_tag_resolve(store: Store) -> None:
    layer = store.put_layer(io.BytesIO(small_tar({"f": b"1"})))
    image = commit(store, [layer], ["app:1"])
    assert image.tags == (ref("app:1"),)
    assert image.diff_ids == (layer.diff_id,) and image.layers[0].digest == layer.digest
    assert image.image_id == image.config_digest == sha256_of(image.config_bytes)
    assert image.config["rootfs"]["diff_ids"] == [layer.diff_id]
    for name in ("app:1", "docker.io/library/app:1", image.image_id, image.short_id,
                 image.image_id.hex[:5], f"app@{image.manifest_digest}"):
        assert store.resolve(name).manifest_digest == image.manifest_digest, name
    with pytest.raises(ImageNotFound, match="No such image: app:2"):
        store.resolve("app:2")
    with pytest.raises(ReferenceError_):
        store.resolve("Not Valid")
    store.tag(image, ref("other/app"))
    assert {t.familiar for t in store.resolve("app:1").tags} == {"app:1", "other/app:latest"}
    with pytest.raises(StoreError, match="digest"):
        store.tag(image, ref(f"app@{image.manifest_digest}"))


def test_same_content_same_image(store: Store) -> None:
    layer = store.put_layer(io.BytesIO(small_tar({"f": b"1"})))
    a = commit(store, [layer], ["a"])
    b = commit(store, [layer], ["b"])
    assert a.manifest_digest == b.manifest_digest
    assert len(store.images()) == 1 and len(store.images()[0].tags) == 2


def test_retag_leaves_old_image_dangling(store: Store) -> None:
    layer = store.put_layer(io.BytesIO(small_tar({"f": b"1"})))
    old = commit(store, [layer], ["app"], cmd="old")
    new = commit(store, [layer], ["app"], cmd="new")
    images = {i.image_id: i for i in store.images()}
    assert images[new.image_id].tags == (ref("app"),)
    assert images[old.image_id].dangling
    assert store.resolve("app").image_id == new.image_id


def test_untag_and_remove(store: Store) -> None:
    layer = store.put_layer(io.BytesIO(small_tar({"f": b"1"})))
    image = commit(store, [layer], ["a", "b"])
    assert store.untag(ref("a")).tags == (ref("b"),)
    assert store.untag(ref("b")).dangling
    assert [i.image_id for i in store.images()] == [image.image_id]
    with pytest.raises(ImageNotFound):
        store.untag(ref("a"))
    store.remove_image(image)
    assert store.images() == []


def test_add_manifest_keeps_docker_schema2_bytes(store: Store) -> None:
    layer = store.put_layer(io.BytesIO(small_tar({"f": b"1"})))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}).encode()
    cfg = store.put_blob(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": cfg.digest, "size": cfg.size},
        "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": layer.digest, "size": layer.size}],
    }, indent=3).encode()
    image = store.add_manifest(manifest, [ref("pulled:1")])
    assert image.manifest_digest == sha256_of(manifest)
    assert image.media_type == DOCKER_MANIFEST and image.image_id == cfg.digest
    assert store.resolve("pulled:1").manifest_bytes == manifest


def test_add_manifest_needs_its_blobs(store: Store) -> None:
    cfg = store.put_blob(b'{"rootfs": {"type": "layers", "diff_ids": []}}')
    missing = sha256_of(b"layer")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": cfg.digest, "size": cfg.size},
        "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": missing, "size": 5}],
    }).encode()
    with pytest.raises(BlobNotFound):
        store.add_manifest(manifest, [ref("x")])
    assert store.images() == []


def test_gc_keeps_shared_blobs_and_drops_the_rest(store: Store) -> None:
    base = store.put_layer(io.BytesIO(small_tar({"base": b"b" * 5000})))
    top = store.put_layer(io.BytesIO(small_tar({"top": b"t"})))
    one = commit(store, [base], ["one"])
    two = commit(store, [base, top], ["two"])
    store.layer_dir(base.diff_id).mkdir()
    (store.layer_dir(base.diff_id) / "ro").mkdir(mode=0o555)
    store.layer_dir(top.diff_id).mkdir()
    blobs_before = {p.name for p in store.blobs_dir.iterdir()}
    assert len(blobs_before) == 6  # 2 layers + 2 configs + 2 manifests: the base once
    assert store.gc().blobs == []
    store.remove_image(two)
    report = store.gc()
    assert set(report.blobs) == {top.digest, two.config_digest, two.manifest_digest}
    assert report.layer_dirs == [top.diff_id]
    assert store.layer_dir(base.diff_id).is_dir() and not store.layer_dir(top.diff_id).exists()
    assert store.resolve("one").image_id == one.image_id
    store.remove_image(one)
    store.gc()
    assert list(store.blobs_dir.iterdir()) == [] and list(store.layers_dir.iterdir()) == []


def test_gc_sweeps_abandoned_temp_files_only(store: Store) -> None:
    (store.tmp_dir / "blob-abandoned").write_bytes(b"half")
    with store.blob_writer() as writer:
        writer.write(b"in progress")
        store.gc()
        assert writer.tmp_path.exists()
        with store.temp_dir() as scratch:
            (scratch / "f").write_text("x")
            store.gc()
            assert (scratch / "f").exists()
    assert not (store.tmp_dir / "blob-abandoned").exists()
    fresh, stale = store.tmp_dir / ".index.json.fresh", store.tmp_dir / ".index.json.stale"
    fresh.write_text("{}")
    stale.write_text("{}")
    os.utime(stale, (0, 0))
    store.gc()
    assert fresh.exists() and not stale.exists()


def test_lock_excludes_other_threads(store: Store) -> None:
    import threading

    inside: list[str] = []
    started = threading.Event()

    def worker() -> None:
        started.set()
        with store.lock():
            inside.append("thread")

    thread = threading.Thread(target=worker)
    with store.lock():
        thread.start()
        assert started.wait(10)
        thread.join(0.1)  # it must still be waiting for the lock we hold
        inside.append("main")
    thread.join(10)
    assert inside == ["main", "thread"]


def test_containers_using(store: Store) -> None:
    record = store.containers_dir / "c1" / "container.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"Id": "c1", "Image": "sha256:" + "a" * 64}))
    assert store.containers_using("sha256:" + "a" * 64) == ["c1"]
    assert store.containers_using("sha256:" + "b" * 64) == []


def test_lock_is_reentrant_and_lease_blocks_nothing_else(store: Store) -> None:
    with store.lease(), store.lock(), store.lock():
        store.put_blob(b"x")
    with store.lease(), pytest.raises(StoreError, match="lease"):
        store.gc()


def test_gc_does_not_collect_under_an_open_lease(tmp_path: Path) -> None:
    writer = Store.open(tmp_path / "s")
    collector = Store.open(tmp_path / "s")  # another process, as far as flock is concerned
    with writer.lease():
        desc = writer.put_blob(b"not referenced yet")
        assert collector.gc(wait=False).skipped
        assert writer.has_blob(desc.digest)
    report = collector.gc(wait=False)
    assert not report.skipped and report.blobs == [desc.digest]


def test_digest_references_are_not_tags(store: Store) -> None:
    layer = store.put_layer(io.BytesIO(small_tar({"f": b"1"})))
    image = commit(store, [layer], [])
    by_digest = ref(f"app:1@{image.manifest_digest}")
    digest_only = ref(f"x@{image.manifest_digest}")
    tagged = store.add_manifest(image.manifest_bytes, [by_digest, digest_only])
    assert tagged.tags == (ref("app:1"),)


def test_lease_inside_lock_cannot_deadlock_with_gc(tmp_path: Path) -> None:
    import threading

    writer = Store.open(tmp_path / "s")
    collector = Store.open(tmp_path / "s")
    done = threading.Event()

    def collect() -> None:
        collector.gc()  # waits for writer's store lock, holding gc.lock
        done.set()

    thread = threading.Thread(target=collect)
    with writer.lock():
        thread.start()
        # A lease taken inside the lock must not wait for gc.lock held by the collector.
        layer = writer.put_layer(io.BytesIO(small_tar({"f": b"1"})))
        commit(writer, [layer], ["safe"])
    thread.join(30)
    assert done.is_set()
    assert writer.resolve("safe").diff_ids == (layer.diff_id,)


def test_layer_sizes_are_uncompressed(store: Store, tmp_path: Path) -> None:
    from rootless.oci.model import OCI_LAYER, OCI_LAYER_GZIP, Descriptor
    from rootless.store.sizes import uncompressed_size

    data = small_tar({"a": b"x" * 300000, "b": os.urandom(5000)})
    layer = store.put_layer(io.BytesIO(data))
    assert store.layer_size(layer.descriptor()) == len(data) == layer.uncompressed_size
    plain = store.put_blob(data)
    assert store.layer_size(Descriptor(OCI_LAYER, plain.digest, plain.size)) == len(data)
    # Past 4 GiB ISIZE wraps; a figure too small for the blob's size is raised.
    fake = tmp_path / "big.gz"
    fake.write_bytes(b"\x1f\x8b" + bytes(8 << 20) + (1000).to_bytes(4, "little"))
    assert uncompressed_size(fake, OCI_LAYER_GZIP) == (1 << 32) + 1000
