"""Build progress on stderr, shaped like ``docker build --progress=plain``.

::

    #3 [2/4] RUN make
    #3 0.412 compiling...
    #3 DONE 1.2s

    #4 [3/4] COPY . /src
    #4 CACHED

``tty`` is a compact view for terminals (``=> [2/4] RUN make  1.2s``) that keeps
RUN output to itself unless the step fails, then prints it all; ``auto`` picks
``tty`` when stderr is a terminal.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Vertex:
    number: int
    title: str
    started: float = field(default_factory=time.monotonic)
    output: list[str] = field(default_factory=list)
    _partial: str = ""


class Progress:
    def __init__(self, mode: str = "auto", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "tty" if self.stream.isatty() else "plain"
        if mode not in ("plain", "tty", "quiet"):
            mode = "plain"
        self.mode = mode
        self.counter = 0
        self.begun = time.monotonic()

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def start(self, title: str) -> Vertex:
        self.counter += 1
        vertex = Vertex(self.counter, title)
        if self.mode == "plain":
            self._write(f"#{vertex.number} {title}\n")
        elif self.mode == "tty":
            self._write(f"\r\x1b[K => {title}")
        return vertex

    def output(self, vertex: Vertex, data: bytes) -> None:
        text = vertex._partial + data.decode(errors="replace")
        lines = text.split("\n")
        vertex._partial = lines.pop()
        for line in lines:
            self._line(vertex, line)

    def _line(self, vertex: Vertex, line: str) -> None:
        vertex.output.append(line)
        elapsed = time.monotonic() - vertex.started
        if self.mode == "plain":
            self._write(f"#{vertex.number} {elapsed:.3f} {line.rstrip(chr(13))}\n")
        elif self.mode == "tty":
            # One live status line: the step, its time so far, its latest output.
            shown = line.strip().replace("\t", " ")
            width = shutil.get_terminal_size((100, 20)).columns
            status = f" => {vertex.title}  {elapsed:.1f}s | {shown}"
            self._write("\r\x1b[K" + status[: max(width - 1, 20)])

    def _flush_partial(self, vertex: Vertex) -> None:
        if vertex._partial:
            self._line(vertex, vertex._partial)
            vertex._partial = ""

    def note(self, vertex: Vertex, text: str) -> None:
        """A status line of a step (e.g. what a COPY transferred)."""
        if self.mode == "plain":
            self._write(f"#{vertex.number} {text}\n")

    def done(self, vertex: Vertex) -> None:
        self._flush_partial(vertex)
        elapsed = time.monotonic() - vertex.started
        if self.mode == "plain":
            self._write(f"#{vertex.number} DONE {elapsed:.1f}s\n\n")
        elif self.mode == "tty":
            self._write(f"\r\x1b[K => {vertex.title}  {elapsed:.1f}s\n")

    def cached(self, vertex: Vertex) -> None:
        if self.mode == "plain":
            self._write(f"#{vertex.number} CACHED\n\n")
        elif self.mode == "tty":
            self._write(f"\r\x1b[K => CACHED {vertex.title}\n")

    def error(self, vertex: Vertex, message: str) -> None:
        self._flush_partial(vertex)
        if self.mode == "plain":
            self._write(f"#{vertex.number} ERROR: {message}\n\n")
        elif self.mode == "tty":
            self._write(f"\r\x1b[K => ERROR {vertex.title}\n")
            for line in vertex.output[-200:]:
                self._write(f"{line}\n")
            self._write(f"ERROR: {message}\n")
