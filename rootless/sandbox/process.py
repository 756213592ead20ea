"""The two processes inside the container: PID 1 (init) and the command.

init (PID 1) finds the root filesystem already mounted (by the keeper, see
``runner``), forks the command, forwards SIGINT/SIGTERM/SIGHUP to it, reaps
every zombie, and exits with the command's status.  The command's process
unshares one more mount namespace, builds the container's mount tree there,
pivots into it, takes the configured user and directory, and execs.

Failures before exec are written to the status pipe as one line
``err CODE\\tMESSAGE\\tHINT`` (CODE: 125 setup, 126 cannot execute, 127 not
found, as Docker); the parent turns it into an exception.  Nothing may be
imported after pivot_root (the host's Python is gone), so the command's
process reports a failed execve to init (``exec ERRNO\\tPATH\\tNAME``),
which still sees the root filesystem at its host path and explains it with
pyelftools, imported only then.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from rootless.errors import RootlessError
from rootless.sandbox import libc
from rootless.sandbox.mounts import enter_rootfs, loopback_up, resolve_in_root
from rootless.sandbox.spec import DEFAULT_PATH, MountSpec, ProcessSpec
from rootless.sandbox.users import resolve_user

# socket, termios and the seccomp module serve only -t, --debug and single-ID
# mode: imported when those need them (`rootless run` start-up latency counts).
if TYPE_CHECKING:
    import socket

    from rootless.sandbox.seccomp import FakedCallCounter

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)


class ExecFailure(Exception):
    def __init__(self, code: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


def report(status_fd: int, code: int, message: str, hint: str = "") -> None:
    line = f"err {code}\t{message}\t{hint}".replace("\n", " ") + "\n"
    try:
        os.write(status_fd, line.encode(errors="replace")[:4000])
    except OSError:
        pass


def report_failure(status_fd: int, exc: BaseException) -> None:
    """Report why the container could not be set up, as a status line."""
    if isinstance(exc, RootlessError):
        report(status_fd, 125, exc.message, exc.hint or "")
    elif isinstance(exc, OSError):
        report(status_fd, 125, f"preparing the container: {exc}")
    else:
        report(status_fd, 125, f"preparing the container: {exc!r}")


def init_main(spec: ProcessSpec, root: str, full_mapping: bool,
              fake_ownership: bool, stdio: Stdio, status_fd: int,
              count_faked: bool = False) -> NoReturn:
    """PID 1 of the container, with ROOT (a host path) already mounted; never returns."""
    code = 125
    try:
        libc.set_pdeathsig(signal.SIGKILL)
        # init keeps the host's view of the file system (it explains failed execs
        # from host paths); not dumpable, its /proc/1/root and /proc/1/cwd are
        # closed to the container's processes (the check needs CAP_SYS_PTRACE
        # in the user namespace of init's memory: the host's).
        libc.prctl(libc.PR_SET_DUMPABLE, 0)
        if spec.network == "none":
            loopback_up()
        if spec.hostname:
            libc.sethostname(spec.hostname)
        # Signals that arrive before the command's PID is known wait, blocked.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
        exec_r, exec_w = os.pipe2(os.O_CLOEXEC)
        counting = None
        if count_faked and fake_ownership:
            import socket

            counting = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            os.close(exec_r)
            command_main(spec, root, full_mapping, fake_ownership, stdio, exec_w,
                         counting[1].fileno() if counting else None)
        install_forwarding(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
        os.close(exec_w)
        counter = serve_faked_calls(counting) if counting else None
        for fd in set(stdio.fds()):
            if fd > 2:
                os.close(fd)
        relay_command_status(exec_r, status_fd, root, spec)
        code = supervise(pid)
        if counter is not None:
            print(f"rootless: seccomp: {counter.summary()}", file=sys.stderr)
    except BaseException as exc:
        report_failure(status_fd, exc)
    finally:
        os._exit(code)


def serve_faked_calls(pair: tuple[socket.socket, socket.socket]) -> FakedCallCounter | None:
    """Receive the command's seccomp listener and answer it from a thread.

    This must run before the command's first faked call (its own setgroups),
    which blocks until answered; None if the command failed before its filter.
    """
    import socket

    from rootless.sandbox.seccomp import FakedCallCounter

    ours, theirs = pair
    theirs.close()
    with ours:
        _, fds, _, _ = socket.recv_fds(ours, 16, 1)
    return FakedCallCounter(fds[0]) if fds else None


def relay_command_status(exec_r: int, status_fd: int, rootfs: str,
                         spec: ProcessSpec) -> None:
    """Wait until the command exec'd (EOF) or failed; pass its report on."""
    with os.fdopen(exec_r, "rb") as f:
        text = f.read().decode(errors="replace")
    os.write(status_fd, diagnose_report(text, rootfs, spec.mounts).encode())
    os.close(status_fd)


