"""What pull and push show while they work, in docker's words.

On a terminal each layer has a line redrawn in place ("a3ed95caeb02: Downloading
[=====>     ] 1.2MB/4.5MB"); otherwise each state change is one plain line, so
CI logs stay readable. ``-q`` shows nothing but the final reference.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

BAR_WIDTH = 50
REDRAW_INTERVAL = 0.1


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n:.3g}GB"


class Progress:
    """Plain lines, one per state change (the non-TTY view); thread-safe."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._lock = threading.Lock()

    def status(self, item: str, text: str) -> None:
        """A layer changed state: "Pulling fs layer", "Already exists", "Pull complete"."""
        self.line(f"{short_id(item)}: {text}")

    def advance(self, item: str, done: int, total: int, action: str = "Downloading") -> None:
        """Bytes moved; only the live view draws these."""

    def line(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    def warn(self, text: str) -> None:
        with self._lock:
            self.out.flush()
            sys.stderr.write(f"WARNING: {text}\n")
            sys.stderr.flush()

    def close(self) -> None:
        """Finish the display (the live view moves below its lines)."""


class QuietProgress(Progress):
    def status(self, item: str, text: str) -> None:
        pass

    def line(self, text: str) -> None:
        pass


class TTYProgress(Progress):
    """One line per layer, redrawn in place with ANSI cursor movement."""

    def __init__(self, out: TextIO | None = None) -> None:
        super().__init__(out)
        self._order: list[str] = []
        self._text: dict[str, str] = {}
        self._drawn = 0
        self._last_draw = 0.0

    def status(self, item: str, text: str) -> None:
        with self._lock:
            self._set(item, text)
            self._redraw()

    def advance(self, item: str, done: int, total: int, action: str = "Downloading") -> None:
        with self._lock:
            now = time.monotonic()
            self._set(item, f"{action} {_bar(done, total)}")
            if now - self._last_draw >= REDRAW_INTERVAL:
                self._redraw()

    def line(self, text: str) -> None:
        with self._lock:
            self._redraw()
            self._order.clear()
            self._text.clear()
            self._drawn = 0
            self.out.write(text + "\n")
            self.out.flush()

    def close(self) -> None:
        with self._lock:
            self._redraw()

    def _set(self, item: str, text: str) -> None:
        if item not in self._text:
            self._order.append(item)
        self._text[item] = text

    def _redraw(self) -> None:
        self._last_draw = time.monotonic()
        parts = []
        if self._drawn:
            parts.append(f"\x1b[{self._drawn}A")
        for item in self._order:
            parts.append(f"\r\x1b[2K{short_id(item)}: {self._text[item]}\n")
        self.out.write("".join(parts))
        self.out.flush()
        self._drawn = len(self._order)


def _bar(done: int, total: int) -> str:
    if total <= 0:
        return human_size(done)
    filled = min(BAR_WIDTH, done * BAR_WIDTH // total)
    arrow = ">" if filled < BAR_WIDTH else ""
    bar = "=" * max(filled - 1 if arrow else filled, 0) + arrow
    return f"[{bar:<{BAR_WIDTH}}] {human_size(done)}/{human_size(total)}"


def for_terminal(quiet: bool = False, out: TextIO | None = None) -> Progress:
    out = out or sys.stdout
    if quiet:
        return QuietProgress(out)
    return TTYProgress(out) if out.isatty() else Progress(out)
