"""The parser's small parts: directives, line scanning, words, flags and the IR itself."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rootless.dockerfile import parse
from rootless.dockerfile.directives import read_directives
from rootless.dockerfile.flags import parse_flag, parse_go_duration
from rootless.dockerfile.ir import Copy, Healthcheck, Run, dump, to_json
from rootless.dockerfile.logical import physical_lines, scan
from rootless.dockerfile.words import json_array, split_words
from rootless.errors import DockerfileSyntaxError


@pytest.mark.parametrize(("lines", "names", "escape"), [
    (["# syntax=x", "# escape=`", "FROM a"], ["syntax", "escape"], "`"),
    (["#escape=`"], ["escape"], "`"),
    (["  # ESCAPE = ` "], ["escape"], "`"),
    (["", "# escape=`"], [], "\\"),
    (["# hello", "# escape=`"], [], "\\"),
    (["# unknown=1", "# escape=`"], [], "\\"),
    (["FROM a", "# escape=`"], [], "\\"),
    (["# check=skip=all"], ["check"], "\\"),
])
def test_directives(lines: list[str], names: list[str], escape: str) -> None:
    found, got_escape = read_directives(lines)
    assert [d.name for d in found] == names
    assert got_escape == escape


def test_directive_locations() -> None:
    found, _ = read_directives(["# syntax=a", "  # check=b"], "x/Dockerfile")
    assert [str(d.loc) for d in found] == ["x/Dockerfile:1:1", "x/Dockerfile:2:3"]


def test_physical_lines_keep_endings_and_drop_bom() -> None:
    assert physical_lines("\ufeffa\r\nb\nc") == ["a\r\n", "b\n", "c"]
    assert physical_lines("") == []
    assert physical_lines("\n") == ["\n"]


def test_logical_line_positions_map_back_through_continuations() -> None:
    scanned = scan("FROM a\n  RUN one \\\n# c\n\n     two \\\n three\n")
    line = scanned.lines[1]
    assert line.text == "RUN one      two  three"
    assert (line.start_line, line.end_line) == (2, 6)
    assert line.position(0) == (2, 3)  # "RUN" after two blanks
    assert line.position(line.text.index("two")) == (5, 6)
    assert line.position(line.text.index("three")) == (6, 2)


def test_backtick_escape_continues_lines_and_backslash_does_not() -> None:
    scanned = scan("RUN a `\n b \\\nRUN c\n", escape="`")
    assert [line.text for line in scanned.lines] == ["RUN a  b \\", "RUN c"]


@pytest.mark.parametrize(("text", "words"), [
    ("a b  c", ["a", "b", "c"]),
    ('k="v w" x', ['k="v w"', "x"]),
    ("k='v \\' w", ["k='v \\'", "w"]),
    ("a\\ b c", ["a\\ b", "c"]),
    ('"unterminated quote', ['"unterminated quote']),
    ("trailing\\", ["trailing"]),
    ("\u00a0a\u3000b", ["a", "b"]),
])
def test_split_words_keeps_quotes(text: str, words: list[str]) -> None:
    assert [w.text for w in split_words(text)] == words


@pytest.mark.parametrize(("text", "want"), [
    ('["a", "b"]', ("a", "b")),
    ('  [ ]', ()),
    ('["a"] trailing', ("a",)),
    ("['a']", None),
    ('["a",]', None),
    ('["a"', None),
    ("not json", None),
    ('{"a": 1}', None),
    ("[NaN]", None),
    ('["\\ud800"]', ("\ufffd",)),
])
def test_json_array(text: str, want: tuple[str, ...] | None) -> None:
    assert json_array(text) == want


@pytest.mark.parametrize("text", ['["a", 1]', "[null]", '[["a"]]', "[true]"])
def test_json_array_of_non_strings_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="strings only"):
        json_array(text)


@pytest.mark.parametrize(("token", "name", "value"), [
    ("--link", "link", None),
    ("--from=build", "from", "build"),
    ('--chown="a b:c"', "chown", "a b:c"),
    ("--mount=type=cache,target=/x", "mount", "type=cache,target=/x"),
    ("--x=a\\ b", "x", "a b"),
    ("--empty=", "empty", ""),
])
def test_parse_flag(token: str, name: str, value: str | None) -> None:
    flag = parse_flag(token, 4)
    assert (flag.name, flag.value, flag.offset) == (name, value, 4)


@pytest.mark.parametrize(("text", "nanos"), [
    ("0", 0),
    ("1ns", 1),
    ("1.5s", 1_500_000_000),
    ("1h30m", 5_400_000_000_000),
    ("500ms", 500_000_000),
    ("2us", 2_000),
    ("2µs", 2_000),
    ("-1s", -1_000_000_000),
    (".5s", 500_000_000),
    ("5", None),
    ("s", None),
    ("1d", None),
    ("", None),
    ("1s2", None),
])
def test_go_durations(text: str, nanos: int | None) -> None:
    assert parse_go_duration(text) == nanos


def test_ir_is_frozen_and_serialises_stably() -> None:
    df = parse("FROM a AS b\nRUN --mount=type=cache,target=/c make\n"
               "HEALTHCHECK CMD true\nCOPY <<EOF /f\nx\nEOF\n")
    run = df.stages[0].instructions[0]
    assert isinstance(run, Run)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.command = "other"  # type: ignore[misc]
    doc = json.loads(dump(df))
    assert doc["stages"][0]["instructions"][0]["instruction"] == "RUN"
    assert doc == to_json(df)
    assert dump(df) == dump(parse("FROM a AS b\nRUN --mount=type=cache,target=/c make\n"
                                  "HEALTHCHECK CMD true\nCOPY <<EOF /f\nx\nEOF\n"))
    health = df.stages[0].instructions[1]
    assert isinstance(health, Healthcheck) and health.test == ("CMD-SHELL", "true")
    copy = df.stages[0].instructions[2]
    assert isinstance(copy, Copy) and copy.sources == () and copy.heredocs[0].name == "EOF"


def test_stage_lookup_is_case_insensitive() -> None:
    df = parse("FROM a AS Build\nFROM b\n")
    assert df.stage("BUILD") is df.stages[0]
    assert df.stage("1") is df.stages[1]
    assert df.stage("nope") is None


def test_error_carries_location_and_reason() -> None:
    with pytest.raises(DockerfileSyntaxError) as info:
        parse("FROM a\n\n  RUNN x\n", "ctx/Dockerfile")
    assert str(info.value.loc) == "ctx/Dockerfile:3:3"
    assert info.value.reason == "unknown instruction: RUNN (did you mean RUN?)"


def rules(text: str) -> list[tuple[str, int]]:
    return [(w.rule, w.loc.line) for w in parse(text).warnings]


@pytest.mark.parametrize(("text", "want"), [
    ("FROM a\nRUN x\n", []),
    ("FROM a\nRUN a \\\n\n  b\n", [("NoEmptyContinuation", 3)]),
    ("FROM a\nMAINTAINER me\n", [("MaintainerDeprecated", 2)]),
    ("FROM a\nENV k v\nLABEL k v\nENV k=v\n", [("LegacyKeyValueFormat", 2),
                                              ("LegacyKeyValueFormat", 3)]),
    ("FROM a as b\n", [("FromAsCasing", 1)]),
    ("from a AS b\n", [("FromAsCasing", 1)]),
    ("FROM a AS B\n", [("StageNameCasing", 1)]),
    ("FROM a AS scratch\n", [("ReservedStageName", 1)]),
    ("FROM $IMG\n", [("UndefinedArgInFrom", 1)]),
    ("ARG IMG\nFROM --platform=$TARGETPLATFORM $IMG\n", []),
    ("FROM a\nCMD [\"a\"]\nCMD [\"b\"]\n", [("MultipleInstructionsDisallowed", 3)]),
    ("FROM a\nCMD ['a']\n", [("JSONArgsRecommended", 2)]),
    ("FROM a\nWORKDIR app\n", [("WorkdirRelativePath", 2)]),
    ("FROM a\nWORKDIR /app\nWORKDIR sub\n", []),
    ("FROM a\nrun x\nRUN y\nRUN z\n", [("ConsistentInstructionCasing", 2)]),
    ("# check=skip=all\nFROM a as B\nMAINTAINER me\n", []),
])
def test_lint_rules(text: str, want: list[tuple[str, int]]) -> None:
    assert rules(text) == want


def test_check_error_true_turns_a_warning_into_an_error() -> None:
    with pytest.raises(DockerfileSyntaxError, match="MaintainerDeprecated"):
        parse("# check=error=true\nFROM a\nMAINTAINER me\n")
    assert parse("# check=error=true\nFROM a\n").warnings == ()


@pytest.mark.parametrize(("syntax", "warned"), [
    ("docker/dockerfile:1", False),
    ("docker/dockerfile:1.7-labs", False),
    ("docker.io/docker/dockerfile-upstream:master", False),
    ("docker/dockerfile@sha256:" + "a" * 64, False),
    ("example.com/my/frontend:2", True),
])
def test_syntax_directive_naming_another_frontend_is_a_warning(syntax: str, warned: bool) -> None:
    assert (rules(f"# syntax={syntax}\nFROM a\n") == [("UnsupportedSyntax", 1)]) is warned


def test_the_dockerfile_package_stays_pure() -> None:
    """No files, network, processes or environment in rootless/dockerfile (the CLI reads)."""
    import ast
    from pathlib import Path

    import rootless.dockerfile

    forbidden_modules = {"os", "subprocess", "socket", "requests", "shutil", "pathlib", "io"}
    for path in Path(rootless.dockerfile.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", f"{path.name}:{node.lineno} opens a file"
                continue
            else:
                continue
            assert not names & forbidden_modules, f"{path.name}:{node.lineno} imports {names}"
