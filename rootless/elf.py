"""Why an executable cannot run: ELF (and #!) diagnostics with pyelftools.

``execve`` says only ENOENT or ENOEXEC.  The two usual causes deserve a
sentence a user can act on: a binary built for another architecture, and a
dynamically linked binary whose ELF interpreter the image lacks (a glibc
binary in a musl image, or the reverse).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

# e_machine (as pyelftools names it) → GOARCH-style name used in OCI platforms.
_ARCH_NAMES = {
    "EM_X86_64": "amd64", "EM_AARCH64": "arm64", "EM_386": "386", "EM_ARM": "arm",
    "EM_PPC64": "ppc64le", "EM_S390": "s390x", "EM_RISCV": "riscv64",
    "EM_MIPS": "mips64le", "EM_LOONGARCH": "loong64",
}
_UNAME_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm",
               "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    message: str
    hint: str = ""


def host_platform() -> str:
    machine = os.uname().machine
    return f"linux/{_UNAME_ARCH.get(machine, machine)}"


def _in_root(rootfs: str, path: str) -> str:
    from rootless.sandbox.mounts import resolve_in_root

    return resolve_in_root(rootfs, path)


def _container_path(host_path: str, rootfs: str) -> str:
    rel = os.path.relpath(host_path, rootfs)
    return "/" + rel if not rel.startswith("..") else host_path


def _libc_of_image(rootfs: str) -> str | None:
    if glob.glob(os.path.join(rootfs, "lib", "ld-musl-*.so.1")):
        return "musl"
    for pattern in ("lib*/ld-linux*.so.*", "lib/*/ld-linux*.so.*", "usr/lib*/ld-linux*.so.*"):
        if glob.glob(os.path.join(rootfs, pattern)):
            return "glibc"
    return None


def _missing_interpreter(shown: str, interp: str, rootfs: str) -> Diagnosis:
    built_for = "musl" if "musl" in interp else "glibc" if "ld-linux" in interp else None
    image_has = _libc_of_image(rootfs)
    text = f"{shown} needs {interp}, which this image lacks"
    if built_for and image_has and built_for != image_has:
        text += f": built for {built_for}, image has {image_has}"
    elif built_for == "glibc":
        text += ": built for glibc, image has musl?"
    elif built_for == "musl":
        text += ": built for musl, image has glibc?"
    return Diagnosis(text, "link the program statically, or use a base image with its C library")


def diagnose_exec_failure(host_path: str, rootfs: str = "/",
                          shown: str | None = None) -> Diagnosis | None:
    """A sentence explaining why HOST_PATH (inside ROOTFS) cannot be executed, or None.

    SHOWN is the program's path as the container sees it (default: relative to ROOTFS).
    """
    shown = shown or _container_path(host_path, rootfs)
    try:
        with open(host_path, "rb") as f:
            head = f.read(256)
            if head.startswith(b"#!"):
                interp = head[2:].split(b"\n", 1)[0].strip().split()[0:1]
                if interp and not os.path.exists(_in_root(rootfs, interp[0].decode())):
                    return Diagnosis(f"{shown} needs {interp[0].decode()} (its #! line), "
                                     "which this image lacks")
                return None
            if not head.startswith(b"\x7fELF"):
                return None
            f.seek(0)
            from elftools.common.exceptions import ELFError
            from elftools.elf.elffile import ELFFile

            try:
                elf = ELFFile(f)
                machine = elf.header.e_machine
                arch = _ARCH_NAMES.get(machine, str(machine))
                if arch == "ppc64le" and not elf.little_endian:
                    arch = "ppc64"
                host = host_platform()
                if f"linux/{arch}" != host:
                    return Diagnosis(f"image is linux/{arch}, this host runs {host}: install "
                                     "qemu-user-static binfmt support or use --platform")
                for segment in elf.iter_segments():
                    if segment["p_type"] == "PT_INTERP":
                        interp = segment.get_interp_name()  # type: ignore[attr-defined]
                        if not os.path.exists(_in_root(rootfs, interp)):
                            return _missing_interpreter(shown, interp, rootfs)
            except ELFError as exc:
                return Diagnosis(f"{shown} is not a valid ELF file ({exc})")
    except OSError:
        return None
    return None
