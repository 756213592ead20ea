"""Docker's run semantics as pure functions: command line, environment, volumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from rootless.errors import UsageError
from rootless.run import (
    RunRequest,
    command_line,
    merge_env,
    parse_volume,
    process_spec,
    spec_from_json,
    spec_to_json,
)


@pytest.mark.parametrize(("config", "entrypoint", "args", "expected"), [
    ({"Cmd": ["sh"]}, None, [], ["sh"]),
    ({"Cmd": ["sh"]}, None, ["ls", "-l"], ["ls", "-l"]),
    ({"Entrypoint": ["/ep"], "Cmd": ["a"]}, None, [], ["/ep", "a"]),
    ({"Entrypoint": ["/ep"], "Cmd": ["a"]}, None, ["b"], ["/ep", "b"]),
    ({"Entrypoint": ["/ep"], "Cmd": ["a"]}, "/other", [], ["/other"]),
    ({"Entrypoint": ["/ep"], "Cmd": ["a"]}, "/other", ["x"], ["/other", "x"]),
    ({"Entrypoint": ["/ep"], "Cmd": ["a"]}, "", ["x"], ["x"]),
    ({"Entrypoint": ["/bin/sh", "-c", "exec top"], "Cmd": ["-b"]}, None, [],
     ["/bin/sh", "-c", "exec top", "-b"]),
    ({}, None, [], []),
])
def test_command_line(config: dict[str, list[str]], entrypoint: str | None, args: list[str],
                      expected: list[str]) -> None:
    assert command_line(config, entrypoint, args) == expected


def test_merge_env_order_and_host_passthrough(tmp_path: Path) -> None:
    env_file = tmp_path / "e"
    env_file.write_text("# c\nA=file\nB=file=with=equals\n  \nGONE\n")
    env = merge_env(["A=image", "KEEP=1", "GONE=image"], [str(env_file)],
                    ["A=cli", "HOSTED", "MISSING"], {"HOSTED": "h"})
    assert env == {"A": "cli", "KEEP": "1", "B": "file=with=equals", "HOSTED": "h"}


def test_env_file_missing_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="open"):
        merge_env([], [str(tmp_path / "nope")], [], {})


def test_parse_volume(tmp_path: Path) -> None:
    mount = parse_volume(f"{tmp_path}:/data:ro")
    assert (mount.source, mount.target, mount.readonly) == (str(tmp_path), "/data", True)
    assert not parse_volume(f"{tmp_path}:/data").readonly
    created = tmp_path / "new"
    parse_volume(f"{created}:/n")
    assert created.is_dir()
    for bad in ("named:/data", f"{tmp_path}:relative", f"{tmp_path}", f"{tmp_path}:/d:bogus"):
        with pytest.raises(UsageError):
            parse_volume(bad)


def test_process_spec_defaults_and_round_trip() -> None:
    config = {"Cmd": ["sh"], "Env": ["A=1"], "WorkingDir": "/app", "User": "daemon"}
    spec = process_spec(config, RunRequest("img", tty=True, tmpfs=("/t:size=1m",),
                                           read_only=True), "host1")
    assert spec.argv == ("sh",) and spec.cwd == "/app" and spec.user == "daemon"
    assert spec.env["TERM"] == "xterm" and spec.env["HOSTNAME"] == "host1"
    assert spec.env["PATH"].startswith("/usr/local/sbin")
    assert spec.mounts[0].kind == "tmpfs" and spec.mounts[0].options == "size=1m"
    assert spec_from_json(spec_to_json(spec)) == spec
    with pytest.raises(UsageError, match="absolute"):
        process_spec(config, RunRequest("img", workdir="rel"), None)
