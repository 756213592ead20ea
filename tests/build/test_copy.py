"""COPY/ADD rules on a plain directory standing in for the step's rootfs."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from rootless.build.copy import (
    CopyOptions,
    CopySource,
    copy_sources,
    resolve_in_root,
    resolve_owner,
)
from rootless.errors import BuildStepError, Location

LOC = Location("Dockerfile", 4)
Owners = dict[str, tuple[int, int]]


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    return root


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    c = tmp_path / "ctx"
    (c / "dir" / "sub").mkdir(parents=True)
    (c / "dir" / "a.txt").write_text("A")
    (c / "dir" / "sub" / "b.txt").write_text("B")
    (c / "file.txt").write_text("F")
    return c


def run_copy(rootfs: Path, ctx: Path, rels: list[str], dest: str, owners: Owners | None = None,
             workdir: str = "/", **opts: object) -> None:
    def record(path: Path, uid: int, gid: int) -> None:
        if owners is not None:
            owners["/" + path.relative_to(rootfs).as_posix()] = (uid, gid)

    sources = [CopySource(ctx / r, r) for r in rels]
    copy_sources(rootfs, sources, dest, workdir, CopyOptions(**opts),  # type: ignore[arg-type]
                 LOC, lchown=record)


def test_directory_source_copies_its_contents(rootfs: Path, ctx: Path) -> None:
    run_copy(rootfs, ctx, ["dir"], "/app")
    assert (rootfs / "app" / "a.txt").read_text() == "A"
    assert (rootfs / "app" / "sub" / "b.txt").read_text() == "B"
    assert not (rootfs / "app" / "dir").exists()


def test_file_to_new_name_and_into_directory(rootfs: Path, ctx: Path) -> None:
    run_copy(rootfs, ctx, ["file.txt"], "/opt/renamed")
    assert (rootfs / "opt" / "renamed").read_text() == "F"
    run_copy(rootfs, ctx, ["file.txt"], "/srv/")
    assert (rootfs / "srv" / "file.txt").read_text() == "F"
    run_copy(rootfs, ctx, ["file.txt"], "/opt")  # existing directory: goes inside
    assert (rootfs / "opt" / "file.txt").read_text() == "F"


def test_relative_dest_uses_workdir(rootfs: Path, ctx: Path) -> None:
    run_copy(rootfs, ctx, ["file.txt"], "rel/", workdir="/work")
    assert (rootfs / "work" / "rel" / "file.txt").exists()


def test_several_sources_need_a_directory(rootfs: Path, ctx: Path) -> None:
    with pytest.raises(BuildStepError, match="must be a directory"):
        run_copy(rootfs, ctx, ["file.txt", "dir/a.txt"], "/x")


def test_chown_names_resolve_in_the_image(rootfs: Path, ctx: Path) -> None:
    owners: Owners = {}
    run_copy(rootfs, ctx, ["dir"], "/home/app/", owners, chown="app:staff")
    assert owners["/home/app/a.txt"] == (1000, 50)
    assert owners["/home/app"] == (1000, 50)  # created destination directories too
    assert resolve_owner(rootfs, "app", LOC).gid == 1000
    assert resolve_owner(rootfs, "7:8", LOC) == resolve_owner(rootfs, "7:8", LOC)
    with pytest.raises(BuildStepError, match="unable to find user nobody"):
        resolve_owner(rootfs, "nobody", LOC)


def test_default_owner_is_root(rootfs: Path, ctx: Path) -> None:
    owners: Owners = {}
    run_copy(rootfs, ctx, ["file.txt"], "/f", owners)
    assert owners["/f"] == (0, 0)


def test_chmod_and_exclude(rootfs: Path, ctx: Path) -> None:
    run_copy(rootfs, ctx, ["dir"], "/d", chmod="0700", excludes=("sub",))
    assert (rootfs / "d" / "a.txt").stat().st_mode & 0o7777 == 0o700
    assert not (rootfs / "d" / "sub").exists()


def test_parents_keeps_the_source_path(rootfs: Path, ctx: Path) -> None:
    run_copy(rootfs, ctx, ["dir/sub/b.txt"], "/p/", parents=True)
    assert (rootfs / "p" / "dir" / "sub" / "b.txt").read_text() == "B"


def test_symlink_in_the_image_stays_inside_the_rootfs(rootfs: Path, ctx: Path,
                                                      tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), rootfs / "escape")
    os.symlink("../../../../..", rootfs / "up")
    run_copy(rootfs, ctx, ["file.txt"], "/escape/f")
    run_copy(rootfs, ctx, ["file.txt"], "/up/g")
    assert not list(outside.iterdir())
    assert (rootfs / str(outside).lstrip("/") / "f").read_text() == "F"
    assert (rootfs / "g").read_text() == "F"
    assert resolve_in_root(rootfs, "/up/../../x") == rootfs / "x"


def make_tar(path: Path, mode: str) -> None:
    with tarfile.open(path, mode) as tar:
        info = tarfile.TarInfo("pkg/hello.txt")
        data = b"hello\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_add_extracts_local_archives(rootfs: Path, ctx: Path, mode: str) -> None:
    make_tar(ctx / "archive.bin", mode)
    run_copy(rootfs, ctx, ["archive.bin"], "/x/", is_add=True)
    assert (rootfs / "x" / "pkg" / "hello.txt").read_text() == "hello\n"
    # COPY never extracts
    run_copy(rootfs, ctx, ["archive.bin"], "/y/")
    assert (rootfs / "y" / "archive.bin").is_file()


def test_add_archive_cannot_escape(rootfs: Path, ctx: Path) -> None:
    with tarfile.open(ctx / "evil.tar", "w") as tar:
        info = tarfile.TarInfo("../../../evil")
        tar.addfile(info, io.BytesIO(b""))
    run_copy(rootfs, ctx, ["evil.tar"], "/x/", is_add=True)
    assert (rootfs / "evil").exists()
    assert not (rootfs.parent / "evil").exists()