def host_path(path: str, rootfs: str, mounts: Sequence[MountSpec] = ()) -> str:
    """Where container PATH is as seen from outside its mount tree (binds included)."""
    for mount in sorted(mounts, key=lambda m: len(m.target), reverse=True):
        target = mount.target.rstrip("/") or "/"
        if mount.kind == "bind" and (path == target or path.startswith(target + "/")):
            return mount.source + path[len(target):]
    return resolve_in_root(rootfs, path)


def diagnose_report(text: str, rootfs: str, mounts: Sequence[MountSpec] = ()) -> str:
    """Status lines with each ``exec ...`` failure replaced by its ``err`` explanation."""
    out = []
    for line in text.splitlines():
        if line.startswith("exec "):
            number, path, name = [*line[5:].split("\t"), "", ""][:3]
            exc = OSError(int(number), os.strerror(int(number)))
            failure = exec_failure(host_path(path, rootfs, mounts), rootfs, name, exc, path)
            line = f"err {failure.code}\t{failure.message}\t{failure.hint}".replace("\n", " ")
        if line:
            out.append(line + "\n")
    return "".join(out)


def install_forwarding(child: int) -> None:
    """From now on, the signals a container's PID 1 receives go to CHILD."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)


def supervise(child: int) -> int:
    """Reap every process until CHILD exits; return CHILD's exit status."""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 125
        if pid == child:
            return exit_code(status)


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def command_main(spec: ProcessSpec, rootfs: str, full_mapping: bool, fake_ownership: bool,
                 stdio: Stdio, status_fd: int, counter_socket: int | None = None) -> NoReturn:
    """The container's command, PID 2; never returns."""

    def prepare() -> None:
        libc.unshare(libc.CLONE_NEWNS)
        enter_rootfs(rootfs, spec, full_mapping)

    become_and_exec(spec, full_mapping, fake_ownership, stdio, status_fd, prepare,
                    counter_socket)


def become_and_exec(spec: ProcessSpec, full_mapping: bool, fake_ownership: bool,
                    stdio: Stdio, status_fd: int,
                    prepare: Callable[[], None] | None = None,
                    counter_socket: int | None = None) -> NoReturn:
    """Take SPEC's user, directory, stdio and environment, and exec; never returns.

    Runs inside the container's root (PREPARE gets it there first). A failed
    execve is reported as ``exec ERRNO\\tPATH\\tNAME`` on STATUS_FD for a
    process outside to diagnose; other failures as ``err CODE\\t...``.
    """
    try:
        import_optional_parts(stdio, fake_ownership)  # before PREPARE's pivot_root
        # Python ignores SIGPIPE and SIGXFSZ; ignored signals survive execve.
        for signum in (*FORWARDED_SIGNALS, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if prepare is not None:
            prepare()
        env = dict(spec.env)
        env.setdefault("PATH", DEFAULT_PATH)
        user = resolve_user(spec.user)
        env.setdefault("HOME", user.home)
        if fake_ownership:
            point_apt_at_root_sandbox(env)
        os.makedirs(spec.cwd, exist_ok=True)
        fds = stdio.fds() if stdio.console is None else (open_console(stdio),) * 3
        for target, fd in enumerate(fds):
            if fd != target:
                os.dup2(fd, target)
        if stdio.console is not None:
            import termios

            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if fake_ownership:
            import socket

            from rootless.sandbox.seccomp import install_fake_ownership

            listener = install_fake_ownership(notify=counter_socket is not None)
            if listener is not None and counter_socket is not None:
                with socket.socket(fileno=os.dup(counter_socket)) as sock:
                    socket.send_fds(sock, [b"listener"], [listener])
                os.close(listener)
        if full_mapping or (not fake_ownership and (user.uid, user.gid) != (0, 0)):
            # Single-ID mode: only root exists, which we already are; the filter
            # would only pretend (and count) the switch, so it is not attempted.
            os.setgroups(list(user.groups))
            os.setresgid(user.gid, user.gid, user.gid)
            os.setresuid(user.uid, user.uid, user.uid)
        os.chdir(spec.cwd)
        libc.close_range_cloexec(3)
        execute(list(spec.argv), env)
    except ExecFailure as exc:
        if exc.code == 0:  # execve failed: the caller diagnoses it
            os.write(status_fd, f"exec {exc.message}\n".encode(errors="replace"))
            os._exit(126)
        report(status_fd, exc.code, exc.message, exc.hint)
        os._exit(exc.code)
    except RootlessError as exc:
        report(status_fd, 125, exc.message, exc.hint or "")
    except OSError as exc:
        report(status_fd, 125, f"preparing the container: {exc}")
    except BaseException as exc:
        report(status_fd, 125, f"preparing the container: {exc!r}")
    os._exit(125)


def import_optional_parts(stdio: Stdio, fake_ownership: bool) -> None:
    """Import what the command's process needs for -t, and in single-ID mode.

    Nothing can be imported once the process is inside the container's root
    (after pivot_root, or the chroot of ``exec``): call this before. These are not
    imported at module level because ``rootless run`` start-up latency counts.
    """
    import importlib

    names = []
    if stdio.console is not None:
        names += ["socket", "termios"]
    if fake_ownership:
        names += ["socket", "rootless.sandbox.seccomp"]
    for name in names:
        importlib.import_module(name)


@dataclass(frozen=True, slots=True)
class Stdio:
    """The command's standard descriptors, or (``-t``) a socket to send its terminal on."""

    stdin: int
    stdout: int
    stderr: int
    console: int | None = None
    winsize: bytes | None = None

    def fds(self) -> tuple[int, int, int]:
        return (self.stdin, self.stdout, self.stderr)


def open_console(stdio: Stdio) -> int:
    """A pseudo-terminal from the container's own devpts (so ``tty`` names it and
    /dev/pts shows it); its master goes to the caller over the console socket."""
    import socket
    import termios

    assert stdio.console is not None
    master, slave = os.openpty()  # /dev/ptmx is the container's after pivot_root
    if stdio.winsize:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, stdio.winsize)
    with socket.socket(fileno=os.dup(stdio.console)) as sock:
        socket.send_fds(sock, [b"pty"], [master])
    os.close(master)
    return slave


