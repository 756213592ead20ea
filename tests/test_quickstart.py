"""The README's quick start, run as written: scripts/quickstart installs rootless into
a venv with pip (a real, non-editable install), builds the hello example on a
busybox base made offline and runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_quickstart_builds_and_runs_the_example(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(REPO / "scripts" / "quickstart"), str(tmp_path / "qs")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    greeting = "hello from a rootless container, running as uid 0\n"
    assert proc.stdout.count(greeting) == 2  # after the build, and after save/rmi/load
    assert "built in a RUN step as uid 0" in proc.stdout
    assert "Loaded image: hello:latest" in proc.stdout
