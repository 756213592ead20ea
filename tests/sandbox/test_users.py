"""USER resolution against an image's /etc/passwd and /etc/group (Docker's rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rootless.errors import SandboxError
from rootless.sandbox.users import resolve_user


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1000::/home/app:/bin/sh\n"
        "# a comment\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    (tmp_path / "etc/group").write_text(
        "root:x:0:\napp:x:1000:\nstaff:x:50:app,other\naudio:x:29:app\n"
        "nogroup:x:65534:\n")
    return tmp_path


@pytest.mark.parametrize(("spec", "uid", "gid", "groups", "home"), [
    ("", 0, 0, (0,), "/root"),
    ("root", 0, 0, (0,), "/root"),
    ("app", 1000, 1000, (1000, 50, 29), "/home/app"),
    ("1000", 1000, 1000, (1000, 50, 29), "/home/app"),
    ("app:staff", 1000, 50, (50,), "/home/app"),
    ("app:4242", 1000, 4242, (4242,), "/home/app"),
    ("4242", 4242, 0, (0,), "/"),
    ("4242:4343", 4242, 4343, (4343,), "/"),
    ("nobody", 65534, 65534, (65534,), "/nonexistent"),
])
def test_resolve(root: Path, spec: str, uid: int, gid: int, groups: tuple[int, ...],
                 home: str) -> None:
    user = resolve_user(spec, str(root))
    assert (user.uid, user.gid, user.groups, user.home) == (uid, gid, groups, home)


def test_unknown_names_are_errors(root: Path) -> None:
    with pytest.raises(SandboxError, match="unable to find user ghost"):
        resolve_user("ghost", str(root))
    with pytest.raises(SandboxError, match="unable to find group ghosts"):
        resolve_user("app:ghosts", str(root))


def test_image_without_passwd(tmp_path: Path) -> None:
    assert resolve_user("0", str(tmp_path)).home == "/"
    assert resolve_user("123:45", str(tmp_path)).gid == 45
