"""Build context: ignore rules, source resolution that never leaves the root, checksums."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rootless.build.context import BuildContext, looks_like_tar, open_directory
from rootless.errors import BuildStepError, Location

LOC = Location("Dockerfile", 3)


def make_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_dockerignore_hides_files_and_exceptions_bring_them_back(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": "a", "b.log": "b", "logs/x.log": "x", "logs/keep.log": "k",
                         ".dockerignore": "*.log\nlogs\n!logs/keep.log\n"})
    ctx = open_directory(tmp_path, tmp_path / "Dockerfile")
    rels = [ctx.rel_of(p) for p in ctx.walk_sorted(tmp_path)]
    assert rels == ["", ".dockerignore", "a.txt", "logs", "logs/keep.log"]


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a": "", "b": "", ".dockerignore": "a\n",
                         "sub/app.Dockerfile.dockerignore": "b\n", "sub/app.Dockerfile": ""})
    ctx = open_directory(tmp_path, tmp_path / "sub" / "app.Dockerfile")
    assert ctx.ignore.ignored("b") and not ctx.ignore.ignored("a")


def test_parent_path_is_refused_with_the_line(tmp_path: Path) -> None:
    ctx = BuildContext(tmp_path)
    with pytest.raises(BuildStepError) as err:
        ctx.expand("../x", LOC)
    assert "Dockerfile:3" in str(err.value) and "outside the build context" in str(err.value)


def test_symlink_out_of_the_context_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "secret").write_text("s")
    os.symlink("../secret", tmp_path / "ctx" / "link")
    os.symlink("/etc/passwd", tmp_path / "ctx" / "abs")
    ctx = BuildContext(tmp_path / "ctx")
    for name in ("link", "abs"):
        with pytest.raises(BuildStepError, match="outside the build context"):
            ctx.expand(name, LOC)


def test_symlink_inside_the_context_resolves(tmp_path: Path) -> None:
    make_tree(tmp_path, {"real/f": "x"})
    os.symlink("real", tmp_path / "alias")
    ctx = BuildContext(tmp_path)
    assert ctx.expand("alias/f", LOC) == [tmp_path / "real" / "f"]


def test_wildcards_do_not_cross_directories(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": "", "b.txt": "", "d/c.txt": ""})
    ctx = BuildContext(tmp_path)
    assert [p.name for p in ctx.expand("*.txt", LOC)] == ["a.txt", "b.txt"]
    assert [p.name for p in ctx.expand("*/*.txt", LOC)] == ["c.txt"]
    with pytest.raises(BuildStepError, match="matches nothing"):
        ctx.expand("*.none", LOC)


def test_missing_or_ignored_source_is_an_error(tmp_path: Path) -> None:
    make_tree(tmp_path, {"secret.key": "k", ".dockerignore": "*.key\n"})
    ctx = open_directory(tmp_path, None)
    with pytest.raises(BuildStepError) as err:
        ctx.expand("secret.key", LOC)
    assert err.value.hint and ".dockerignore" in err.value.hint
    with pytest.raises(BuildStepError, match="not found"):
        ctx.expand("nope", LOC)


def test_checksum_follows_content_not_mtime(tmp_path: Path) -> None:
    make_tree(tmp_path, {"d/a": "1", "d/b": "2"})
    first = BuildContext(tmp_path).checksum(tmp_path / "d")
    os.utime(tmp_path / "d" / "a", (1, 1))
    assert BuildContext(tmp_path).checksum(tmp_path / "d") == first
    (tmp_path / "d" / "b").write_text("3")
    assert BuildContext(tmp_path).checksum(tmp_path / "d") != first
    (tmp_path / "d" / "b").write_text("2")
    (tmp_path / "d" / "a").chmod(0o600)
    assert BuildContext(tmp_path).checksum(tmp_path / "d") != first


def test_tar_detection() -> None:
    assert looks_like_tar(b"\x1f\x8b\x08rest")
    assert not looks_like_tar(b"FROM busybox\nRUN true\n")
