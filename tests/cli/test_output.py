"""Docker's human units, tables and the --format template subset."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from rootless.cli.output import (
    docker_time,
    ellipsis,
    human_duration,
    human_size,
    print_formatted,
    print_table,
    render_template,
    time_ago,
)
from rootless.errors import UsageError


@pytest.mark.parametrize(("size", "text"), [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (1234, "1.23kB"), (4_261_234, "4.26MB"),
    (123_456_789, "123MB"), (2_500_000_000, "2.5GB"),
])
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"),
    (60, "About a minute"), (150, "2 minutes"), (3600, "About an hour"),
    (7200, "2 hours"), (3 * 86400, "3 days"), (15 * 86400, "2 weeks"),
    (70 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_times() -> None:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert time_ago(now - timedelta(hours=2), now) == "2 hours ago"
    assert time_ago(None) == "N/A"
    assert docker_time(now) == "2024-05-01 12:00:00 +0000 UTC"


def test_ellipsis() -> None:
    assert ellipsis("short", 45) == "short"
    assert ellipsis("x" * 50, 45) == "x" * 44 + "…"


def test_table_alignment() -> None:
    out = io.StringIO()
    print_table(["A", "LONG HEADER"], [["value", "1"], ["v", "22"]], out)
    assert out.getvalue() == "A       LONG HEADER\nvalue   1\nv       22\n"


def test_templates() -> None:
    doc = {"Id": "sha256:x", "Config": {"Cmd": ["sh", "-c"], "Env": None}, "N": 3,
           "Flag": True}
    assert render_template("{{.Id}}", doc) == "sha256:x"
    assert render_template("{{ .Config.Cmd }}|{{json .Config.Cmd}}", doc) == \
        '[sh -c]|["sh","-c"]'
    assert render_template("{{.Config.Env}} {{.N}} {{.Flag}}\\t.", doc) == \
        "<no value> 3 true\t."
    assert render_template("{{json .}}", {"a": 1}) == '{"a":1}'
    with pytest.raises(ValueError, match="unsupported"):
        render_template("{{range .X}}{{end}}", doc)


def test_print_formatted() -> None:
    items = [{"ID": "abc", "Repository": "busybox"}, {"ID": "def", "Repository": "app"}]
    out = io.StringIO()
    print_formatted("table {{.Repository}}\\t{{.ID}}", items, out, headers={"ID": "IMAGE ID"})
    assert out.getvalue().splitlines() == ["REPOSITORY   IMAGE ID", "busybox      abc",
                                           "app          def"]
    out = io.StringIO()
    print_formatted("json", items[:1], out)
    assert out.getvalue() == '{"ID":"abc","Repository":"busybox"}\n'
    out = io.StringIO()
    with pytest.raises(UsageError):
        print_formatted("{{.ID}} {{if .X}}", items, out)
    assert out.getvalue() == ""  # nothing half-printed
