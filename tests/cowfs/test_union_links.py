"""Hard links of a lower layer survive copy-up: one upper copy, every visible name linked.

Union-level tests (no mount) check the upper and the change records; the mount
tests check what a container sees on each driver; the diff tests check the
exported layer carries a tar hard link for the second name, as Docker's does.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rootless.cowfs import mount_rootfs
from rootless.cowfs.copyup import LayerLinks
from rootless.cowfs.driver import Changes
from rootless.cowfs.union import Union
from rootless.oci.layer import diff, extract
from tests.cowfs.conftest import Stack, in_namespace

PERL = b"#!perl\n"


def _layer_tar(members: list[tuple[str, bytes | str | None]]) -> bytes:
    """(name, bytes) → file, (name, None) → dir, (name, "target") → hard link."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, data, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o755, len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


BASE = [("usr", None), ("usr/bin", None), ("usr/bin/perl", PERL),
        ("usr/bin/perl5.36", "usr/bin/perl"), ("usr/lib", None),
        ("usr/lib/perl-alias", "usr/bin/perl"), ("usr/bin/git", b"git"),
        ("usr/bin/git-add", "usr/bin/git"), ("usr/bin/single", b"one")]
# A higher layer replacing one name of the git pair with a file of its own.
HIGHER = [("usr", None), ("usr/bin", None), ("usr/bin/git-add", b"own")]


@pytest.fixture(scope="module")
def layers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("linked")
    dirs = []
    for i, members in enumerate((BASE, HIGHER)):
        extract(io.BytesIO(_layer_tar(members)), base / f"l{i}", name=f"l{i}")
        dirs.append(base / f"l{i}")
    return dirs


@pytest.fixture
def union(tmp_path: Path, layers: list[Path]) -> Union:
    (tmp_path / "upper").mkdir()
    return Union(list(reversed(layers)), tmp_path / "upper")


def _upper(union: Union, path: str) -> os.stat_result:
    return os.lstat(f"{union.upper}{path}")


def _append(union: Union, path: str, data: bytes) -> None:
    with open(union.copy_up(path).real, "ab") as f:
        f.write(data)


PERL_NAMES = ("/usr/bin/perl", "/usr/bin/perl5.36", "/usr/lib/perl-alias")


# -- Union, no mount -------------------------------------------------------------------

def test_copy_up_brings_every_name_of_the_inode(union: Union) -> None:
    _append(union, "/usr/bin/perl5.36", b"# patched\n")
    stats = [_upper(union, p) for p in PERL_NAMES]
    assert len({st.st_ino for st in stats}) == 1 and stats[0].st_nlink == 3
    for path in PERL_NAMES:
        entry = union.get(path)
        assert entry.in_upper and Path(entry.real).read_bytes() == PERL + b"# patched\n"
    created, modified, deleted = union.changes()
    assert (created, sorted(modified), deleted) == (
        [], sorted(p.lstrip("/") for p in PERL_NAMES), [])


def test_file_with_one_name_needs_no_walk(union: Union) -> None:
    _append(union, "/usr/bin/single", b"!")
    assert union.changes() == ([], ["usr/bin/single"], [])
    assert union.copier.layer_links == {}  # the layer was never walked


def test_a_name_replaced_by_a_higher_layer_stays_apart(union: Union) -> None:
    _append(union, "/usr/bin/git", b"!")
    assert union.lookup("/usr/bin/git-add") is not None
    assert not union.get("/usr/bin/git-add").in_upper
    assert Path(union.get("/usr/bin/git-add").real).read_bytes() == b"own"
    assert _upper(union, "/usr/bin/git").st_nlink == 1


def test_unlink_one_name_then_write_the_other(union: Union) -> None:
    union.unlink("/usr/bin/perl")
    union.unlink("/usr/lib/perl-alias")
    _append(union, "/usr/bin/perl5.36", b"!")
    assert _upper(union, "/usr/bin/perl5.36").st_nlink == 1
    assert union.lookup("/usr/bin/perl") is None
    assert union.lookup("/usr/lib/perl-alias") is None


