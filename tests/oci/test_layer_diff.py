"""Upper directory → OCI layer tar: exact entries, determinism, xattrs, round trips."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from rootless.oci.layer_diff import diff
from rootless.oci.layer_ondisk import OPAQUE_XATTR, is_whiteout, make_opaque, make_whiteout
from tests.oci.layertars import extract_into, member_names


def _upper(tmp_path: Path) -> Path:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/hosts").write_text("127.0.0.1 localhost\n")
    make_whiteout(upper / "etc/shadow")
    (upper / "var/lib").mkdir(parents=True)
    make_opaque(upper / "var/lib")
    (upper / "var/lib/new").write_text("n")
    make_whiteout(upper / "var/lib/old")
    (upper / "link").symlink_to("etc/hosts")
    os.link(upper / "etc/hosts", upper / "hosts2")
    return upper


def test_diff_produces_exactly_the_expected_entries(tmp_path: Path) -> None:
    out = io.BytesIO()
    diff(_upper(tmp_path), out)
    assert member_names(out.getvalue()) == [
        "etc", "etc/hosts", "etc/.wh.shadow", "hosts2", "link", "var", "var/lib",
        "var/lib/.wh..wh..opq", "var/lib/new", "var/lib/.wh.old"]
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.getmember("hosts2").islnk()
        assert tar.getmember("hosts2").linkname == "etc/hosts"
        assert all(m.uid == 0 and m.gid == 0 for m in tar.getmembers())


def test_diff_is_deterministic_and_clamps_time(tmp_path: Path) -> None:
    upper = _upper(tmp_path)
    first, second = io.BytesIO(), io.BytesIO()
    diff(upper, first, epoch=1000)
    os.utime(upper / "etc/hosts", (2000, 2000))
    diff(upper, second, epoch=1000)
    assert first.getvalue() == second.getvalue()
    with tarfile.open(fileobj=io.BytesIO(first.getvalue())) as tar:
        assert {m.mtime for m in tar.getmembers()} == {1000}
    gz1, gz2 = io.BytesIO(), io.BytesIO()
    diff(upper, gz1, epoch=1000, compress=True)
    diff(upper, gz2, epoch=1000, compress=True)
    assert gz1.getvalue() == gz2.getvalue()


def test_diff_reads_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "42")
    out = io.BytesIO()
    diff(_upper(tmp_path), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert {m.mtime for m in tar.getmembers()} == {42}


def test_diff_limited_to_changed_paths(tmp_path: Path) -> None:
    out = io.BytesIO()
    diff(_upper(tmp_path), out, paths=["/var/lib/new"])
    assert member_names(out.getvalue()) == ["var", "var/lib", "var/lib/.wh..wh..opq", "var/lib/new"]


def test_round_trip_extract_diff_extract(tmp_path: Path) -> None:
    upper = _upper(tmp_path)
    os.unlink(upper / "var/lib/old")  # beside an opaque marker a whiteout is redundant
    out = io.BytesIO()
    diff(upper, out, epoch=5)
    again = extract_into(tmp_path, out.getvalue(), name="again")
    assert is_whiteout(os.lstat(again / "etc/shadow"))
    assert os.getxattr(again / "var/lib", OPAQUE_XATTR) == b"y"
    second = io.BytesIO()
    diff(again, second, epoch=5)
    assert second.getvalue() == out.getvalue()


def test_user_xattrs_are_exported_private_ones_not(tmp_path: Path) -> None:
    upper = tmp_path / "u"
    upper.mkdir()
    (upper / "f").write_text("x")
    os.setxattr(upper / "f", "user.mime", b"text/plain")
    os.setxattr(upper / "f", "user.overlay.origin", b"junk")
    out = io.BytesIO()
    diff(upper, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        headers = tar.getmember("f").pax_headers
    assert headers.get("SCHILY.xattr.user.mime") == "text/plain"
    assert not any("overlay" in key for key in headers)


def test_diff_leaves_sockets_out(tmp_path: Path) -> None:
    import socket
    upper = tmp_path / "u"
    upper.mkdir()
    (upper / "f").write_text("x")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(upper / "sock"))
        out = io.BytesIO()
        diff(upper, out)
    assert member_names(out.getvalue()) == ["f"]
