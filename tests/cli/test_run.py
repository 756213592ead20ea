"""`rootless run` and the container verbs through the real CLI, in both ID-mapping modes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rootless.sandbox import IdMapping
from tests.helpers import EM_AARCH64, Rootless, make_elf, runner

pytestmark = pytest.mark.integration


def store_image(root: Path, busybox_tar: Path, config: dict[str, Any], tag: str) -> str:
    from rootless.reference import ImageReference
    from rootless.store import Store

    store = Store.open(root)
    with open(busybox_tar, "rb") as f:
        layer = store.put_layer(f)
    image = store.commit_image({"architecture": "amd64", "os": "linux", "config": config},
                               [layer], [ImageReference.parse(tag)])
    return str(image.image_id)


@pytest.fixture
def rl(store_root: Path, busybox_tar: Path, mode: str) -> Rootless:
    """The CLI on a store holding `busybox` (Cmd sh) in the given mapping mode."""
    store_image(store_root, busybox_tar, {"Cmd": ["sh"], "Env": [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}, "busybox")
    base = runner(store_root)

    def run(*args: Any, **kwargs: Any) -> Any:
        env = {"ROOTLESS_ID_MAPPING": mode, **(kwargs.pop("env", None) or {})}
        return base(*args, env=env, **kwargs)

    return run


def test_id_and_uid_map(rl: Rootless, mode: str) -> None:
    out = rl("run", "--rm", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map").stdout
    lines = out.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(os.geteuid()), "1"]
    assert len(lines) == (3 if mode == "full" else 2)


def test_full_mode_su_and_single_mode_chown(rl: Rootless, mode: str) -> None:
    if mode == "full":
        out = rl("run", "--rm", "busybox", "su", "nobody", "-s", "/bin/sh", "-c", "id -u")
        assert out.stdout.strip() == "65534"
    else:
        out = rl("run", "--rm", "busybox", "sh", "-c", "touch f && chown 1234 f && echo ok")
        assert out.stdout.strip() == "ok"


@pytest.mark.parametrize(("argv", "code"), [
    (["true"], 0), (["sh", "-c", "exit 3"], 3), (["/etc/passwd"], 126), (["nosuch"], 127)])
def test_exit_codes(rl: Rootless, argv: list[str], code: int) -> None:
    result = rl("run", "--rm", "busybox", *argv, check=False)
    assert result.returncode == code, result.stderr
    if code == 127:
        assert result.stderr.startswith('rootless: exec: "nosuch": executable file not found')


def test_arm64_binary_diagnostic(rl: Rootless, tmp_path: Path) -> None:
    if os.uname().machine != "x86_64" or os.path.exists(
            "/proc/sys/fs/binfmt_misc/qemu-aarch64"):
        pytest.skip("needs an x86_64 host without arm64 emulation")
    app = tmp_path / "app"
    app.write_bytes(make_elf(EM_AARCH64))
    app.chmod(0o755)
    result = rl("run", "--rm", "-v", f"{tmp_path}:/x:ro", "busybox", "/x/app", check=False)
    assert result.returncode == 126
    assert ("image is linux/arm64, this host runs linux/amd64: install qemu-user-static "
            "binfmt support or use --platform") in result.stderr


def test_missing_interpreter_diagnostic(rl: Rootless, tmp_path: Path) -> None:
    # The container's own layer holds the program: write it there, then run it.
    data = make_elf(interpreter="/lib64/ld-linux-x86-64.so.2")
    rl("run", "-i", "--name", "writer", "busybox", "sh", "-c", "cat > /app; chmod 755 /app",
       input=data)
    rl("commit", "writer", "withapp")
    result = rl("run", "--rm", "withapp", "/app", check=False)
    assert result.returncode == 127
    assert ("/app needs /lib64/ld-linux-x86-64.so.2, which this image lacks: built for "
            "glibc, image has musl?") in result.stderr


def test_sigterm_forwarded_through_cli(rl: Rootless, store_root: Path, mode: str) -> None:
    with subprocess.Popen(
            ["rootless", "--root", str(store_root), "run", "--rm", "busybox", "sh", "-c",
             "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.05; done"],
            stdout=subprocess.PIPE, env={**os.environ, "ROOTLESS_ID_MAPPING": mode}) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=20) == 42
        finally:
            proc.kill()
        assert proc.stdout.read() == b"got-term\n"


def _pids_with(marker: str) -> list[int]:
    from tests.sandbox.helpers import host_pids_with

    return host_pids_with(marker)


def test_sigkill_of_run_leaves_no_process_or_mount(rl: Rootless, store_root: Path,
                                                    mode: str) -> None:
    # A sleep whose argument no other process on the host has: it marks the container.
    marker = str(600000 + time.monotonic_ns() % 100000)
    with subprocess.Popen(
            ["rootless", "--root", str(store_root), "run", "--name", "victim", "busybox", "sh",
             "-c", f"echo ready; sleep {marker}"],
            stdout=subprocess.PIPE, env={**os.environ, "ROOTLESS_ID_MAPPING": mode}) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 10
        while not _pids_with(f"sleep\0{marker}"):
            assert time.monotonic() < deadline, "the container never started"
            time.sleep(0.01)
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while _pids_with(f"sleep\0{marker}"):
        assert time.monotonic() < deadline, "container processes outlived rootless run"
        time.sleep(0.01)
    with open("/proc/self/mountinfo") as f:
        assert str(store_root) not in f.read()
    assert "Exited" in rl("ps", "-a").stdout
    rl("rm", "victim")


def test_volume_read_only_and_host_invisible(rl: Rootless, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    result = rl("run", "--rm", "-v", f"{shared}:/data:ro", "busybox", "sh", "-c",
                f"touch /data/x; cat {secret}; cat /proc/1/root{secret}", check=False)
    assert "Read-only file system" in result.stderr
    assert "host secret" not in result.stdout
    assert not (shared / "x").exists()
    rl("run", "--rm", "-v", f"{shared}:/data", "busybox", "touch", "/data/y")
    assert (shared / "y").exists()


def test_network_none_only_loopback(rl: Rootless) -> None:
    out = rl("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net").stdout
    assert out.split() == ["lo"]


def test_read_only_rootfs_and_hostname(rl: Rootless) -> None:
    result = rl("run", "--rm", "--read-only", "--hostname", "web1", "busybox", "sh", "-c",
                "hostname; touch /x", check=False)
    assert result.stdout.strip() == "web1"
    assert result.returncode == 1 and "Read-only file system" in result.stderr


def test_env_merge_and_env_file(rl: Rootless, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nA=from-file\nB=file\n\nHOSTVAR\n")
    out = rl("run", "--rm", "--env-file", env_file, "-e", "B=cli", "-e", "C", "busybox", "sh",
             "-c", 'echo "$A|$B|${C-unset}|$HOSTVAR|$PATH"',
             env={"HOSTVAR": "h", "C": "from-host"}).stdout
    assert out.strip() == ("from-file|cli|from-host|h|/usr/local/sbin:/usr/local/bin:"
                           "/usr/sbin:/usr/bin:/sbin:/bin")


def test_workdir_and_user(rl: Rootless, mode: str) -> None:
    out = rl("run", "--rm", "-w", "/made/here", "busybox", "pwd").stdout
    assert out.strip() == "/made/here"
    if mode == "full":
        out = rl("run", "--rm", "-u", "daemon", "busybox", "sh", "-c", "id -u; id -g; echo $HOME")
        assert out.stdout.split() == ["1", "1", "/usr/sbin"]
        out = rl("run", "--rm", "-u", "1234:5678", "busybox", "sh", "-c", "id -u; id -g")
        assert out.stdout.split() == ["1234", "5678"]
    result = rl("run", "--rm", "-u", "nosuch", "busybox", "true", check=False)
    assert result.returncode == 125
    assert "unable to find user nosuch" in result.stderr


# Docker's documented ENTRYPOINT/CMD table (docs: "Understand how CMD and ENTRYPOINT
# interact"), with the run's arguments and --entrypoint on top.
ENTRYPOINT_TABLE = [
    # image Entrypoint, image Cmd, --entrypoint, args, expected argv
    (None, ["echo", "cmd"], None, [], "cmd"),
    (["echo", "ep"], None, None, [], "ep"),
    (["echo", "ep"], ["cmd"], None, [], "ep cmd"),
    (["echo", "ep"], ["cmd"], None, ["arg"], "ep arg"),
    (["/bin/sh", "-c", "echo shell-ep"], ["ignored"], None, [], "shell-ep"),
    (None, ["/bin/sh", "-c", "echo shell-cmd"], None, [], "shell-cmd"),
    (["echo", "ep"], ["cmd"], "echo", [], ""),
    (["echo", "ep"], ["cmd"], "echo", ["x", "y"], "x y"),
    (None, ["echo", "cmd"], None, ["echo", "args"], "args"),
]


@pytest.mark.parametrize(("entrypoint", "cmd", "override", "args", "expected"),
                         ENTRYPOINT_TABLE)
def test_entrypoint_cmd_table(store_root: Path, busybox_tar: Path, entrypoint: Any,
                              cmd: Any, override: str | None, args: list[str],
                              expected: str) -> None:
    config: dict[str, Any] = {"Env": ["PATH=/bin"]}
    if entrypoint is not None:
        config["Entrypoint"] = entrypoint
    if cmd is not None:
        config["Cmd"] = cmd
    store_image(store_root, busybox_tar, config, "ep")
    flags = ["--entrypoint", override] if override is not None else []
    out = runner(store_root)("run", "--rm", *flags, "ep", *args,
                             env={"ROOTLESS_ID_MAPPING": "single"})
    assert out.stdout.strip() == expected


def test_no_command_is_an_error(store_root: Path, busybox_tar: Path) -> None:
    store_image(store_root, busybox_tar, {}, "nocmd")
    result = runner(store_root)("run", "--rm", "nocmd", check=False)
    assert result.returncode != 0 and "no command specified" in result.stderr


def test_container_lifecycle(rl: Rootless) -> None:
    result = rl("run", "--name", "keep", "busybox", "sh", "-c", "echo kept > /f; exit 3",
                check=False)
    assert result.returncode == 3
    ps = rl("ps", "-a").stdout.splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                             "NAMES"]
    assert "Exited (3)" in ps[1] and ps[1].endswith("keep")
    assert rl("ps", "-q").stdout == ""
    cid = rl("ps", "-aq").stdout.strip()
    assert len(cid) == 12
    # start -a runs the same command again on the same writable layer
    assert rl("start", "-a", "keep", check=False).returncode == 3
    assert rl("run", "--rm", "busybox", "cat", "/f", check=False).returncode == 1  # image intact
    rl("commit", "-c", 'CMD ["cat", "/f"]', "keep", "kept:1")
    assert rl("run", "--rm", "kept:1").stdout == "kept\n"
    assert rl("rm", cid).stdout.strip() == cid
    assert rl("ps", "-aq").stdout == ""


def test_detached_logs_exec_rm_force(rl: Rootless) -> None:
    cid = rl("run", "-d", "--name", "bg", "busybox", "sh", "-c",
             "echo hello-log; while true; do sleep 0.05; done").stdout.strip()
    assert len(cid) == 64
    try:
        assert rl("ps", "-q").stdout.strip() == cid[:12]
        deadline = time.monotonic() + 10
        while "hello-log" not in rl("logs", "bg").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        out = rl("exec", "bg", "sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '")
        assert int(out.stdout.split()[0]) > 2  # inside the container's PID namespace
        assert rl("exec", "bg", "sh", "-c", "exit 7", check=False).returncode == 7
        result = rl("rm", "bg", check=False)
        assert result.returncode == 1 and "container is running" in result.stderr
    finally:
        rl("rm", "-f", "bg", check=False)
    assert rl("ps", "-aq").stdout == ""


def test_container_prune_and_group_verbs(rl: Rootless) -> None:
    rl("run", "--name", "a", "busybox", "true")
    rl("container", "run", "--name", "b", "busybox", "true")
    assert len(rl("container", "ls", "-aq").stdout.split()) == 2
    out = rl("container", "prune", "-f").stdout
    assert out.startswith("Deleted Containers:")
    assert rl("container", "ls", "-a", "-q").stdout == ""


def test_name_conflict_and_unknown_container(rl: Rootless) -> None:
    rl("run", "--name", "dup", "busybox", "true")
    result = rl("run", "--name", "dup", "busybox", "true", check=False)
    assert result.returncode != 0 and 'name "/dup" is already in use' in result.stderr
    result = rl("rm", "nope", check=False)
    assert result.returncode == 1 and "No such container: nope" in result.stderr


def test_unknown_image(store_root: Path) -> None:
    result = runner(store_root)("run", "--rm", "--pull", "never", "nosuchimage", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def _run_on_pty(store_root: Path, args: list[str], keys: bytes, rows: int = 33,
                cols: int = 101) -> tuple[int, bytes]:
    """Run the CLI with a pseudo-terminal of ROWS x COLS as its terminal; type KEYS."""
    import fcntl
    import select
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    with subprocess.Popen(["rootless", "--root", str(store_root), *args], stdin=slave,
                          stdout=slave, stderr=slave, start_new_session=True) as proc:
        os.close(slave)
        output = b""
        os.write(master, keys)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the terminal's last user is gone
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        os.close(master)
        return proc.wait(timeout=20), output


def test_tty_window_size_and_interactive_shell(rl: Rootless, store_root: Path,
                                               mode: str) -> None:
    os.environ["ROOTLESS_ID_MAPPING"] = mode
    try:
        code, out = _run_on_pty(store_root, ["run", "--rm", "-t", "busybox", "stty", "size"],
                                b"")
        assert code == 0
        assert b"33 101" in out
        code, out = _run_on_pty(store_root, ["run", "--rm", "-it", "busybox", "sh"],
                                b"tty; echo typed-$((40+2)); exit 5\n")
        assert code == 5
        assert b"/dev/pts/0" in out and b"typed-42" in out
    finally:
        del os.environ["ROOTLESS_ID_MAPPING"]


def test_debug_counts_faked_calls_in_single_mode(rl: Rootless, mode: str) -> None:
    result = rl("-D", "run", "--rm", "busybox", "sh", "-c",
                "touch /f; chown 12:34 /f; chown 1 /f; mknod /dev/shm/x c 1 3; mkfifo /p")
    if mode == "single":
        assert "rootless: seccomp: faked chown x2, mknodat x1" in result.stderr
    else:
        assert "seccomp" not in result.stderr


def test_rm_deletes_files_owned_by_sub_ids(rl: Rootless, store_root: Path, mode: str) -> None:
    if mode != "full":
        pytest.skip("only the full mapping writes files as sub-IDs")
    rl("run", "--name", "subids", "-u", "daemon", "busybox", "sh", "-c",
       "mkdir -p /tmp/d/e && echo x > /tmp/d/e/f && chmod 700 /tmp/d")
    owners = {p.stat().st_uid for p in (store_root / "containers").glob("*/upper/tmp/d")}
    assert owners and owners != {os.geteuid()}  # a sub-ID: not ours to delete directly
    rl("rm", "subids")
    assert list((store_root / "containers").iterdir()) == []


def test_run_with_stdout_closed(rl: Rootless, store_root: Path) -> None:
    # `rootless run ... >&-`: Python starts with sys.stdout None; the run still works.
    import os
    import subprocess

    env = {**os.environ, "ROOTLESS_ID_MAPPING": "single"}
    proc = subprocess.run(
        ["sh", "-c", f'rootless --root "{store_root}" run --rm busybox sh -c "exit 4" >&-'],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_bind_source_and_unknown_container_are_one_line_errors(rl: Rootless) -> None:
    result = rl("run", "--rm", "-v", "/nonexistent-root-owned/x:/x", "busybox", "true",
                check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "cannot create the missing host directory /nonexistent-root-owned/x" in result.stderr
    removed = rl("rm", "no-such-container", check=False)
    assert removed.returncode == 1
    assert removed.stderr == "rootless: No such container: no-such-container\n"


def test_interactive_tty_needs_a_terminal(rl: Rootless) -> None:
    result = rl("run", "--rm", "-it", "busybox", "true", input="", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("rootless: the input device is not a TTY\n")
    assert rl("run", "--rm", "-i", "busybox", "cat", input="piped\n").stdout == "piped\n"


def _tar_with_owned_dir(busybox_tar: Path, dest: Path) -> Path:
    """The busybox rootfs plus /n owned by nobody (65534:65534), mode 0755."""
    import tarfile

    with tarfile.open(busybox_tar) as src, tarfile.open(dest, "w") as out:
        for member in src:
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
        owned = tarfile.TarInfo("n")
        owned.type, owned.mode, owned.uid, owned.gid = tarfile.DIRTYPE, 0o755, 65534, 65534
        out.addfile(owned)
    return dest


def test_auto_driver_presents_recorded_owners_in_full_mode(store_root: Path, busybox_tar: Path,
                                                           tmp_path: Path) -> None:
    # Kernel overlayfs would show /n as root's; auto must pick a driver that shows the
    # owner the image records, so that nobody can write its own directory, as in Docker.
    if not isinstance(IdMapping.full_or_reason(), IdMapping):
        pytest.skip("full ID mapping unavailable here")
    rl = runner(store_root)
    rl("import", _tar_with_owned_dir(busybox_tar, tmp_path / "owned.tar"), "owned")
    env = {"ROOTLESS_ID_MAPPING": "full", "ROOTLESS_STORAGE_DRIVER": "auto"}
    for rm in (["--rm"], []):
        out = rl("run", *rm, "owned", "sh", "-c",
                 "stat -c %u:%g /n; su nobody -s /bin/sh -c 'touch /n/x' && echo written",
                 env=env).stdout
        assert out == "65534:65534\nwritten\n"
