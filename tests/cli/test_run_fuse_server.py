"""`rootless run --storage-driver fuse`: the FUSE server lives outside the container.

The server that serves the container's root filesystem must not be one of the
container's processes: `ps` there would list it, and `kill -9 -1` (or a kill of
its pid) would pull the filesystem out from under the container.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rootless.cowfs.driver import unavailable
from tests.cli.test_run import store_image
from tests.helpers import Rootless, runner

pytestmark = pytest.mark.integration


@pytest.fixture
def fuse_rl(store_root: Path, busybox_tar: Path, mode: str) -> Rootless:
    """The CLI with ``--storage-driver fuse`` on a store holding `busybox`."""
    why = unavailable("fuse")
    if why is not None:
        pytest.skip(f"fuse driver unavailable: {why}")
    store_image(store_root, busybox_tar, {"Cmd": ["sh"], "Env": [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}, "busybox")
    base = runner(store_root)

    def run(*args: Any, **kwargs: Any) -> Any:
        env = {"ROOTLESS_ID_MAPPING": mode, **(kwargs.pop("env", None) or {})}
        return base("--storage-driver", "fuse", *args, env=env, **kwargs)

    return run


# Only shell built-ins: no helper process shows up in the listing.
_LIST_PIDS = 'echo "self=$$"; for p in /proc/[0-9]*; do echo "${p#/proc/}"; done'


def test_container_sees_only_its_own_processes(fuse_rl: Rootless) -> None:
    out = fuse_rl("run", "--rm", "busybox", "sh", "-c", _LIST_PIDS).stdout.split()
    me = int(out[0].removeprefix("self="))
    assert sorted(int(p) for p in out[1:]) == sorted({1, me})


def test_kill_all_inside_leaves_the_filesystem_working(fuse_rl: Rootless) -> None:
    result = fuse_rl("run", "--rm", "busybox", "sh", "-c",
                     "sleep 1000 & kill -9 -1; wait; cat /etc/passwd >/dev/null && ls /bin/sh "
                     "&& echo alive; exit 7", check=False, timeout=60)
    assert result.returncode == 7, result.stderr
    assert result.stdout.split() == ["/bin/sh", "alive"]
    assert "not connected" not in result.stderr


def _parents() -> dict[int, int]:
    """pid -> parent pid of every host process (from /proc/PID/stat, readable by all)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                table[int(entry)] = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return table


def _descendants(root: int) -> set[int]:
    parents = _parents()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def _pid_levels(pid: int) -> int:
    """How many PID namespaces PID is seen in (1: only the host's)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return len(line.split()) - 1
    return 1


def test_server_lives_outside_the_container_and_goes_with_it(
        fuse_rl: Rootless, store_root: Path, mode: str) -> None:
    with subprocess.Popen(
            ["rootless", "--root", str(store_root), "--storage-driver", "fuse", "run", "--rm",
             "-i", "busybox", "sh", "-c", "echo ready; read line; echo done"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={**os.environ, "ROOTLESS_ID_MAPPING": mode}) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert proc.stdout.readline() == b"ready\n"
            tree = _descendants(proc.pid)
            # keeper and FUSE server in the host's PID namespace; init and sh in the
            # container's (one level deeper).
            outside = {pid for pid in tree if _pid_levels(pid) == 1}
            inside = tree - outside
            assert len(outside) >= 2 and len(inside) == 2, (outside, inside)
            proc.stdin.write(b"go\n")
            proc.stdin.close()
            assert proc.stdout.read() == b"done\n"
            assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()
    alive = {pid for pid in tree if os.path.exists(f"/proc/{pid}")}
    assert alive == set()
    deadline = time.monotonic() + 5
    while fuse_rl("ps", "-aq").stdout.strip():
        assert time.monotonic() < deadline, "the --rm container's record stayed"
        time.sleep(0.05)


def test_sigkill_of_run_takes_the_server_down(fuse_rl: Rootless, store_root: Path,
                                              mode: str) -> None:
    with subprocess.Popen(
            ["rootless", "--root", str(store_root), "--storage-driver", "fuse", "run",
             "--name", "victim", "busybox", "sh", "-c", "echo ready; sleep 1000"],
            stdout=subprocess.PIPE, env={**os.environ, "ROOTLESS_ID_MAPPING": mode}) as proc:
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline() == b"ready\n"
            tree = _descendants(proc.pid)
            assert len(tree) >= 4, tree  # keeper, FUSE server, init, sh (+ sleep)
        finally:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while alive := {pid for pid in tree if os.path.exists(f"/proc/{pid}")}:
        assert time.monotonic() < deadline, f"processes outlived rootless run: {alive}"
        time.sleep(0.01)
    assert "Exited" in fuse_rl("ps", "-a").stdout
    fuse_rl("rm", "victim")


def test_exec_into_a_fuse_container(fuse_rl: Rootless) -> None:
    # The FUSE root refuses opens from outside the container's user namespace:
    # exec joins it before entering the root.
    cid = fuse_rl("run", "-d", "--name", "bg", "busybox", "sleep", "1000").stdout.strip()
    try:
        out = fuse_rl("exec", "bg", "sh", "-c", "echo made > /made; cat /made; " + _LIST_PIDS)
        made, own, *pids = out.stdout.split()
        assert made == "made"
        # init, sleep, and exec's shell: no FUSE server
        assert len(pids) == 3 and own == f"self={max(int(p) for p in pids)}", out.stdout
        assert fuse_rl("exec", "bg", "nosuch", check=False).returncode == 127
    finally:
        fuse_rl("rm", "-f", cid, check=False)
    assert fuse_rl("ps", "-aq").stdout == ""
