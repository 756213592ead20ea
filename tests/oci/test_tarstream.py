"""TarChecker accepts whole archives in any chunking and refuses cut or foreign ones."""

from __future__ import annotations

import io
import tarfile

import pytest

from rootless.errors import LayerError
from rootless.oci.tarstream import TarChecker


def _tar(fmt: int = tarfile.PAX_FORMAT, big_name: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for i, size in enumerate((0, 1, 511, 512, 513, 70000)):
            name = (f"d/{'n' * 150}-{i}" if big_name else f"f{i}")
            info = tarfile.TarInfo(name)
            info.size = size
            info.pax_headers = {"comment": "é" * i} if fmt == tarfile.PAX_FORMAT else {}
            tar.addfile(info, io.BytesIO(b"x" * size))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "f1"
        tar.addfile(link)
        d = tarfile.TarInfo("dir")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
    return buf.getvalue()


def _check(data: bytes, chunk: int) -> TarChecker:
    checker = TarChecker("t")
    for i in range(0, len(data), chunk):
        checker.feed(data[i:i + chunk])
    checker.finish()
    return checker


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("chunk", [1, 7, 512, 4096, 1 << 20])
def test_whole_archives_pass(fmt: int, chunk: int) -> None:
    data = _tar(fmt, big_name=fmt != tarfile.USTAR_FORMAT)
    assert _check(data, chunk).members == 8


def test_empty_archive_is_whole() -> None:
    buf = io.BytesIO()
    tarfile.open(fileobj=buf, mode="w").close()
    assert _check(buf.getvalue(), 512).members == 0


def _members_end(data: bytes) -> int:
    """Offset just after the last member's data: where the end marker starts."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        last = tar.getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


@pytest.mark.parametrize("cut", [100, 512, 1024, 1536, 5000, "end", "end-1", "end+100"])
def test_truncated_archives_fail(cut: int | str) -> None:
    data = _tar()
    end = _members_end(data)
    at = {"end": end, "end-1": end - 1, "end+100": end + 100}.get(str(cut), cut)
    assert isinstance(at, int)
    with pytest.raises(LayerError, match="truncated"):
        _check(data[:at], 333)


def test_not_a_tar() -> None:
    with pytest.raises(LayerError, match="not a tar archive"):
        _check(b"hello, this is text\n" * 100, 64)
    with pytest.raises(LayerError, match="empty"):
        _check(b"", 64)


def test_corrupt_header_after_first_member() -> None:
    data = bytearray(_tar(tarfile.USTAR_FORMAT))
    data[512 + 10] ^= 0xFF  # second header (f0 has no data): its checksum no longer matches
    with pytest.raises(LayerError, match="corrupt"):
        _check(bytes(data), 4096)


def _one(name: str, fmt: int, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        tar.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


LONG = "d/" + "n" * 120  # beyond ustar's 100-byte name: GNU long name or pax path


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("name", ["../escape", "a/../../escape", f"{LONG}/../../../x"])
def test_member_climbing_out_is_refused(fmt: int, name: str) -> None:
    with pytest.raises(LayerError, match=r"refusing entry .*'\.\.' in path"):
        _check(_one(name, fmt), 512)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_hard_link_out_is_refused_but_relative_symlinks_are_fine(fmt: int) -> None:
    with pytest.raises(LayerError, match="refusing hard link"):
        _check(_one("a", fmt, tarfile.LNKTYPE, f"{LONG}/../../../etc/passwd"), 4096)
    _check(_one("bin/sh", fmt, tarfile.SYMTYPE, "../usr/bin/busybox"), 4096)
    _check(_one("a..b/..c", fmt), 4096)
