"""ID-mapping detection and the user-namespace fork other areas use."""

from __future__ import annotations

import os

import pytest

from rootless.errors import SandboxError
from rootless.sandbox import IdMapping, run_in_userns


def test_forced_single(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOTLESS_ID_MAPPING", "single")
    mapping = IdMapping.detect()
    assert mapping.mode == "single"
    assert mapping.uid_map() == [(0, os.geteuid(), 1)]


def test_forced_full_without_helpers_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOTLESS_ID_MAPPING", "full")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxError, match="newuidmap is not installed") as info:
        IdMapping.detect()
    assert info.value.hint and "uidmap" in info.value.hint


def test_auto_falls_back_to_single(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROOTLESS_ID_MAPPING", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert IdMapping.detect().mode == "single"


@pytest.mark.parametrize("mode", ["full", "single"])
def test_run_in_userns_is_root_and_returns_status(mode: str) -> None:
    from tests.sandbox.conftest import full_mapping_or_skip

    mapping = full_mapping_or_skip() if mode == "full" else IdMapping.single()
    read_fd, write_fd = os.pipe()

    def inside() -> int:
        os.write(write_fd, f"{os.getuid()} {os.getgid()}".encode())
        return 7

    assert run_in_userns(inside, mapping) == 7
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        assert f.read() == "0 0"


def test_run_in_userns_exception_is_status_1(capfd: pytest.CaptureFixture[str]) -> None:
    def inside() -> int:
        raise RuntimeError("boom")

    assert run_in_userns(inside, IdMapping.single()) == 1
    assert "RuntimeError: boom" in capfd.readouterr().err
