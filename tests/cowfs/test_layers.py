"""Unpacked layers: made once, atomically, from blobs whose content is their diff_id;
and which of them need the fuse driver to show their owners."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from rootless.cowfs.layers import ensure_unpacked, has_foreign_owners, unpack_layer
from rootless.errors import LayerError
from rootless.oci.layer import extract
from rootless.store import Store
from tests.helpers import Rootless, tar_bytes


def _layer(tmp_path: Path, name: str, entries: list[tuple[str, int, bytes]]) -> Path:
    """Unpack a layer of (path, uid, type) entries; files are empty."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, uid, kind in entries:
            info = tarfile.TarInfo(path)
            info.type, info.uid, info.gid, info.mode = kind, uid, uid, 0o755
            if kind == tarfile.SYMTYPE:
                info.linkname = "target"
            tar.addfile(info, io.BytesIO(b""))
    dest = tmp_path / name
    buf.seek(0)
    extract(buf, dest)
    return dest


def test_root_only_layers_keep_the_kernel_driver(tmp_path: Path) -> None:
    plain = _layer(tmp_path, "plain", [("etc", 0, tarfile.DIRTYPE), ("etc/f", 0, tarfile.REGTYPE),
                                       ("etc/l", 0, tarfile.SYMTYPE)])
    assert has_foreign_owners([plain]) is False
    assert has_foreign_owners([]) is False


def test_any_non_root_owner_needs_fuse_and_the_answer_is_kept(tmp_path: Path) -> None:
    plain = _layer(tmp_path, "plain", [("a", 0, tarfile.REGTYPE)])
    deep = _layer(tmp_path, "deep", [("x", 0, tarfile.DIRTYPE), ("x/y", 0, tarfile.DIRTYPE),
                                     ("x/y/owned", 65534, tarfile.REGTYPE)])
    link = _layer(tmp_path, "link", [("d", 0, tarfile.DIRTYPE), ("d/l", 7, tarfile.SYMTYPE)])
    assert has_foreign_owners([plain, deep]) is True
    assert has_foreign_owners([link]) is True
    # The scan is cached on the layer's root: removing the evidence does not change it.
    os.remove(deep / "x" / "y" / "owned")
    assert has_foreign_owners([deep]) is True


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_ensure_unpacked_extracts_once_and_atomically(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    plain = tar_bytes({"hello": b"hi"})
    good = store.put_layer(io.BytesIO(plain))
    assert good.diff_id == _sha256(plain)
    [path] = ensure_unpacked(store, [good])
    assert (path / "hello").read_bytes() == b"hi"
    assert ensure_unpacked(store, [good]) == [path]
    cut = store.put_blob(gzip.compress(plain)[:40])
    with pytest.raises(LayerError, match=cut.digest):
        unpack_layer(store, cut.digest, _sha256(b"whatever"))
    assert os.listdir(store.layers_dir) == [good.diff_id.hex]
    assert os.listdir(store.tmp_dir) == []


def test_unpack_refuses_a_blob_that_is_not_its_diff_id(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    layer = store.put_layer(io.BytesIO(tar_bytes({"etc/motd": b"tampered\n"})))
    claimed = _sha256(tar_bytes({"etc/motd": b"original\n"}))
    with pytest.raises(LayerError) as info:
        unpack_layer(store, layer.digest, claimed)
    message = str(info.value)
    assert layer.digest in message and claimed in message and layer.diff_id in message
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.tmp_dir) == []
    assert store.has_blob(layer.digest)  # the store is otherwise as it was
    # The same blob under its true diff_id unpacks.
    path = unpack_layer(store, layer.digest, layer.diff_id)
    assert (path / "etc/motd").read_bytes() == b"tampered\n"


def _oci_archive(dest: Path, layer_tar: bytes, diff_id: str, ref: str) -> Path:
    """An oci-archive of one image whose config names DIFF_ID for its one layer."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict[str, object]:
        blobs[_sha256(data)] = data
        return {"digest": _sha256(data), "size": len(data)}

    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             **blob(gzip.compress(layer_tar, mtime=0))}
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode())}
    manifest = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer]}).encode())}
    manifest["annotations"] = {"org.opencontainers.image.ref.name": ref}
    files: dict[str, bytes | None] = {
        "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
        "index.json": json.dumps({"schemaVersion": 2, "manifests": [manifest]}).encode(),
        "blobs": None, "blobs/sha256": None}
    files.update({f"blobs/sha256/{d[7:]}": data for d, data in blobs.items()})
    dest.write_bytes(tar_bytes(files))
    return dest


def test_run_and_build_refuse_an_image_whose_layer_is_not_its_diff_id(
        rootless: Rootless, store_root: Path, tmp_path: Path) -> None:
    layer_tar = tar_bytes({"etc": None, "etc/motd": b"tampered\n"})
    claimed = _sha256(tar_bytes({"etc": None, "etc/motd": b"original\n"}))
    archive = _oci_archive(tmp_path / "bad.tar", layer_tar, claimed, "localhost/bad:1")
    rootless("load", "-i", archive)
    layer_digest = _sha256(gzip.compress(layer_tar, mtime=0))
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM localhost/bad:1\nRUN true\n")
    for argv in (("run", "--rm", "localhost/bad:1", "/bin/sh", "-c", "true"),
                 ("build", "-q", "-t", "derived", str(context))):
        res = rootless(*argv, check=False)
        assert res.returncode != 0, argv
        assert "Traceback" not in res.stderr, res.stderr
        lines = res.stderr.strip().splitlines()
        assert lines[0].startswith("rootless: "), res.stderr
        assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), res.stderr
        assert layer_digest in lines[0] and claimed in lines[0] and _sha256(layer_tar) in lines[0]
        layers = store_root / "layers" / "sha256"
        assert not layers.exists() or os.listdir(layers) == [], argv
    assert rootless("images", "-q").stdout.strip()  # the image itself is still there
