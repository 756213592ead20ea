"""ELF diagnostics for programs that cannot be executed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rootless.elf import diagnose_exec_failure, host_platform
from tests.helpers import EM_AARCH64, EM_X86_64, make_elf

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64",
                                reason="the hand-made 'foreign' binary is arm64")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o755)
    return path


def test_foreign_architecture(tmp_path: Path) -> None:
    app = write(tmp_path / "app", make_elf(EM_AARCH64))
    diagnosis = diagnose_exec_failure(str(app), str(tmp_path))
    assert diagnosis is not None
    assert diagnosis.message == (
        "image is linux/arm64, this host runs linux/amd64: install qemu-user-static "
        "binfmt support or use --platform")
    assert host_platform() == "linux/amd64"


def test_missing_glibc_interpreter_in_a_musl_image(tmp_path: Path) -> None:
    app = write(tmp_path / "app", make_elf(EM_X86_64, "/lib64/ld-linux-x86-64.so.2"))
    write(tmp_path / "lib/ld-musl-x86_64.so.1", b"")
    diagnosis = diagnose_exec_failure(str(app), str(tmp_path))
    assert diagnosis is not None
    assert diagnosis.message == ("/app needs /lib64/ld-linux-x86-64.so.2, which this image "
                                 "lacks: built for glibc, image has musl")


def test_missing_interpreter_unknown_libc(tmp_path: Path) -> None:
    app = write(tmp_path / "usr/bin/app", make_elf(EM_X86_64, "/lib64/ld-linux-x86-64.so.2"))
    diagnosis = diagnose_exec_failure(str(app), str(tmp_path))
    assert diagnosis is not None
    assert diagnosis.message == ("/usr/bin/app needs /lib64/ld-linux-x86-64.so.2, which this "
                                 "image lacks: built for glibc, image has musl?")


def test_interpreter_present_means_no_diagnosis(tmp_path: Path) -> None:
    app = write(tmp_path / "app", make_elf(EM_X86_64, "/lib64/ld-linux-x86-64.so.2"))
    write(tmp_path / "lib64/ld-linux-x86-64.so.2", b"")
    assert diagnose_exec_failure(str(app), str(tmp_path)) is None


def test_interpreter_found_through_image_symlinks(tmp_path: Path) -> None:
    app = write(tmp_path / "app", make_elf(EM_X86_64, "/lib64/ld-linux-x86-64.so.2"))
    write(tmp_path / "usr/lib64/ld-linux-x86-64.so.2", b"")
    (tmp_path / "lib64").symlink_to("/usr/lib64")  # absolute: inside the image, not the host
    assert diagnose_exec_failure(str(app), str(tmp_path)) is None


def test_real_dynamic_binary_without_its_loader(tmp_path: Path) -> None:
    true = shutil.which("true")
    assert true is not None
    app = write(tmp_path / "bin/true", Path(true).read_bytes())
    diagnosis = diagnose_exec_failure(str(app), str(tmp_path))
    assert diagnosis is not None
    assert diagnosis.message.startswith("/bin/true needs /lib64/ld-linux-x86-64.so.2")


def test_missing_script_interpreter(tmp_path: Path) -> None:
    script = write(tmp_path / "run.sh", b"#!/bin/bash -e\necho hi\n")
    diagnosis = diagnose_exec_failure(str(script), str(tmp_path))
    assert diagnosis is not None
    assert diagnosis.message == "/run.sh needs /bin/bash (its #! line), which this image lacks"


def test_not_elf_gives_nothing(tmp_path: Path) -> None:
    assert diagnose_exec_failure(str(write(tmp_path / "data", b"hello")), str(tmp_path)) is None
    assert diagnose_exec_failure(str(tmp_path / "missing"), str(tmp_path)) is None