def test_rename_one_name_keeps_the_others_linked(union: Union) -> None:
    union.rename("/usr/bin/perl", "/usr/bin/perl-old")
    assert union.lookup("/usr/bin/perl") is None
    _append(union, "/usr/lib/perl-alias", b"!")
    moved, other = _upper(union, "/usr/bin/perl-old"), _upper(union, "/usr/bin/perl5.36")
    assert moved.st_ino == other.st_ino and moved.st_nlink == 3
    assert Path(union.get("/usr/bin/perl-old").real).read_bytes() == PERL + b"!"


def test_hard_link_to_a_linked_lower_file_joins_them_all(union: Union) -> None:
    union.link("/usr/bin/perl", "/usr/local-perl")
    st = _upper(union, "/usr/local-perl")
    assert st.st_nlink == 4 and st.st_ino == _upper(union, "/usr/bin/perl5.36").st_ino


def test_a_name_copied_up_on_its_own_earlier_is_left_alone(union: Union) -> None:
    # As an upper written by kernel overlayfs (same on-disk format) holds it: split.
    (Path(f"{union.upper}/usr/bin")).mkdir(parents=True)
    Path(f"{union.upper}/usr/bin/perl5.36").write_bytes(b"split")
    _append(union, "/usr/bin/perl", b"!")
    assert Path(union.get("/usr/bin/perl5.36").real).read_bytes() == b"split"
    assert _upper(union, "/usr/bin/perl").st_nlink == 2  # perl and perl-alias


def test_rename_of_a_directory_holding_one_name(union: Union) -> None:
    union.rename("/usr/lib", "/usr/lib2")
    _append(union, "/usr/bin/perl", b"!")
    assert Path(union.get("/usr/lib2/perl-alias").real).read_bytes() == PERL + b"!"
    assert _upper(union, "/usr/lib2/perl-alias").st_nlink == 3


def test_copy_up_reports_the_names_it_brought(union: Union) -> None:
    brought: list[str] = []
    union.on_linked_copy_up = lambda path, real: brought.append(path)
    union.truncate("/usr/lib/perl-alias", 0)
    assert sorted(brought) == ["/usr/bin/perl", "/usr/bin/perl5.36"]


def test_layer_links_finds_names_with_and_without_stat(layers: list[Path]) -> None:
    links = LayerLinks(str(layers[0]))
    st = os.lstat(layers[0] / "usr/bin/perl")
    assert links.names("/usr/bin/perl", st) == (
        "/usr/bin/perl", "/usr/bin/perl5.36", "/usr/lib/perl-alias")
    forced = LayerLinks(str(layers[0]))
    forced._stat_walk = True  # as on a filesystem whose d_ino differs from st_ino
    assert forced.names("/usr/bin/git", os.lstat(layers[0] / "usr/bin/git")) == (
        "/usr/bin/git", "/usr/bin/git-add")


# -- the exported layer ----------------------------------------------------------------

def test_diff_carries_a_tar_hard_link_for_the_other_names(union: Union, tmp_path: Path) -> None:
    _append(union, "/usr/bin/perl", b"!")
    out = io.BytesIO()
    created, modified, deleted = union.changes()
    diff(Path(union.upper or ""), out, paths=created + modified + deleted)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("usr/bin/perl").read() == PERL + b"!"  # type: ignore[union-attr]
    assert members["usr/bin/perl"].isreg()
    for name in ("usr/bin/perl5.36", "usr/lib/perl-alias"):
        assert members[name].islnk() and members[name].linkname == "usr/bin/perl"
    extract(io.BytesIO(out.getvalue()), tmp_path / "again", name="again")
    assert os.lstat(tmp_path / "again/usr/lib/perl-alias").st_nlink == 3


# -- through a mount -------------------------------------------------------------------

def _mounted(stack: Stack, driver: str, scenario: Callable[[Path], Any]) -> Any:
    return _mounted_with_changes(stack, driver, scenario)[0]


