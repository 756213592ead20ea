"""Fixtures shared by the whole suite (helpers live in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Rootless, make_busybox_rootfs_tar, runner


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def rootless(store_root: Path) -> Rootless:
    """Run the real CLI against a fresh store: ``rootless("images", "-q")``."""
    return runner(store_root)


@pytest.fixture
def rootless_at() -> Callable[[Path], Rootless]:
    """A runner for another store root (e.g. an empty store to pull into)."""
    return runner


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox root filesystem tarball (uncompressed), made offline."""
    return make_busybox_rootfs_tar(tmp_path_factory.mktemp("busybox") / "busybox.tar")
