"""The single-ID mode's seccomp filter: ownership changes that report success.

With only container root mapped, ``chown 1234 f``, ``setuid(100)`` (apt's
sandbox user), ``setgroups`` or ``mknod`` of a device node fail with EINVAL or
EPERM, and package managers abort.  This classic BPF program makes the kernel
return 0 for them without doing anything (SECCOMP_RET_ERRNO with errno 0), as
charliecloud's ``--force=seccomp`` does.  ``mknod`` of FIFOs, sockets and plain
files is left alone: those work and must really happen.

The kernel keeps no count of filter hits.  To count them (``--debug``), the
filter answers SECCOMP_RET_USER_NOTIF instead and the container's init serves
the notifications from a thread (``FakedCallCounter``): each faked call then
costs a round trip through Python, so this is for debugging only.  ptrace
(SECCOMP_RET_TRACE) is never used.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from rootless.sandbox import libc

# struct seccomp_data offsets
_NR = 0
_ARCH = 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index  # little-endian: the low 32 bits come first


# BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_AND_K = 0x54
_RET_K = 0x06

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000

S_IFMT = 0o170000
S_IFCHR = 0o020000
S_IFBLK = 0o060000

@dataclass(frozen=True, slots=True)
class _Abi:
    """One system-call ABI a process of this machine may use."""

    audit_arch: int
    calls: dict[str, int]
    mknods: dict[str, tuple[int, int]]  # name → (number, index of the mode argument)
    nr_mask: int = 0xFFFFFFFF


_X86_64 = _Abi(0xC000003E, {
    "chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260,
    "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114,
    "setgroups": 116, "setresuid": 117, "setresgid": 119,
    "setfsuid": 122, "setfsgid": 123,
}, {"mknod": (133, 1), "mknodat": (259, 2)}, nr_mask=0xBFFFFFFF)  # x32 too: its bit cleared
_I386 = _Abi(0x40000003, {
    "lchown": 16, "setuid": 23, "setgid": 46, "setreuid": 70, "setregid": 71,
    "setgroups": 81, "fchown": 95, "setfsuid": 138, "setfsgid": 139, "setresuid": 164,
    "setresgid": 170, "chown": 182, "lchown32": 198, "setreuid32": 203, "setregid32": 204,
    "setgroups32": 206, "fchown32": 207, "setresuid32": 208, "setresgid32": 210,
    "chown32": 212, "setuid32": 213, "setgid32": 214, "setfsuid32": 215, "setfsgid32": 216,
    "fchownat": 298,
}, {"mknod": (14, 1), "mknodat": (297, 2)})
_AARCH64 = _Abi(0xC00000B7, {
    "fchown": 55, "fchownat": 54, "setuid": 146, "setgid": 144,
    "setreuid": 145, "setregid": 143, "setgroups": 159, "setresuid": 147,
    "setresgid": 149, "setfsuid": 151, "setfsgid": 152,
}, {"mknodat": (33, 2)})

# Per machine: the native ABI first, then the compat ones (32-bit x86 programs).
_ABIS: dict[str, tuple[_Abi, ...]] = {"x86_64": (_X86_64, _I386), "aarch64": (_AARCH64,)}

FAKED_CALLS: tuple[str, ...] = tuple(sorted(
    name for abi in _ABIS.get(os.uname().machine, ())[:1] for name in (*abi.calls, *abi.mknods)))


class _Program:
    """A tiny assembler: instructions with symbolic jump targets."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int | str, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int, jt: int | str = 0, jf: int | str = 0) -> None:
        self.code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = bytearray()
        for index, (code, jt, jf, k) in enumerate(self.code):
            offsets = []
            for target in (jt, jf):
                offset = target if isinstance(target, int) else \
                    self.labels[target] - index - 1
                if not 0 <= offset <= 255:
                    raise ValueError("BPF jump out of range")
                offsets.append(offset)
            out += struct.pack("=HBBI", code, offsets[0], offsets[1], k)
        return bytes(out)


