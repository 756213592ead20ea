"""What pull and push print: plain lines off a terminal, redrawn lines on one."""

from __future__ import annotations

import io

from rootless.registry.progress import Progress, QuietProgress, TTYProgress, for_terminal

DIGEST = "sha256:" + "ab" * 32


def test_plain_lines_name_the_short_layer_id() -> None:
    out = io.StringIO()
    progress = Progress(out)
    progress.status(DIGEST, "Pulling fs layer")
    progress.advance(DIGEST, 10, 100)  # byte counts are not logged off a terminal
    progress.status(DIGEST, "Pull complete")
    progress.line("Status: Downloaded newer image for busybox:latest")
    assert out.getvalue().splitlines() == [
        "abababababab: Pulling fs layer",
        "abababababab: Pull complete",
        "Status: Downloaded newer image for busybox:latest",
    ]


def test_terminal_view_redraws_each_layer_in_place() -> None:
    out = io.StringIO()
    progress = TTYProgress(out)
    other = "sha256:" + "cd" * 32
    progress.status(DIGEST, "Pulling fs layer")
    progress.status(other, "Already exists")
    progress.status(DIGEST, "Pull complete")
    progress.close()
    text = out.getvalue()
    assert "\x1b[2A" in text  # moved up over the two layer lines to redraw them
    assert text.rstrip().endswith("cdcdcdcdcdcd: Already exists")
    assert "abababababab: Pull complete" in text


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    progress = for_terminal(quiet=True, out=out)
    assert isinstance(progress, QuietProgress)
    progress.status(DIGEST, "Pull complete")
    progress.line("Digest: x")
    assert out.getvalue() == ""
