"""Fixtures shared by the whole suite (helpers live in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Rootless, make_busybox_rootfs_tar, make_debian_tar, runner


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite golden files (tests/golden/...) from the current output")


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    """True when the run should rewrite golden files instead of comparing them."""
    return bool(request.config.getoption("--update-goldens"))


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


@pytest.fixture(scope="session")
def debian_tar() -> Path:
    """A minimal Debian root filesystem tarball (mmdebstrap, cached per user)."""
    return make_debian_tar()
