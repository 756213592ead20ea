"""Fixtures for sandbox tests: an unpacked busybox root and both ID mappings."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from rootless.sandbox import IdMapping


@pytest.fixture
def rootfs(busybox_tar: Path, tmp_path: Path) -> Path:
    """A writable busybox root filesystem, unpacked for this test alone."""
    root = tmp_path / "rootfs"
    root.mkdir()
    with tarfile.open(busybox_tar) as tar:
        if hasattr(tarfile, "fully_trusted_filter"):
            tar.extractall(root, filter="fully_trusted")
        else:  # Debian 12's Python 3.11.2 predates extraction filters
            tar.extractall(root)
    return root


def full_mapping_or_skip() -> IdMapping:
    full = IdMapping.full_or_reason()
    if not isinstance(full, IdMapping):
        pytest.skip(f"full ID mapping unavailable: {full[0]}")
    return full


@pytest.fixture(params=["full", "single"])
def mapping(request: pytest.FixtureRequest) -> IdMapping:
    """Each test using this runs once per ID-mapping mode."""
    if request.param == "full":
        return full_mapping_or_skip()
    return IdMapping.single()
