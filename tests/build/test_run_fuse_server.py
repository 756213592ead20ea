"""A RUN step on the fuse driver: the FUSE server serving the step's root is not one of
the step's processes (it cannot list it, and `kill -9 -1` cannot take its files away)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rootless.cowfs.driver import unavailable
from tests.helpers import runner

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["full", "single"])
def test_run_step_cannot_see_or_kill_the_fuse_server(tmp_path: Path, busybox_tar: Path,
                                                     mode: str) -> None:
    why = unavailable("fuse")
    if why is not None:
        pytest.skip(f"fuse driver unavailable: {why}")
    if mode == "full":
        from tests.build.test_examples import full_mapping

        full_mapping()  # skips where the full mapping is not available
    env = {"ROOTLESS_ID_MAPPING": mode, "ROOTLESS_STORAGE_DRIVER": "fuse"}
    rl = runner(tmp_path / "store")
    rl("import", busybox_tar, "busybox")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    # Shell built-ins only while listing, so no helper process shows up.
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        'RUN echo "$$" > /self; for p in /proc/[0-9]*; do echo "${p#/proc/}" >> /pids; done\n'
        "RUN sleep 1000 & kill -9 -1; wait; cat /etc/passwd > /dev/null && echo alive > /alive\n"
        'CMD ["cat", "/self", "/pids", "/alive"]\n')
    rl("build", "--progress", "plain", "-t", "probe", ctx, env=env, timeout=120)
    out = rl("run", "--rm", "probe", env=env).stdout.split()
    me, pids, alive = int(out[0]), sorted(int(p) for p in out[1:-1]), out[-1]
    assert pids == sorted({1, me})
    assert alive == "alive"