def fake_ownership_program(machine: str | None = None, notify: bool = False) -> bytes:
    """The BPF program for this machine (empty if the architecture is unknown).

    With NOTIFY, faked calls go to a user-space supervisor instead of
    returning 0 directly (for counting them).
    """
    fake = SECCOMP_RET_USER_NOTIF if notify else SECCOMP_RET_ERRNO | 0
    abis = _ABIS.get(machine or os.uname().machine)
    if not abis:
        return b""
    prog = _Program()
    for index, abi in enumerate(abis):
        # Each block reloads the architecture: a call of another ABI falls through.
        prog.label(f"abi{index}")
        prog.op(_LD_W_ABS, _ARCH)
        prog.op(_JEQ_K, abi.audit_arch, 0,
                f"abi{index + 1}" if index + 1 < len(abis) else "allow")
        prog.op(_LD_W_ABS, _NR)
        if abi.nr_mask != 0xFFFFFFFF:
            prog.op(_AND_K, abi.nr_mask)
        for number in sorted(abi.calls.values()):
            prog.op(_JEQ_K, number, "fake", 0)
        for name, (number, _) in sorted(abi.mknods.items()):
            prog.op(_JEQ_K, number, f"check{index}_{name}", 0)
    prog.label(f"abi{len(abis)}")
    prog.label("allow")
    prog.op(_RET_K, SECCOMP_RET_ALLOW)
    prog.label("fake")
    prog.op(_RET_K, fake)
    for index, abi in enumerate(abis):
        for name, (_, mode_arg) in sorted(abi.mknods.items()):
            label = f"{index}_{name}"
            prog.label(f"check{label}")
            prog.op(_LD_W_ABS, _arg_low(mode_arg))
            prog.op(_AND_K, S_IFMT)
            # BPF jumps only forward: each check ends with its own two returns.
            prog.op(_JEQ_K, S_IFCHR, f"fake{label}", 0)
            prog.op(_JEQ_K, S_IFBLK, f"fake{label}", f"allow{label}")
            prog.label(f"allow{label}")
            prog.op(_RET_K, SECCOMP_RET_ALLOW)
            prog.label(f"fake{label}")
            prog.op(_RET_K, fake)
    return prog.assemble()


def install_fake_ownership(notify: bool = False) -> int | None:
    """Install the filter on this process (inherited by everything it execs).

    With NOTIFY, returns the listener descriptor a ``FakedCallCounter`` must
    serve (every faked call blocks until it is answered).
    """
    program = fake_ownership_program(notify=notify)
    if not program:
        return None
    libc.set_no_new_privs()
    if notify:
        return libc.install_seccomp_listener(program)
    libc.install_seccomp(program)
    return None


_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif), 80 bytes
_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp), 24 bytes


class FakedCallCounter:
    """Answers the filter's notifications with success and counts them by name."""

    def __init__(self, listener: int) -> None:
        import threading

        self.names: dict[tuple[int, int], str] = {}
        for abi in _ABIS.get(os.uname().machine, ()):
            self.names.update({(abi.audit_arch, nr): name for name, nr in abi.calls.items()})
            self.names.update({(abi.audit_arch, nr): name
                               for name, (nr, _) in abi.mknods.items()})
        self.masks = {abi.audit_arch: abi.nr_mask for abi in _ABIS.get(os.uname().machine, ())}
        self.counts: dict[str, int] = {}
        self.listener = listener
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import fcntl

        while True:
            request = bytearray(80)
            try:
                fcntl.ioctl(self.listener, _NOTIF_RECV, request, True)
            except OSError as exc:
                if exc.errno in (4, 2):  # EINTR; ENOENT: the caller died meanwhile
                    continue
                return
            ident, _pid, _flags, nr, arch = struct.unpack_from("=QIIiI", request)
            nr &= self.masks.get(arch, 0xFFFFFFFF)
            name = self.names.get((arch, nr), str(nr))
            self.counts[name] = self.counts.get(name, 0) + 1
            try:
                fcntl.ioctl(self.listener, _NOTIF_SEND,
                            bytearray(struct.pack("=QqiI", ident, 0, 0, 0)), True)
            except OSError:
                continue

    def summary(self) -> str:
        if not self.counts:
            return "no calls faked"
        return "faked " + ", ".join(f"{name} x{count}"
                                    for name, count in sorted(self.counts.items()))
