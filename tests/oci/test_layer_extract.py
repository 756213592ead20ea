"""Layer tar → on-disk form: whiteouts, hostile entries, broken streams, the diff_id."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from pathlib import Path

import pytest

from rootless.errors import LayerError
from rootless.oci.layer_extract import extract
from rootless.oci.layer_ondisk import is_opaque, is_whiteout
from tests.oci.layertars import extract_into, tar_of


def test_whiteouts_become_overlay_form(tmp_path: Path) -> None:
    dest = extract_into(tmp_path, tar_of(("etc", None), ("etc/.wh.passwd", b""),
                                         ("usr", None), ("usr/.wh..wh..opq", b""),
                                         ("usr/keep", b"k"), (".wh.root", b"")))
    assert is_whiteout(os.lstat(dest / "etc/passwd"))
    assert is_whiteout(os.lstat(dest / "root"))
    assert is_opaque(dest / "usr")
    assert (dest / "usr/keep").read_bytes() == b"k"
    assert not any(name.startswith(".wh.") for _, _, files in os.walk(dest) for name in files)


def test_whiteouts_in_an_opaque_directory_are_dropped(tmp_path: Path) -> None:
    # kernel overlayfs would show them where only this layer provides the directory
    dest = extract_into(tmp_path, tar_of(("d/.wh.a", b""), ("d/.wh..wh..opq", b""),
                                         ("d/.wh.b", b"")))
    assert is_opaque(dest / "d") and os.listdir(dest / "d") == []


def test_whiteout_in_missing_parent_creates_it(tmp_path: Path) -> None:
    dest = extract_into(tmp_path, tar_of(("a/b/.wh.c", b"")))
    assert (dest / "a/b").is_dir()
    assert is_whiteout(os.lstat(dest / "a/b/c"))


@pytest.mark.parametrize("entries, reason", [
    ((("/etc/passwd", b"x"),), "absolute path"),
    ((("../evil", b"x"),), "'..'"),
    ((("a/../../evil", b"x"),), "'..'"),
    ((("link", "->/etc"), ("link/passwd", b"x")), "symbolic link"),
    ((("link", "->.."), ("link/evil", b"x")), "symbolic link"),
    ((("hard", "=>../../etc/passwd"),), "'..'"),
    ((("hard", "=>/etc/passwd"),), "absolute path"),
    ((("hard", "=>missing"),), "not earlier in this layer"),
])
def test_hostile_entries_are_refused(tmp_path: Path, entries: tuple[tuple[str, str | bytes],
                                                                     ...], reason: str) -> None:
    with pytest.raises(LayerError, match=reason) as info:
        extract_into(tmp_path, tar_of(*entries), name="evil-layer")
    assert "evil-layer" in str(info.value)
    assert not (tmp_path / "evil-layer").exists()
    assert not (tmp_path / "evil").exists()


def test_symlinks_may_point_anywhere(tmp_path: Path) -> None:
    dest = extract_into(tmp_path, tar_of(("bin", "->usr/bin"), ("abs", "->/etc/passwd")))
    assert os.readlink(dest / "bin") == "usr/bin"
    assert os.readlink(dest / "abs") == "/etc/passwd"


def test_hard_links_inside_the_layer(tmp_path: Path) -> None:
    dest = extract_into(tmp_path, tar_of(("a", b"data"), ("b", "=>a")))
    assert os.lstat(dest / "a").st_ino == os.lstat(dest / "b").st_ino


@pytest.mark.parametrize("length", [600, 3584, 3584 + 100, 3584 + 512])
def test_truncated_stream_is_an_error_and_leaves_nothing(tmp_path: Path, length: int) -> None:
    # member a: header + 3072 bytes of data; member b's header starts at byte 3584
    data = tar_of(("a", b"x" * 3000), ("b", b"y"))
    with pytest.raises(LayerError, match="layer cut"):
        extract_into(tmp_path, data[:length], name="cut")
    assert not (tmp_path / "cut").exists()


def test_truncated_gzip_is_an_error(tmp_path: Path) -> None:
    data = gzip.compress(tar_of(("a", os.urandom(50000))))
    with pytest.raises(LayerError, match="gz"):
        extract_into(tmp_path, data[: len(data) // 2], name="gz")
    assert not (tmp_path / "gz").exists()


@pytest.mark.parametrize("data", [b"", b"this is not a tar archive at all" * 40])
def test_non_tar_is_an_error(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(LayerError, match="junk"):
        extract_into(tmp_path, data, name="junk")
    assert not (tmp_path / "junk").exists()


def test_gzip_layer_is_detected(tmp_path: Path) -> None:
    dest = extract_into(tmp_path, gzip.compress(tar_of(("f", b"hello"))))
    assert (dest / "f").read_bytes() == b"hello"


def test_zstd_layer_is_detected(tmp_path: Path) -> None:
    import shutil
    import subprocess
    if shutil.which("zstd") is None:
        pytest.skip("zstd is not installed")
    packed = subprocess.run(["zstd", "-q", "-c"], input=tar_of(("f", b"z")), capture_output=True,
                            check=True).stdout
    assert (extract_into(tmp_path, packed) / "f").read_bytes() == b"z"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("compress", [False, True])
def test_the_diff_id_covers_the_whole_decompressed_stream(tmp_path: Path,
                                                          compress: bool) -> None:
    # tarfile stops at the first end-of-archive block; what follows (the second
    # block, record padding, more zeros) is part of the tar the diff_id names.
    plain = tar_of(("f", b"data")) + bytes(64 * 1024)
    data = gzip.compress(plain) if compress else plain
    extract(io.BytesIO(data), tmp_path / "ok", name="padded", diff_id=_sha256(plain))
    assert (tmp_path / "ok" / "f").read_bytes() == b"data"
    tar_end = len(tar_of(("f", b"data")))
    with pytest.raises(LayerError, match="diff_id"):
        extract(io.BytesIO(data), tmp_path / "short", name="padded",
                diff_id=_sha256(plain[:tar_end]))
    assert not (tmp_path / "short").exists()


def test_content_that_is_not_the_diff_id_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    expected, other = tar_of(("f", b"expected")), tar_of(("f", b"tampered"))
    with pytest.raises(LayerError) as info:
        extract(io.BytesIO(gzip.compress(other)), tmp_path / "l", name="sha256:blob",
                diff_id=_sha256(expected))
    message = str(info.value)
    assert "sha256:blob" in message
    assert _sha256(other) in message and _sha256(expected) in message
    assert "\n" not in message and info.value.hint
    assert not (tmp_path / "l").exists()


def test_zstd_layer_is_verified_too(tmp_path: Path) -> None:
    import shutil
    import subprocess
    if shutil.which("zstd") is None:
        pytest.skip("zstd is not installed")
    plain = tar_of(("f", b"z"))
    packed = subprocess.run(["zstd", "-q", "-c"], input=plain, capture_output=True,
                            check=True).stdout
    extract(io.BytesIO(packed), tmp_path / "ok", diff_id=_sha256(plain))
    with pytest.raises(LayerError, match="diff_id"):
        extract(io.BytesIO(packed), tmp_path / "bad", diff_id=_sha256(plain + b"x"))
    assert not (tmp_path / "bad").exists()
