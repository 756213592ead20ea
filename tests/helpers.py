"""Helpers shared by tests: the CLI runner and offline base images."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


Rootless = Callable[..., Result]


def runner(root: Path) -> Rootless:
    """A function running ``rootless --root ROOT ARGS``; raises on failure unless check=False."""

    def run(
        *args: str | os.PathLike[str],
        input: str | bytes | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 300,
    ) -> Result:
        cmd = ["rootless", "--root", str(root), *map(str, args)]
        full_env = {**os.environ, **(env or {})}
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(cmd, input=data, capture_output=True, env=full_env, cwd=cwd,
                              timeout=timeout)
        result = Result(proc.returncode, proc.stdout.decode(errors="replace"),
                        proc.stderr.decode(errors="replace"))
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    return run


def busybox_applets() -> Sequence[str]:
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def make_busybox_rootfs_tar(dest: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A minimal, real root filesystem: busybox-static plus its applet links."""
    if not BUSYBOX.exists():
        pytest.skip("busybox-static is not installed")

    def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        info.mtime = 1700000000
        tar.addfile(info)

    def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.mtime = 1700000000
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(dest, "w") as tar:
        for d in ("bin", "etc", "root", "home", "usr", "usr/bin", "var", "dev", "proc", "sys"):
            add_dir(tar, d)
        add_dir(tar, "tmp", 0o1777)
        add_file(tar, "bin/busybox", BUSYBOX.read_bytes(), 0o755)
        for applet in busybox_applets():
            if applet == "busybox":
                continue
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            info.mtime = 1700000000
            tar.addfile(info)
        add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                 b"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                 b"nobody:x:65534:65534:nobody:/home:/bin/false\n")
        add_file(tar, "etc/group", b"root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n")
        for name, data in (extra or {}).items():
            add_file(tar, name, data)
    return dest


def tar_bytes(files: dict[str, bytes | None]) -> bytes:
    """A small uncompressed tar: each name holds its bytes, or is a directory for None."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def which(tool: str) -> str:
    """The path of a peer tool, or skip the test naming what is missing."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


EM_X86_64, EM_AARCH64 = 62, 183


def make_elf(machine: int = EM_X86_64, interpreter: str | None = None) -> bytes:
    """A minimal 64-bit little-endian ELF executable header, written by hand.

    With INTERPRETER it carries a PT_INTERP segment naming it, as a
    dynamically linked program does. It has no code: only exec's checks matter.
    """
    import struct

    phnum = 1 if interpreter else 0
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0x400000, 64 if phnum else 0, 0,
                          0, 64, 56, phnum, 64, 0, 0)
    if not interpreter:
        return header
    name = interpreter.encode() + b"\0"
    offset = 64 + 56
    segment = struct.pack("<IIQQQQQQ", 3, 4, offset, offset, offset, len(name), len(name), 1)
    return header + segment + name


def build_deb(dest: Path, name: str, script: str) -> Path:
    """A tiny real .deb made with dpkg-deb, installing /usr/bin/NAME."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    root = dest / f"{name}-pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: rootless tests "
        "<tests@example.invalid>\nDescription: test package built by the rootless tests\n")
    tool = root / "usr" / "bin" / name
    tool.write_text(script)
    tool.chmod(0o755)
    out = dest / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)],
                   check=True, capture_output=True)
    return out


def make_debian_tar() -> Path:
    """A minimal Debian (bookworm, variant ``apt``) made by mmdebstrap as this user.

    mmdebstrap reads the host's apt sources; the tarball is kept in the test user's
    cache, so only the first run downloads. Skips the test, saying why, if it can't.
    """
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rootless-test"
    cache.mkdir(parents=True, exist_ok=True)
    tar = cache / "mmdebstrap-bookworm-apt.tar"
    if not tar.exists():
        partial = cache / f"mmdebstrap-apt.{os.getpid()}.tar"
        proc = subprocess.run(["mmdebstrap", "--mode=unshare", "--variant=apt", "--format=tar",
                               "bookworm", str(partial)], capture_output=True, text=True,
                              timeout=900)
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            pytest.skip(f"mmdebstrap could not make a Debian rootfs: {proc.stderr[-300:]}")
        partial.rename(tar)
    return tar
