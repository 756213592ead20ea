"""Relaying a container's pseudo-terminal to the caller's terminal (``run -t``)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import termios
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rootless.sandbox.runner import SandboxProcess


def window_size(fd: int) -> bytes | None:
    """The struct winsize of the terminal FD, if it is one."""
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def copy_window_size(source_fd: int, pty_master: int) -> None:
    size = window_size(source_fd)
    if size is not None:
        fcntl.ioctl(pty_master, termios.TIOCSWINSZ, size)


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Put the caller's terminal in raw mode, as docker -t does, and restore it."""
    if not os.isatty(fd):
        yield
        return
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)  # TCSAFLUSH would drop what was typed ahead
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def relay(process: SandboxProcess, stdin: int | None, stdout: int) -> None:
    """Copy stdin → pty (when given: ``-i``) and pty → stdout until the container
    closes its terminal.  The window size follows the caller's terminal."""
    master = process.pty_master
    assert master is not None
    terminal = stdin if stdin is not None else stdout
    copy_window_size(terminal, master)

    def resize(_signum: int, _frame: FrameType | None) -> None:
        copy_window_size(terminal, master)

    previous = signal.signal(signal.SIGWINCH, resize)
    inputs = [master] if stdin is None else [master, stdin]
    try:
        with raw_mode(terminal):
            while True:
                readable, _, _ = select.select(inputs, [], [])
                if master in readable:
                    try:
                        data = os.read(master, 65536)
                    except OSError as exc:
                        if exc.errno == errno.EIO:  # every slave holder is gone
                            break
                        raise
                    if not data:
                        break
                    os.write(stdout, data)
                if stdin is not None and stdin in readable:
                    data = os.read(stdin, 65536)
                    if data:
                        os.write(master, data)
                    else:
                        inputs.remove(stdin)
                        os.write(master, b"\x04")  # EOF at the terminal
    finally:
        signal.signal(signal.SIGWINCH, previous)
        os.close(master)
