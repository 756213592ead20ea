"""Mount life cycle: SIGKILL of the owner, a crashing FUSE server, driver choice."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rootless.cowfs import mount_rootfs, select_driver
from rootless.cowfs.driver import unavailable
from rootless.errors import CowfsError
from tests.cowfs.conftest import Stack, in_namespace

needs_fuse = pytest.mark.skipif(unavailable("fuse") is not None, reason="FUSE is not usable")

OWNER = """
import os, sys
from pathlib import Path
from rootless.sandbox.userns import IdMapping, run_in_userns
from rootless.cowfs import mount_rootfs
lowers, upper, work, target = [Path(p) for p in sys.argv[1:5]]
def owner():
    handle = mount_rootfs([lowers], upper, work, target, "fuse")
    print(os.getpid(), handle.pid, flush=True)
    sys.stdin.read()  # until killed
sys.exit(run_in_userns(owner, IdMapping.single()))
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.02)
    return False


@needs_fuse
def test_sigkill_of_owner_takes_the_fuse_server_and_mount_down(stack: Stack) -> None:
    with subprocess.Popen(
            [sys.executable, "-c", OWNER, str(stack.lowers[0]), str(stack.upper),
             str(stack.work), str(stack.target)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}) as proc:
        try:
            assert proc.stdout is not None
            owner, server = (int(x) for x in proc.stdout.readline().split())
            assert not _gone(server)
            os.kill(owner, signal.SIGKILL)
            assert _wait_gone(server), "the FUSE server outlived its owner"
            assert proc.wait(timeout=10) != 0
        finally:
            proc.kill()
    # The mount lived in the dead namespace only: from here the target is a plain dir.
    assert os.listdir(stack.target) == []
    with open("/proc/self/mountinfo") as f:
        assert str(stack.target) not in f.read()


@needs_fuse
def test_dead_fuse_server_is_an_error_not_a_hang(stack: Stack) -> None:
    def inside() -> tuple[int, str]:
        handle = mount_rootfs(stack.lowers, stack.upper, stack.work, stack.target, "fuse")
        os.kill(handle.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        os.waitpid(handle.pid, 0)  # type: ignore[attr-defined]
        try:
            os.stat(stack.target / "a")
            code = 0
        except OSError as exc:
            code = exc.errno or 0
        try:
            handle.changes()
            message = ""
        except CowfsError as exc:
            message = str(exc)
        handle.unmount()
        return code, message
    code, message = in_namespace(inside, timeout=30)
    assert code in (errno.ENOTCONN, errno.EIO)
    assert "FUSE server" in message


def test_select_driver_auto_names_a_driver_and_why() -> None:
    choice = select_driver("auto")
    assert choice.name in ("overlay", "fuse", "vfs")
    assert choice.reason
    assert select_driver("vfs").name == "vfs"


def test_unknown_driver_is_a_user_error() -> None:
    with pytest.raises(CowfsError, match="unknown storage driver"):
        select_driver("btrfs")


@needs_fuse
def test_fuse_mount_needs_no_fusermount(stack: Stack, tmp_path: Path) -> None:
    def inside() -> str:
        os.environ["PATH"] = str(tmp_path)  # no fusermount reachable
        with mount_rootfs(stack.lowers, stack.upper, stack.work, stack.target, "fuse"):
            return (stack.target / "a").read_text()
    assert in_namespace(inside) == "a1"


def test_kernel_and_fuse_drivers_refuse_to_mount_outside_a_namespace(stack: Stack) -> None:
    if os.geteuid() == 0:
        pytest.skip("runs as an ordinary user")
    with pytest.raises(CowfsError, match="user namespace"):
        mount_rootfs(stack.lowers, stack.upper, stack.work, stack.target, "fuse")


def test_vfs_works_without_a_namespace(stack: Stack) -> None:
    with mount_rootfs(stack.lowers, stack.upper, stack.work, stack.target, "vfs") as handle:
        (stack.target / "new").write_text("n")
        os.unlink(stack.target / "a")
    changes = handle.changes()
    assert changes is not None and changes.paths() == ["a", "new"]
    assert os.listdir(stack.target) == []


def test_auto_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from rootless.cowfs import driver as module

    reasons = {"overlay": "overlayfs with userxattr does not mount here: EPERM",
               "fuse": "/dev/fuse is missing", "vfs": None}
    monkeypatch.setattr(module, "unavailable", lambda name, where=None: reasons[name])
    choice = module.select_driver("auto")
    assert choice.name == "vfs"
    assert "/dev/fuse is missing" in choice.reason and "overlayfs" in choice.reason
    assert module.driver_report() == {"overlay": reasons["overlay"], "fuse": reasons["fuse"],
                                      "vfs": "ok"}
    with pytest.raises(CowfsError, match="/dev/fuse is missing"):
        module.select_driver("fuse")


def test_overlay_with_many_layers(tmp_path: Path) -> None:
    if unavailable("overlay") is not None:
        pytest.skip("overlayfs does not mount here")
    deep = tmp_path / ("long-directory-name-" * 4)
    lowers = []
    for i in range(60):  # ~60 x 120 characters: more than one page of mount options
        layer = deep / f"layer-{i:03d}-{'x' * 40}"
        layer.mkdir(parents=True)
        (layer / f"f{i}").write_text(str(i))
        lowers.append(layer)
    (lowers[-1] / "f0").write_text("top")

    def inside() -> tuple[int, str]:
        with mount_rootfs(lowers, tmp_path / "u", tmp_path / "w", tmp_path / "m", "overlay"):
            return len(os.listdir(tmp_path / "m")), (tmp_path / "m" / "f0").read_text()
    assert in_namespace(inside) == (60, "top")
