"""Layer tars ⇄ unpacked directories: whiteouts, hostile entries, ownership, determinism."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from rootless.errors import LayerError
from rootless.oci.layer import (
    OPAQUE_XATTR,
    Override,
    diff,
    extract,
    is_opaque,
    is_whiteout,
    make_opaque,
    make_whiteout,
    presented,
    read_override,
    write_override,
)

Entry = Callable[[tarfile.TarFile], None]


def _tar(*entries: tuple[str, str | bytes | None], **kw: int) -> bytes:
    """A tar from (name, data) pairs: bytes → file, None → dir, "->target" → symlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = kw.get("mtime", 1700000000)
            info.uid = kw.get("uid", 0)
            info.gid = kw.get("gid", 0)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, str) and data.startswith("->"):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:]
                tar.addfile(info)
            elif isinstance(data, str) and data.startswith("=>"):
                info.type, info.linkname = tarfile.LNKTYPE, data[2:]
                tar.addfile(info)
            else:
                raw = data if isinstance(data, bytes) else data.encode()
                info.size, info.mode = len(raw), 0o644
                tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def _extract(tmp_path: Path, data: bytes, name: str = "l") -> Path:
    dest = tmp_path / name
    extract(io.BytesIO(data), dest, name=name)
    return dest


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def test_whiteouts_become_overlay_form(tmp_path: Path) -> None:
    dest = _extract(tmp_path, _tar(("etc", None), ("etc/.wh.passwd", b""),
                                   ("usr", None), ("usr/.wh..wh..opq", b""),
                                   ("usr/keep", b"k"), (".wh.root", b"")))
    assert is_whiteout(os.lstat(dest / "etc/passwd"))
    assert is_whiteout(os.lstat(dest / "root"))
    assert is_opaque(dest / "usr")
    assert (dest / "usr/keep").read_bytes() == b"k"
    assert not any(name.startswith(".wh.") for _, _, files in os.walk(dest) for name in files)


def test_whiteouts_in_an_opaque_directory_are_dropped(tmp_path: Path) -> None:
    # kernel overlayfs would show them where only this layer provides the directory
    dest = _extract(tmp_path, _tar(("d/.wh.a", b""), ("d/.wh..wh..opq", b""), ("d/.wh.b", b"")))
    assert is_opaque(dest / "d") and os.listdir(dest / "d") == []


def test_whiteout_in_missing_parent_creates_it(tmp_path: Path) -> None:
    dest = _extract(tmp_path, _tar(("a/b/.wh.c", b"")))
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
        _extract(tmp_path, _tar(*entries), name="evil-layer")
    assert "evil-layer" in str(info.value)
    assert not (tmp_path / "evil-layer").exists()
    assert not (tmp_path / "evil").exists()


def test_symlinks_may_point_anywhere(tmp_path: Path) -> None:
    dest = _extract(tmp_path, _tar(("bin", "->usr/bin"), ("abs", "->/etc/passwd")))
    assert os.readlink(dest / "bin") == "usr/bin"
    assert os.readlink(dest / "abs") == "/etc/passwd"


def test_hard_links_inside_the_layer(tmp_path: Path) -> None:
    dest = _extract(tmp_path, _tar(("a", b"data"), ("b", "=>a")))
    assert os.lstat(dest / "a").st_ino == os.lstat(dest / "b").st_ino


