"""A RUN that chowns files to other users (full ID mapping): the layer records the
owners on every driver, and removing the image and pruning still frees everything
(no file in the store needs root or the namespace to delete)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.build.buildhelp import layer_tars
from tests.build.test_examples import full_mapping
from tests.helpers import runner

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("driver", ["overlay", "fuse", "vfs"])
def test_prune_removes_layers_with_sub_id_owners(tmp_path: Path, busybox_tar: Path,
                                                 driver: str) -> None:
    env = {**full_mapping(), "ROOTLESS_STORAGE_DRIVER": driver}
    root = tmp_path / "store"
    rl = runner(root)
    rl("import", busybox_tar, "busybox")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN mkdir -p /d/sub && echo x > /d/sub/f && chmod 700 /d/sub "
        "&& chown -R 65534:65534 /d\n")
    rl("build", "--progress", "plain", "-t", "owned", ctx, env=env)
    top = layer_tars(root, "owned", rl)[-1]
    owners = {m.name: (m.uid, m.gid, m.mode & 0o7777) for m in top.getmembers()}
    assert owners["d/sub"] == (65534, 65534, 0o700)
    assert owners["d/sub/f"][:2] == (65534, 65534)
    rl("rmi", "owned", "busybox", env=env)
    rl("builder", "prune", "-a", "-f", env=env)
    rl("system", "prune", "-a", "-f", env=env)
    leftovers = [p for p in (root / "layers").rglob("*")] if (root / "layers").exists() else []
    assert leftovers == [] or all(p.is_dir() and not any(p.iterdir()) for p in leftovers)


def test_root_run_sees_recorded_owners_with_auto_driver(tmp_path: Path,
                                                        busybox_tar: Path) -> None:
    # A later step must see what an earlier one chowned (as under Docker), also when
    # it runs as root: auto then uses a driver that presents recorded owners.
    env = {**full_mapping(), "ROOTLESS_STORAGE_DRIVER": "auto"}
    rl = runner(tmp_path / "store")
    rl("import", busybox_tar, "busybox")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN mkdir /n && chown 65534:65534 /n\n"
        "RUN stat -c %u:%g /n > /owner && su nobody -s /bin/sh -c 'touch /n/x'\n"
        'CMD ["cat", "/owner"]\n')
    rl("build", "--progress", "plain", "-t", "sees-owners", ctx, env=env)
    assert rl("run", "--rm", "sees-owners", env=env).stdout == "65534:65534\n"
