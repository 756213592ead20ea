"""Container paths resolved inside the root, whatever symlinks the image holds."""

from __future__ import annotations

from pathlib import Path

from rootless.sandbox.mounts import resolve_in_root


def test_symlinks_stay_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "data").symlink_to("/etc")
    (tmp_path / "up").symlink_to("../../../../")
    (tmp_path / "rel").symlink_to("etc/../data")
    root = str(tmp_path)
    assert resolve_in_root(root, "/data/x") == f"{root}/etc/x"
    assert resolve_in_root(root, "/up/etc") == f"{root}/etc"
    assert resolve_in_root(root, "/../../etc/passwd") == f"{root}/etc/passwd"
    assert resolve_in_root(root, "rel/y") == f"{root}/etc/y"
    assert resolve_in_root(root, "/") == root


def test_symlink_loops_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    try:
        resolve_in_root(str(tmp_path), "/a/x")
    except OSError as exc:
        assert exc.errno == 40
    else:
        raise AssertionError("a symlink loop resolved")