APT_CONFIG_FILE = "/dev/.rootless/apt.conf"


def point_apt_at_root_sandbox(env: dict[str, str]) -> None:
    """Single-ID mode: tell apt not to drop privileges to its ``_apt`` user.

    apt checks that getuid()/getgid() really changed after setuid("_apt"),
    which the seccomp filter can only pretend; with ``APT::Sandbox::User
    "root"`` it does not try. The file lives on the container's /dev tmpfs,
    never in the image or its layers; APT_CONFIG adds to apt's own configuration
    (and is left alone when the user set it).
    """
    if "APT_CONFIG" in env or not os.path.isdir("/etc/apt"):
        return
    if not os.path.exists(APT_CONFIG_FILE):
        os.makedirs(os.path.dirname(APT_CONFIG_FILE), exist_ok=True)
        with open(APT_CONFIG_FILE, "w") as f:
            f.write('APT::Sandbox::User "root";\n')
    env["APT_CONFIG"] = APT_CONFIG_FILE


def find_executable(name: str, path_env: str) -> str:
    """The file execve should run for NAME, or ExecFailure as Docker words it."""
    if "/" in name:
        if not os.path.lexists(name):
            raise ExecFailure(127, f'exec: "{name}": stat {name}: no such file or directory')
        return name
    denied = None
    for directory in path_env.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            denied = denied or candidate
    if denied is not None:
        return denied  # execve reports EACCES
    raise ExecFailure(127, f'exec: "{name}": executable file not found in $PATH')


def execute(argv: list[str], env: dict[str, str]) -> NoReturn:
    if not argv or not argv[0]:
        raise ExecFailure(125, "no command specified")
    path = find_executable(argv[0], env.get("PATH", DEFAULT_PATH))
    try:
        os.execve(path, argv, env)
    except OSError as exc:
        raise ExecFailure(0, f"{exc.errno}\t{os.path.abspath(path)}\t{argv[0]}") from exc


def exec_failure(host_path: str, rootfs: str, name: str, exc: OSError,
                 shown: str | None = None) -> ExecFailure:
    """Explain why execve of a file failed, with an ELF diagnosis where one applies."""
    if exc.errno in (errno.ENOENT, errno.ENOEXEC, errno.ELIBBAD):
        from rootless.elf import diagnose_exec_failure

        diagnosis = diagnose_exec_failure(host_path, rootfs, shown)
        if diagnosis is not None:
            code = 127 if exc.errno == errno.ENOENT else 126
            return ExecFailure(code, f'exec: "{name}": {diagnosis.message}', diagnosis.hint)
    if exc.errno == errno.ENOENT:
        return ExecFailure(127, f'exec: "{name}": no such file or directory')
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EISDIR):
        return ExecFailure(126, f'exec: "{name}": permission denied')
    return ExecFailure(126, f'exec: "{name}": {exc.strerror}')
