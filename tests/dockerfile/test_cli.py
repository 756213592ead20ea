"""``rootless dockerfile parse`` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import Rootless

DOCKERFILE = """\
ARG BASE=alpine
FROM $BASE AS build
ARG GREETING=hello
ENV MSG="$GREETING world"
RUN echo $MSG
COPY <<EOF /greeting
$GREETING
EOF
"""


def test_text_output_lists_stages_and_instructions(rootless: Rootless, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    result = rootless("dockerfile", "parse", cwd=tmp_path)
    assert result.stdout.splitlines()[:5] == [
        "   1  ARG BASE=alpine",
        "   2  FROM $BASE  (stage 0 'build')",
        "   3    ARG GREETING=hello",
        '   4    ENV MSG="$GREETING world"',
        "   5    RUN echo $MSG",
    ]


def test_json_output_is_the_ir(rootless: Rootless, tmp_path: Path) -> None:
    path = tmp_path / "my.Dockerfile"
    path.write_text(DOCKERFILE)
    result = rootless("dockerfile", "parse", "-f", path, "--format", "json")
    ir = json.loads(result.stdout)
    stage = ir["stages"][0]
    assert (stage["name"], stage["base"], stage["index"]) == ("build", "$BASE", 0)
    assert [i["instruction"] for i in stage["instructions"]] == ["ARG", "ENV", "RUN", "COPY"]
    assert stage["instructions"][0]["loc"] == {"file": str(path), "line": 3, "column": 1}
    assert stage["instructions"][3]["heredocs"][0]["content"] == "$GREETING\n"


def test_build_args_show_the_expanded_form(rootless: Rootless, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    result = rootless("dockerfile", "parse", "--build-arg", "BASE=debian",
                      "--build-arg", "GREETING=hi", "--format", "json", cwd=tmp_path)
    out = json.loads(result.stdout)
    assert out["raw"]["stages"][0]["base"] == "$BASE"
    assert out["expanded"]["stages"][0]["base"] == "debian"
    env = out["expanded"]["stages"][0]["instructions"][1]
    assert env["pairs"] == [{"key": "MSG", "value": "hi world"}]
    assert out["expanded"]["stages"][0]["instructions"][3]["heredocs"][0]["content"] == "hi\n"
    text = rootless("dockerfile", "parse", "--build-arg", "BASE=debian", cwd=tmp_path).stdout
    assert "FROM $BASE => debian" in text
    assert "=> ENV MSG='hello world'" in text


def test_stdin(rootless: Rootless) -> None:
    result = rootless("dockerfile", "parse", "-f", "-", "--format", "json",
                      input="FROM busybox\nCMD [\"sh\"]\n")
    ir = json.loads(result.stdout)
    assert ir["stages"][0]["instructions"][0]["command"] == ["sh"]


def test_syntax_error_is_one_message_with_caret(rootless: Rootless, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM alpine\nRUNN apk add curl\n")
    result = rootless("dockerfile", "parse", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "rootless: Dockerfile:2:1: unknown instruction: RUNN (did you mean RUN?)\n"
        "    RUNN apk add curl\n"
        "    ^\n"
    )


def test_missing_file(rootless: Rootless, tmp_path: Path) -> None:
    result = rootless("dockerfile", "parse", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("rootless: cannot read Dockerfile: no such file\n")
    assert "Traceback" not in result.stderr


def test_expansion_error_is_reported(rootless: Rootless, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\nARG NEED\nWORKDIR ${NEED:?set it}\n")
    result = rootless("dockerfile", "parse", "--build-arg", "OTHER=1", cwd=tmp_path,
                      check=False)
    assert result.returncode == 1
    assert result.stderr == "rootless: Dockerfile:3:1: WORKDIR: NEED: set it\n"


def test_bad_build_arg_is_a_usage_error(rootless: Rootless, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    result = rootless("dockerfile", "parse", "--build-arg", "=v", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr == "rootless: invalid --build-arg '=v': expected KEY=VALUE\n"


def test_text_mode_prints_lint_warnings_on_stderr(rootless: Rootless, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM alpine\nMAINTAINER me\n")
    result = rootless("dockerfile", "parse", cwd=tmp_path)
    assert result.stderr == ("warning: Dockerfile:2:1: MAINTAINER is deprecated: use LABEL "
                             "org.opencontainers.image.authors=... [MaintainerDeprecated]\n")
    as_json = rootless("dockerfile", "parse", "--format", "json", cwd=tmp_path)
    assert as_json.stderr == ""
    assert json.loads(as_json.stdout)["warnings"][0]["rule"] == "MaintainerDeprecated"
