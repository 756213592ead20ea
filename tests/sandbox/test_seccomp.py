"""The single-ID seccomp program, as data (the behaviour is tested in test_runner)."""

from __future__ import annotations

import struct

import pytest

from rootless.sandbox.seccomp import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_USER_NOTIF,
    fake_ownership_program,
)


def instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_program_is_well_formed(machine: str) -> None:
    code = instructions(fake_ownership_program(machine))
    assert 10 < len(code) < 128
    assert code[0] == (0x20, 0, 0, 4)  # load the architecture first
    for index, (op, jt, jf, _k) in enumerate(code):
        if op & 0x07 == 0x05:  # jumps stay inside the program
            assert index + 1 + max(jt, jf) < len(code)
    returns = {k for op, _, _, k in code if op == 0x06}
    assert returns == {SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO}


def test_notify_variant_returns_user_notif() -> None:
    returns = {k for op, _, _, k in instructions(fake_ownership_program("x86_64", notify=True))
               if op == 0x06}
    assert returns == {SECCOMP_RET_ALLOW, SECCOMP_RET_USER_NOTIF}


def test_unknown_architecture_gives_no_filter() -> None:
    assert fake_ownership_program("sparc64") == b""
