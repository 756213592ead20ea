"""Images rootless builds run under rootless podman with the same output."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.build.buildhelp import build, run_output
from tests.helpers import runner, which

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = ("whiteout", "heredoc", "multistage", "metadata")


def podman_env(tmp: Path) -> dict[str, str]:
    """Our own podman configuration and storage in TMP, never the user's.

    TMP must be a short path: conmon's attach socket lives under the run root and
    a socket path over 108 bytes makes every ``podman run`` wait 20 s for exit.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "containers.conf").write_text(
        '[containers]\nnetns = "none"\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    (tmp / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp}/graph"\nrunroot = "{tmp}/run"\n')
    runtime = tmp / "xdg"
    runtime.mkdir(mode=0o700)
    return {**os.environ, "CONTAINERS_CONF": str(tmp / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(tmp / "storage.conf"),
            "XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp)}


def stop_pause_process(env: dict[str, str]) -> None:
    """Rootless podman leaves a pause process (catatonit) per XDG_RUNTIME_DIR; ours
    is private to the test, so end it (by the pid podman recorded)."""
    import signal

    pid_file = Path(env["XDG_RUNTIME_DIR"]) / "libpod" / "tmp" / "pause.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGKILL)  # catatonit -P ignores SIGTERM
    except ProcessLookupError:
        pass


def test_built_images_run_under_podman(tmp_path: Path, busybox_tar: Path) -> None:
    podman = which("podman")
    which("runc")
    rl = runner(tmp_path / "store")
    rl("import", busybox_tar, "busybox")
    ctx = tmp_path / "context"
    ctx.mkdir()
    ours = {}
    for name in EXAMPLES:
        build(rl, ctx, name, "-t", f"interop-{name}")
        ours[name] = run_output(rl, f"interop-{name}")
    archive = tmp_path / "images.tar"
    rl("save", "-o", archive, *(f"interop-{name}" for name in EXAMPLES))
    short = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))
    env = podman_env(short)
    try:
        subprocess.run([podman, "load", "-q", "-i", str(archive)], env=env, check=True,
                       capture_output=True, timeout=300)
        for name in EXAMPLES:
            res = subprocess.run([podman, "run", "--rm", "--network=none",
                                  f"interop-{name}"],
                                 env=env, capture_output=True, text=True, timeout=300,
                                 stdin=subprocess.DEVNULL)
            assert res.returncode == 0, res.stderr
            assert res.stdout == ours[name], name
    finally:
        # storage written by podman's user namespace is removed inside it; that
        # call starts the pause process again, so it is stopped afterwards.
        subprocess.run([podman, "unshare", "rm", "-rf", str(short / "graph"),
                        str(short / "run"), str(short / ".local")],
                       env=env, capture_output=True, timeout=120)
        stop_pause_process(env)
        shutil.rmtree(short, ignore_errors=True)
