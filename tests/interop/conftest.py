"""Peers for interoperability tests: rootless podman in a private, throw-away setup."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import which

Podman = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    """Run podman (rootless) with its own storage under tmp_path, never the user's."""
    which("podman")
    which("newuidmap")
    base = tmp_path / "podman"
    base.mkdir()
    (base / "containers.conf").write_text(
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        '[containers]\nnetns = "host"\n')
    (base / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{base}/graph"\nrunroot = "{base}/run"\n')
    env = {**os.environ,
           "CONTAINERS_CONF": str(base / "containers.conf"),
           "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
           "XDG_RUNTIME_DIR": os.environ.get("XDG_RUNTIME_DIR") or str(base / "xdg")}

    def run(*args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["podman", *map(str, args)], capture_output=True, text=True,
                              env=env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(map(str, args))} exited "
                                 f"{proc.returncode}:\n{proc.stderr}")
        return proc

    yield run
    # Layers podman unpacked may hold files only the namespace can remove.
    subprocess.run(["podman", "unshare", "rm", "-rf", str(base / "graph")], env=env,
                   capture_output=True, timeout=120)
