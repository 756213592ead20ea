"""The on-disk records (owners, locked modes, devices, stashed xattrs) and what they present."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

from rootless.oci.layer_diff import diff
from rootless.oci.layer_ondisk import Override, presented, read_override, write_override
from tests.oci.layertars import extract_into


def test_device_nodes_are_kept_as_metadata(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("dev/null")
        info.type, info.devmajor, info.devminor, info.mode = tarfile.CHRTYPE, 1, 3, 0o666
        tar.addfile(info)
    dest = extract_into(tmp_path, buf.getvalue())
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
    dest = extract_into(tmp_path, buf.getvalue())
    assert os.stat(dest / "ro").st_mode & 0o700 == 0o700  # the owner can always delete it
    assert read_override(dest / "ro") == Override(0, 0, 0o555)
    assert read_override(dest / "home/user") == Override(1000, 1000, 0o700)
    out = io.BytesIO()
    diff(dest, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        got = {m.name: (m.mode, m.uid, m.gid) for m in tar.getmembers()}
    assert got == {"home": (0o755, 0, 0), "home/user": (0o700, 1000, 1000),
                   "ro": (0o555, 0, 0), "ro/secret": (0o000, 0, 0), "suid": (0o4755, 0, 0)}


def test_privileged_xattrs_survive_as_records(tmp_path: Path) -> None:
    capability = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("bin/ping")
        info.size, info.mode = 1, 0o755
        info.pax_headers = {"SCHILY.xattr.security.capability":
                            capability.decode("utf-8", "surrogateescape")}
        tar.addfile(info, io.BytesIO(b"p"))
    dest = extract_into(tmp_path, buf.getvalue())
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
    dest = extract_into(tmp_path, buf.getvalue())
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
