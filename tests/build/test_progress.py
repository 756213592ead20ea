"""Progress output shaped like `docker build --progress=plain`."""

from __future__ import annotations

import io
import re

from rootless.build.progress import Progress


def test_plain_numbers_steps_streams_output_and_reports_done() -> None:
    out = io.StringIO()
    progress = Progress("plain", out)
    step = progress.start("[2/3] RUN make")
    progress.output(step, b"compiling\npartial")
    progress.output(step, b" line\n")
    progress.done(step)
    cached = progress.start("[3/3] COPY . /src")
    progress.cached(cached)
    lines = out.getvalue().splitlines()
    assert lines[0] == "#1 [2/3] RUN make"
    assert re.fullmatch(r"#1 \d+\.\d{3} compiling", lines[1])
    assert re.fullmatch(r"#1 \d+\.\d{3} partial line", lines[2])
    assert re.fullmatch(r"#1 DONE \d+\.\ds", lines[3])
    assert lines[5:7] == ["#2 [3/3] COPY . /src", "#2 CACHED"]


def test_tty_keeps_output_until_an_error() -> None:
    out = io.StringIO()
    progress = Progress("tty", out)
    step = progress.start("[2/2] RUN false")
    progress.output(step, b"why it failed\n")
    progress.error(step, "exit code: 1")
    text = out.getvalue()
    assert "ERROR [2/2] RUN false" in text
    assert text.rstrip().endswith("ERROR: exit code: 1")
    assert "why it failed\n" in text
