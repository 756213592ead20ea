"""Union semantics on real directories, without a mount (the FUSE driver's core)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from rootless.cowfs.union import Union, copy_file_sparse
from rootless.oci.layer import is_opaque, is_whiteout
from tests.cowfs.conftest import EXPECTED


@pytest.fixture
def union(tmp_path: Path, layer_dirs: list[Path]) -> Union:
    upper = tmp_path / "upper"
    upper.mkdir()
    return Union(list(reversed(layer_dirs)), upper)


def _walk(union: Union, path: str = "/") -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for name, _kind in union.readdir(path):
        child = path.rstrip("/") + "/" + name
        entry = union.get(child)
        if os.path.isdir(entry.real):
            found[child.lstrip("/")] = None
            found.update(_walk(union, child))
        else:
            found[child.lstrip("/")] = Path(entry.real).read_bytes()
    return found


def test_merged_view_matches_the_matrix(union: Union) -> None:
    assert _walk(union) == EXPECTED


def test_unlink_of_lower_file_leaves_a_whiteout_and_a_record(union: Union) -> None:
    union.unlink("/dir/x")
    assert union.lookup("/dir/x") is None
    assert is_whiteout(os.lstat(Path(union.upper or "") / "dir/x"))
    assert union.changes() == ([], [], ["dir/x"])


def test_create_then_delete_of_new_file_leaves_nothing(union: Union) -> None:
    fd, _ = union.create_file("/fresh", os.O_WRONLY, 0o644, None)
    os.close(fd)
    union.unlink("/fresh")
    assert not (Path(union.upper or "") / "fresh").exists()
    assert union.changes() == ([], [], [])


def test_mkdir_over_a_deleted_lower_dir_is_opaque(union: Union) -> None:
    union.unlink("/dir/x")
    union.rmdir("/dir/sub")
    union.rmdir("/dir")
    union.create_node("/dir", 0o040000, 0o755)
    assert union.readdir("/dir") == []
    assert is_opaque(Path(union.upper or "") / "dir")


def test_rename_of_merged_directory_copies_it_up_whole(union: Union) -> None:
    union.rename("/opq2", "/moved")
    assert [n for n, _ in union.readdir("/moved")] == ["fresh"]
    assert union.lookup("/opq2") is None


def test_errors_are_the_posix_ones(union: Union) -> None:
    cases = [(lambda: union.rmdir("/dir"), errno.ENOTEMPTY),
             (lambda: union.unlink("/dir"), errno.EISDIR),
             (lambda: union.rmdir("/a"), errno.ENOTDIR),
             (lambda: union.rename("/dir", "/dir/sub/inside"), errno.EINVAL),
             (lambda: union.link("/dir", "/dirlink"), errno.EPERM),
             (lambda: union.get("/del"), errno.ENOENT)]
    for action, code in cases:
        with pytest.raises(OSError) as info:
            action()
        assert info.value.errno == code


def test_sparse_copy_keeps_holes(tmp_path: Path) -> None:
    source = tmp_path / "sparse"
    with open(source, "wb") as f:
        f.truncate(64 << 20)
        f.seek(32 << 20)
        f.write(b"middle")
    copy_file_sparse(str(source), str(tmp_path / "copy"))
    copy = tmp_path / "copy"
    assert copy.stat().st_size == 64 << 20
    assert copy.stat().st_blocks * 512 < 1 << 20
    with open(copy, "rb") as f:
        f.seek(32 << 20)
        assert f.read(6) == b"middle"


def test_renamed_directory_keeps_no_whiteouts(union: Union) -> None:
    union.unlink("/dir/x")
    union.rename("/dir", "/moved")
    moved = Path(union.upper or "") / "moved"
    assert is_opaque(moved)
    assert sorted(os.listdir(moved)) == ["sub"]
    assert [n for n, _ in union.readdir("/moved")] == ["sub"]


def test_rename_directory_onto_a_deleted_lower_directory(union: Union) -> None:
    union.unlink("/dir2/new")
    union.rmdir("/dir2")
    union.rename("/opq", "/dir2")
    assert [n for n, _ in union.readdir("/dir2")] == ["new"]
    assert union.get("/dir2/new").real.endswith("dir2/new")
    assert Path(union.get("/dir2/new").real).read_bytes() == b"new"
    assert union.lookup("/opq") is None