def _mounted_with_changes(stack: Stack, driver: str,
                          scenario: Callable[[Path], Any]) -> tuple[Any, Changes | None]:
    def inside() -> tuple[Any, Changes | None]:
        with mount_rootfs(stack.lowers, stack.upper, stack.work, stack.target,
                          driver) as handle:
            result = scenario(stack.target)
            os.sync()
        return result, handle.changes()
    return in_namespace(inside)


@pytest.fixture
def linked(tmp_path: Path, layers: list[Path], driver: str) -> tuple[Stack, str]:
    if driver == "overlay":
        pytest.skip("kernel overlayfs splits lower hard links on copy-up: its index "
                    "feature (which keeps them) is off with userxattr in a user namespace")
    return Stack(list(layers), tmp_path / "upper", tmp_path / "work", tmp_path / "merged"), driver


def test_write_through_one_name_shows_through_the_others(linked: tuple[Stack, str]) -> None:
    stack, driver = linked

    def scenario(root: Path) -> tuple[list[bytes], list[int], list[int]]:
        with open(root / "usr/bin/perl5.36", "ab") as f:
            f.write(b"# patched\n")
        names = [root / p.lstrip("/") for p in PERL_NAMES]
        stats = [os.stat(p) for p in names]
        return ([p.read_bytes() for p in names], [st.st_ino for st in stats],
                [st.st_nlink for st in stats])
    (data, inos, nlinks), changes = _mounted_with_changes(stack, driver, scenario)
    assert data == [PERL + b"# patched\n"] * 3
    assert len(set(inos)) == 1 and nlinks == [3, 3, 3]
    assert (stack.lowers[0] / "usr/bin/perl").read_bytes() == PERL
    assert changes is not None
    out = io.BytesIO()
    diff(stack.upper, out, paths=changes.paths())  # the layer a commit would make
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        files = {m.name: (m.type, m.linkname) for m in tar.getmembers() if not m.isdir()}
    assert files == {"usr/bin/perl": (tarfile.REGTYPE, ""),
                     "usr/bin/perl5.36": (tarfile.LNKTYPE, "usr/bin/perl"),
                     "usr/lib/perl-alias": (tarfile.LNKTYPE, "usr/bin/perl")}


def test_names_looked_at_before_the_write_show_it_after(linked: tuple[Stack, str]) -> None:
    stack, driver = linked

    def scenario(root: Path) -> tuple[bytes, bytes, int, bool]:
        other = root / "usr/bin/perl"
        os.stat(other)  # as `ls -l` would: the kernel may now cache its attributes
        with open(other, "rb") as reader:
            reader.read()
            with open(root / "usr/bin/perl5.36", "ab") as f:
                f.write(b"!")
            reader.seek(0)
            through_open = reader.read()
        st, written = os.stat(other), os.stat(root / "usr/bin/perl5.36")
        return other.read_bytes(), through_open, st.st_nlink, st.st_ino == written.st_ino
    got = _mounted(stack, driver, scenario)
    # A read-only descriptor opened before the copy-up keeps the old data on kernel
    # overlayfs; ours follows the copy, as fuse does for the name being written.
    assert got == (PERL + b"!", PERL + b"!", 3, True)


def test_unlink_or_rename_one_name_then_write_another(linked: tuple[Stack, str]) -> None:
    stack, driver = linked

    def scenario(root: Path) -> tuple[bool, int, bytes, int]:
        os.unlink(root / "usr/bin/perl")
        os.rename(root / "usr/lib/perl-alias", root / "usr/lib/renamed")
        with open(root / "usr/bin/perl5.36", "ab") as f:
            f.write(b"!")
        renamed, kept = os.stat(root / "usr/lib/renamed"), os.stat(root / "usr/bin/perl5.36")
        return ((root / "usr/bin/perl").exists(), kept.st_nlink,
                (root / "usr/lib/renamed").read_bytes(), int(renamed.st_ino == kept.st_ino))
    gone, nlink, data, same = _mounted(stack, driver, scenario)
    assert (gone, nlink, data, same) == (False, 2, PERL + b"!", 1)