def test_device_nodes_are_kept_as_metadata(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("dev/null")
        info.type, info.devmajor, info.devminor, info.mode = tarfile.CHRTYPE, 1, 3, 0o666
        tar.addfile(info)
    dest = _extract(tmp_path, buf.getvalue())
    st = os.lstat(dest / "dev/null")
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    shown = presented(dest / "dev/null", st)
    assert shown.fmt == stat.S_IFCHR and shown.rdev == os.makedev(1, 3) and shown.mode == 0o666
    out = io.BytesIO()
    diff(dest, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        member = tar.getmember("dev/null")
        assert member.ischr() and (member.devmajor, member.devminor) == (1, 3)


def test_ownership_and_locked_modes_survive_round_trip(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, mode, uid in (("ro", tarfile.DIRTYPE, 0o555, 0),
                                      ("ro/secret", tarfile.REGTYPE, 0o000, 0),
                                      ("home", tarfile.DIRTYPE, 0o755, 0),
                                      ("home/user", tarfile.DIRTYPE, 0o700, 1000),
                                      ("suid", tarfile.REGTYPE, 0o4755, 0)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, uid, 1
            tar.addfile(info)
    dest = _extract(tmp_path, buf.getvalue())
    assert os.stat(dest / "ro").st_mode & 0o700 == 0o700  # the owner can always delete it
    assert read_override(dest / "ro") == Override(0, 0, 0o555)
    assert read_override(dest / "home/user") == Override(1000, 1000, 0o700)
    out = io.BytesIO()
    diff(dest, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        got = {m.name: (m.mode, m.uid, m.gid) for m in tar.getmembers()}
    assert got == {"home": (0o755, 0, 0), "home/user": (0o700, 1000, 1000),
                   "ro": (0o555, 0, 0), "ro/secret": (0o000, 0, 0), "suid": (0o4755, 0, 0)}


@pytest.mark.parametrize("length", [600, 3584, 3584 + 100, 3584 + 512])
def test_truncated_stream_is_an_error_and_leaves_nothing(tmp_path: Path, length: int) -> None:
    # member a: header + 3072 bytes of data; member b's header starts at byte 3584
    data = _tar(("a", b"x" * 3000), ("b", b"y"))
    with pytest.raises(LayerError, match="layer cut"):
        _extract(tmp_path, data[:length], name="cut")
    assert not (tmp_path / "cut").exists()


def test_truncated_gzip_is_an_error(tmp_path: Path) -> None:
    data = gzip.compress(_tar(("a", os.urandom(50000))))
    with pytest.raises(LayerError, match="gz"):
        _extract(tmp_path, data[: len(data) // 2], name="gz")
    assert not (tmp_path / "gz").exists()


@pytest.mark.parametrize("data", [b"", b"this is not a tar archive at all" * 40])
def test_non_tar_is_an_error(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(LayerError, match="junk"):
        _extract(tmp_path, data, name="junk")
    assert not (tmp_path / "junk").exists()


def test_gzip_layer_is_detected(tmp_path: Path) -> None:
    dest = _extract(tmp_path, gzip.compress(_tar(("f", b"hello"))))
    assert (dest / "f").read_bytes() == b"hello"


def test_zstd_layer_is_detected(tmp_path: Path) -> None:
    import shutil
    import subprocess
    if shutil.which("zstd") is None:
        pytest.skip("zstd is not installed")
    packed = subprocess.run(["zstd", "-q", "-c"], input=_tar(("f", b"z")), capture_output=True,
                            check=True).stdout
    assert (_extract(tmp_path, packed) / "f").read_bytes() == b"z"


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
    assert _names(out.getvalue()) == [
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
    assert _names(out.getvalue()) == ["var", "var/lib", "var/lib/.wh..wh..opq", "var/lib/new"]


def test_round_trip_extract_diff_extract(tmp_path: Path) -> None:
    upper = _upper(tmp_path)
    os.unlink(upper / "var/lib/old")  # beside an opaque marker a whiteout is redundant
    out = io.BytesIO()
    diff(upper, out, epoch=5)
    again = _extract(tmp_path, out.getvalue(), name="again")
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
    assert _names(out.getvalue()) == ["f"]


def test_privileged_xattrs_survive_as_records(tmp_path: Path) -> None:
    capability = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("bin/ping")
        info.size, info.mode = 1, 0o755
        info.pax_headers = {"SCHILY.xattr.security.capability":
                            capability.decode("utf-8", "surrogateescape")}
        tar.addfile(info, io.BytesIO(b"p"))
    dest = _extract(tmp_path, buf.getvalue())
    out = io.BytesIO()
    diff(dest, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        headers = tar.getmember("bin/ping").pax_headers
    value = headers["SCHILY.xattr.security.capability"]
    assert value.encode("utf-8", "surrogateescape") == capability
    assert not any("rootless" in key for key in headers)


def test_symlink_owners_are_recorded_on_their_directory(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        home = tarfile.TarInfo("home")
        home.type, home.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(home)
        for name, uid in (("home/rc", 1000), ("home/root-link", 0)):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.uid, info.gid = tarfile.SYMTYPE, "x", uid, uid
            tar.addfile(info)
    dest = _extract(tmp_path, buf.getvalue())
    out = io.BytesIO()
    diff(dest, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        owners = {m.name: (m.uid, m.gid) for m in tar.getmembers()}
    assert owners == {"home": (0, 0), "home/rc": (1000, 1000), "home/root-link": (0, 0)}


def test_write_override_on_a_symlink_records_its_owner(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("target")
    write_override(tmp_path / "link", Override(7, 8, 0o777))
    out = io.BytesIO()
    diff(tmp_path, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        link = tar.getmember("link")
    assert (link.uid, link.gid) == (7, 8)
