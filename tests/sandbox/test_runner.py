"""The sandbox end to end, as an unprivileged user, in both ID-mapping modes."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from rootless.errors import SandboxError
from rootless.sandbox import ExecError, IdMapping, MountSpec, ProcessSpec, Sandbox
from tests.sandbox.helpers import run_in, sh


def test_root_inside_and_uid_map_shows_mapping(rootfs: Path, mapping: IdMapping) -> None:
    ran = sh(rootfs, mapping, "id -u; id -g; cat /proc/self/uid_map")
    assert ran.status == 0, ran.stderr
    lines = ran.stdout.split("\n")
    assert lines[:2] == ["0", "0"]
    uid_map = [line.split() for line in lines[2:] if line.strip()]
    assert uid_map[0] == ["0", str(os.geteuid()), "1"]
    if mapping.mode == "full":
        assert mapping.subuid is not None
        assert uid_map[1] == ["1", str(mapping.subuid.start), str(mapping.subuid.count)]
    else:
        assert len(uid_map) == 1


def test_full_mode_su_to_another_user(rootfs: Path) -> None:
    from tests.sandbox.conftest import full_mapping_or_skip

    ran = sh(rootfs, full_mapping_or_skip(), "su nobody -s /bin/sh -c 'id -u'")
    assert (ran.status, ran.stdout.strip()) == (0, "65534"), ran.stderr


def test_single_mode_fakes_chown_and_device_mknod(rootfs: Path) -> None:
    ran = sh(rootfs, IdMapping.single(),
             "touch /f && chown 1234:5678 /f && echo chown-ok; "
             "mknod /dev/shm/null2 c 1 3 && echo mknod-ok; "
             "mkfifo /fifo && [ -p /fifo ] && echo fifo-real")
    assert ran.status == 0, ran.stderr
    assert ran.stdout.split() == ["chown-ok", "mknod-ok", "fifo-real"]


def test_single_mode_without_filter_chown_fails(rootfs: Path) -> None:
    with tempfile.TemporaryFile() as err:
        status = Sandbox(str(rootfs), IdMapping.single(), fake_ownership=False).run(
            ProcessSpec(argv=("sh", "-c", "touch /f; chown 1234 /f"), stderr=err.fileno()))
    assert status != 0


@pytest.mark.parametrize(("script", "status"), [("true", 0), ("exit 3", 3),
                                                  ("kill -9 $$", 137)])
def test_exit_status_propagates(rootfs: Path, mapping: IdMapping, script: str,
                                status: int) -> None:
    assert sh(rootfs, mapping, script).status == status


def test_not_found_is_127(rootfs: Path, mapping: IdMapping) -> None:
    with pytest.raises(ExecError) as info:
        run_in(rootfs, mapping, "no-such-command")
    assert info.value.exit_code == 127
    assert 'exec: "no-such-command": executable file not found in $PATH' in str(info.value)
    with pytest.raises(ExecError) as info:
        run_in(rootfs, mapping, "/no/such/file")
    assert info.value.exit_code == 127


def test_not_executable_is_126(rootfs: Path, mapping: IdMapping) -> None:
    with pytest.raises(ExecError) as info:
        run_in(rootfs, mapping, "/etc/passwd")
    assert info.value.exit_code == 126
    assert "permission denied" in str(info.value)


def test_env_cwd_created_and_home_from_passwd(rootfs: Path, mapping: IdMapping) -> None:
    ran = sh(rootfs, mapping, 'pwd; echo "$FOO|$HOME|$PATH"', env={"FOO": "bar"},
             cwd="/work/dir")
    assert ran.status == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "/work/dir", "bar|/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_user_by_name_with_supplementary_groups(rootfs: Path) -> None:
    from tests.sandbox.conftest import full_mapping_or_skip

    with open(rootfs / "etc/group", "a") as f:
        f.write("staff:x:50:daemon\n")
    ran = sh(rootfs, full_mapping_or_skip(), "id -u; id -g; id -G; echo $HOME", user="daemon")
    assert ran.status == 0, ran.stderr
    assert ran.stdout.split("\n")[:4] == ["1", "1", "1 50", "/usr/sbin"]


def test_unknown_user_is_an_error(rootfs: Path, mapping: IdMapping) -> None:
    with pytest.raises(SandboxError, match="unable to find user nosuchuser"):
        sh(rootfs, mapping, "true", user="nosuchuser")


def test_read_only_bind_is_enforced(rootfs: Path, mapping: IdMapping, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("hello\n")
    ran = sh(rootfs, mapping, "cat /data/in; echo x > /data/out",
             mounts=(MountSpec(str(shared), "/data", readonly=True),))
    assert ran.stdout == "hello\n"
    assert ran.status != 0 and "Read-only file system" in ran.stderr
    assert not (shared / "out").exists()
    ran = sh(rootfs, mapping, "echo x > /data/out", mounts=(MountSpec(str(shared), "/data"),))
    assert ran.status == 0 and (shared / "out").read_text() == "x\n"


def test_tmpfs_mount_and_read_only_rootfs(rootfs: Path, mapping: IdMapping) -> None:
    ran = sh(rootfs, mapping, "echo ok > /scratch/f && cat /scratch/f; touch /newfile",
             mounts=(MountSpec("", "/scratch", kind="tmpfs"),), readonly_rootfs=True)
    assert ran.stdout == "ok\n"
    assert ran.status != 0 and "Read-only file system" in ran.stderr
    assert not (rootfs / "scratch" / "f").exists()


def test_network_none_has_only_loopback_up(rootfs: Path, mapping: IdMapping) -> None:
    ran = sh(rootfs, mapping, "ls /sys/class/net; cat /sys/class/net/lo/flags", network="none")
    assert ran.status == 0, ran.stderr
    name, flags = ran.stdout.split()
    assert name == "lo"
    assert int(flags, 16) & 0x1  # IFF_UP


def test_host_network_is_shared(rootfs: Path, mapping: IdMapping) -> None:
    ran = sh(rootfs, mapping, "ls /sys/class/net")
    assert sorted(ran.stdout.split()) == sorted(os.listdir("/sys/class/net"))


def test_hostname_and_etc_files_leave_image_untouched(rootfs: Path, mapping: IdMapping) -> None:
    (rootfs / "etc/hostname").write_text("image-hostname\n")
    ran = sh(rootfs, mapping, "hostname; cat /etc/hostname; grep -c box1 /etc/hosts",
             hostname="box1")
    assert ran.stdout.split() == ["box1", "box1", "1"], ran.stderr
    assert (rootfs / "etc/hostname").read_text() == "image-hostname\n"


def test_host_paths_outside_binds_are_invisible(rootfs: Path, mapping: IdMapping,
                                               tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("do not read\n")
    ran = sh(rootfs, mapping,
             f"cat {secret}; ls /; ls /home; cat /proc/1/root{secret} /proc/1/cwd{secret};"
             f"ls /proc/1/root/; echo x > {secret}; true")
    assert "do not read" not in ran.stdout
    assert secret.read_text() == "do not read\n"
    listing = sh(rootfs, mapping, "ls /").stdout.split()
    assert set(listing) <= {"bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr",
                            "var"}


def test_dev_has_host_devices_and_pts(rootfs: Path, mapping: IdMapping) -> None:
    ran = sh(rootfs, mapping, "ls /dev; head -c 4 /dev/zero | wc -c; echo x > /dev/null")
    assert ran.status == 0, ran.stderr
    names = ran.stdout.split()
    for name in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "fd",
                 "ptmx", "stdin", "stdout", "stderr"):
        assert name in names
    assert names[-1] == "4"


def test_proc_is_the_containers(rootfs: Path, mapping: IdMapping) -> None:
    ran = sh(rootfs, mapping, "echo $$; ls -d /proc/[0-9]* | wc -l")
    assert ran.stdout.split()[0] == "2"  # PID 1 is the sandbox's init
    assert int(ran.stdout.split()[1]) <= 4


def test_zombies_are_reaped(rootfs: Path, mapping: IdMapping) -> None:
    # The subshell exits at once, so sleep is orphaned to PID 1; once it exits,
    # only PID 1 can reap it. Poll its state with a deadline.
    script = """
        (sleep 0.1 & echo $! > /tmp/orphan)
        pid=$(cat /tmp/orphan); i=0
        while [ $i -lt 200 ]; do
            state=$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null) || { echo reaped; exit 0; }
            [ -z "$state" ] && { echo reaped; exit 0; }
            i=$((i+1)); sleep 0.05
        done
        echo "still $state"; exit 1
    """
    ran = sh(rootfs, mapping, script)
    assert (ran.status, ran.stdout.strip()) == (0, "reaped")


def test_sigterm_is_forwarded_to_the_command(rootfs: Path, mapping: IdMapping) -> None:
    read_fd, write_fd = os.pipe()
    spec = ProcessSpec(argv=("sh", "-c", "trap 'echo got-term; exit 42' TERM; echo ready; "
                             "while true; do sleep 0.05; done"), stdout=write_fd)
    process = Sandbox(str(rootfs), mapping).start(spec)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as out:
        assert out.readline() == b"ready\n"
        process.signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while (waited := os.waitpid(process.keeper_pid, os.WNOHANG)) == (0, 0):
            if time.monotonic() > deadline:
                process.signal(signal.SIGKILL)
                pytest.fail("SIGTERM was not forwarded")
            time.sleep(0.01)  # polling for the exit, with a deadline
        assert os.waitstatus_to_exitcode(waited[1]) == 42
        assert out.read() == b"got-term\n"


def test_sandbox_leaves_no_process_behind(rootfs: Path, mapping: IdMapping) -> None:
    marker = f"marker-{os.getpid()}-{time.monotonic_ns()}"
    ran = sh(rootfs, mapping, f"(exec -a {marker} sleep 30 &) ; true")
    assert ran.status == 0
    from tests.sandbox.helpers import host_pids_with

    assert host_pids_with(marker) == []


def test_missing_rootfs_is_a_sandbox_error(tmp_path: Path, mapping: IdMapping) -> None:
    with pytest.raises(SandboxError):
        run_in(tmp_path / "nope", mapping, "true")


def test_foreign_binary_is_diagnosed(rootfs: Path, mapping: IdMapping) -> None:
    from tests.helpers import EM_AARCH64, make_elf

    if os.uname().machine != "x86_64" or os.path.exists(
            "/proc/sys/fs/binfmt_misc/qemu-aarch64"):
        pytest.skip("needs an x86_64 host without arm64 emulation")
    (rootfs / "app").write_bytes(make_elf(EM_AARCH64))
    (rootfs / "app").chmod(0o755)
    with pytest.raises(ExecError) as info:
        run_in(rootfs, mapping, "/app")
    assert info.value.exit_code == 126
    assert str(info.value) == (
        'exec: "/app": image is linux/arm64, this host runs linux/amd64: '
        "install qemu-user-static binfmt support or use --platform")


def test_missing_interpreter_is_diagnosed(rootfs: Path, mapping: IdMapping) -> None:
    from tests.helpers import make_elf

    (rootfs / "app").write_bytes(make_elf(interpreter="/lib64/ld-linux-x86-64.so.2"))
    (rootfs / "app").chmod(0o755)
    with pytest.raises(ExecError) as info:
        run_in(rootfs, mapping, "/app")
    assert info.value.exit_code == 127
    assert str(info.value) == ('exec: "/app": /app needs /lib64/ld-linux-x86-64.so.2, which '
                               "this image lacks: built for glibc, image has musl?")


def i386_chown_program(path: bytes = b"/f") -> bytes:
    """A static 32-bit x86 program: chown(PATH, 1234, 1234) through int 0x80, then
    exit with the call's result (0 when it succeeded). Machine code by hand."""
    import struct

    base, code_offset = 0x08048000, 52 + 32
    code_len = 31
    path_addr = base + code_offset + code_len
    code = (b"\xb8" + struct.pack("<I", 182)          # mov eax, __NR_chown (i386)
            + b"\xbb" + struct.pack("<I", path_addr)  # mov ebx, path
            + b"\xb9" + struct.pack("<I", 1234)       # mov ecx, 1234
            + b"\xba" + struct.pack("<I", 1234)       # mov edx, 1234
            + b"\xcd\x80"                             # int 0x80
            + b"\x89\xc3"                             # mov ebx, eax
            + b"\xb8" + struct.pack("<I", 1)          # mov eax, __NR_exit
            + b"\xcd\x80")                            # int 0x80
    assert len(code) == code_len
    body = code + path + b"\0"
    size = code_offset + len(body)
    header = b"\x7fELF\x01\x01\x01\x00" + bytes(8) + struct.pack(
        "<HHIIIIIHHHHHH", 2, 3, 1, base + code_offset, 52, 0, 0, 52, 32, 1, 40, 0, 0)
    phdr = struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000)
    return header + phdr + body


def test_single_mode_fakes_32_bit_chown_too(rootfs: Path) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("an i386 program needs an x86_64 host")
    (rootfs / "c32").write_bytes(i386_chown_program())
    (rootfs / "c32").chmod(0o755)
    try:
        unfiltered = Sandbox(str(rootfs), IdMapping.single(), fake_ownership=False).run(
            ProcessSpec(argv=("sh", "-c", "touch /f; /c32")))
    except ExecError:
        pytest.skip("this kernel runs no 32-bit x86 programs")
    assert unfiltered != 0  # 1234 is not mapped: EINVAL
    assert sh(rootfs, IdMapping.single(), "touch /f; /c32").status == 0
