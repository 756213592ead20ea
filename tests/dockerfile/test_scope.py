"""ARG/ENV scoping across stages and expansion of whole instructions."""

from __future__ import annotations

import pytest

from rootless.dockerfile import parse
from rootless.dockerfile.expand import (
    PROXY_ARGS,
    expand_dockerfile,
    expand_from,
    expand_instruction,
    expand_stage,
    global_scope,
    run_environment,
)
from rootless.dockerfile.ir import Add, Copy, Env, Expose, Label, Run, User, Volume, Workdir
from rootless.errors import DockerfileError


def test_global_args_are_usable_in_from_only() -> None:
    df = parse("ARG BASE=alpine\nARG TAG\nFROM ${BASE}:${TAG:-3.20}\nRUN echo\n"
               "WORKDIR /$BASE\n")
    scope = global_scope(df.meta_args, {})
    assert expand_from(df.stages[0], scope).base == "alpine:3.20"
    steps = expand_stage(df.stages[0], global_vars=scope, build_args={})
    workdir = steps[1].instruction
    assert isinstance(workdir, Workdir)
    assert workdir.path == "/"  # BASE was not redeclared in the stage


def test_build_args_override_global_defaults() -> None:
    df = parse("ARG BASE=alpine\nFROM $BASE\n")
    scope = global_scope(df.meta_args, {"BASE": "debian"})
    assert expand_from(df.stages[0], scope).base == "debian"


def test_redeclared_global_arg_takes_global_value() -> None:
    df = parse("ARG V=global\nFROM x\nARG V\nWORKDIR /$V\nFROM y\nWORKDIR /$V\n")
    scope = global_scope(df.meta_args, {})
    first = expand_stage(df.stages[0], global_vars=scope, build_args={})
    second = expand_stage(df.stages[1], global_vars=scope, build_args={})
    assert first[1].instruction == first[1].instruction
    assert isinstance(first[1].instruction, Workdir) and first[1].instruction.path == "/global"
    assert isinstance(second[0].instruction, Workdir) and second[0].instruction.path == "/"


def test_stage_arg_default_and_build_arg() -> None:
    df = parse("FROM x\nARG A=default\nARG B=$A-b\nUSER $A:$B\n")
    steps = expand_stage(df.stages[0], global_vars={}, build_args={})
    assert isinstance(steps[2].instruction, User)
    assert steps[2].instruction.user == "default:default-b"
    steps = expand_stage(df.stages[0], global_vars={}, build_args={"A": "given"})
    assert isinstance(steps[2].instruction, User)
    assert steps[2].instruction.user == "given:given-b"


def test_arg_is_in_scope_only_after_its_declaration() -> None:
    df = parse("FROM x\nWORKDIR /$A\nARG A=1\nWORKDIR /$A\n")
    steps = expand_stage(df.stages[0], global_vars={}, build_args={"A": "given"})
    paths = [s.instruction.path for s in steps if isinstance(s.instruction, Workdir)]
    assert paths == ["/", "/given"]


def test_env_wins_over_arg_and_uses_previous_values() -> None:
    df = parse("FROM x\nARG V=arg\nENV V=env\nWORKDIR /$V\nENV A=1\nENV A=2 B=$A\n"
               "LABEL b=$B\n")
    steps = expand_stage(df.stages[0], global_vars={}, build_args={"V": "cli"})
    assert isinstance(steps[2].instruction, Workdir) and steps[2].instruction.path == "/env"
    label = steps[5].instruction
    assert isinstance(label, Label)
    assert label.pairs[0].value == "1"  # ENV A=2 B=$A sees the old A
    assert steps[5].scope.env["A"] == "2"


def test_base_image_env_is_visible() -> None:
    df = parse("FROM x\nENV PATH=/opt/bin:$PATH\n")
    steps = expand_stage(df.stages[0], global_vars={}, build_args={},
                         base_env={"PATH": "/usr/bin"})
    env = steps[0].instruction
    assert isinstance(env, Env) and env.pairs[0].value == "/opt/bin:/usr/bin"


def test_run_environment_has_args_env_and_given_proxies() -> None:
    df = parse("FROM x\nARG A=1\nENV E=2\nRUN env\n")
    build_args = {"HTTP_PROXY": "http://proxy:3128", "UNDECLARED": "x"}
    steps = expand_stage(df.stages[0], global_vars={}, build_args=build_args)
    env = run_environment(steps[2].scope, build_args)
    assert env == {"A": "1", "E": "2", "HTTP_PROXY": "http://proxy:3128"}
    assert "no_proxy" in PROXY_ARGS


def test_run_command_is_not_expanded_but_mounts_are() -> None:
    df = parse("FROM x\nARG C=cache\nRUN --mount=type=cache,target=/$C echo $C\n")
    steps = expand_stage(df.stages[0], global_vars={}, build_args={})
    run = steps[1].instruction
    assert isinstance(run, Run)
    assert run.command == "echo $C"
    assert run.mounts[0].target == "/cache"


def test_copy_and_add_words_are_expanded_with_quotes_removed() -> None:
    df = parse("FROM x\nARG D=/dst\nCOPY --from=$D --chown=${U:-0}:0 'a'\\ b $D/\n"
               "ADD --checksum=$D src $D\n")
    steps = expand_stage(df.stages[0], global_vars={}, build_args={})
    copy, add = steps[1].instruction, steps[2].instruction
    assert isinstance(copy, Copy) and isinstance(add, Add)
    assert copy.sources == ("a", "b")  # COPY splits at blanks before quotes are seen
    assert (copy.dest, copy.from_, copy.chown) == ("/dst/", "/dst", "0:0")
    assert add.checksum == "/dst"


def test_heredoc_bodies_expand_unless_quoted() -> None:
    df = parse("FROM x\nARG N=world\nCOPY <<EOF /a\nhello $N \"q\" \\$N\nEOF\n"
               "COPY <<'EOF' /b\nhello $N\nEOF\n")
    steps = expand_stage(df.stages[0], global_vars={}, build_args={})
    a, b = steps[1].instruction, steps[2].instruction
    assert isinstance(a, Copy) and isinstance(b, Copy)
    assert a.heredocs[0].content == 'hello world "q" $N\n'
    assert b.heredocs[0].content == "hello $N\n"


def test_expose_volume_label_env_expand() -> None:
    df = parse('FROM x\nEXPOSE $PORTS 22\nVOLUME ["$V"]\nLABEL "$K"="v $K"\nENV k="a b"\n')
    env = {"PORTS": "80/tcp 443", "V": "/data", "K": "key"}
    expose, volume, label, envi = (expand_instruction(i, env)
                                   for i in df.stages[0].instructions)
    assert isinstance(expose, Expose) and expose.ports == ("80/tcp", "443", "22")
    assert isinstance(volume, Volume) and volume.paths == ("/data",)
    assert isinstance(label, Label) and (label.pairs[0].key, label.pairs[0].value) == \
        ("key", "v key")
    assert isinstance(envi, Env) and envi.pairs[0].value == "a b"


def test_expansion_error_names_the_instruction_location() -> None:
    df = parse("FROM x\n\nWORKDIR ${A:?is required}\n")
    with pytest.raises(DockerfileError) as info:
        expand_stage(df.stages[0], global_vars={}, build_args={})
    assert str(info.value) == "Dockerfile:3:1: WORKDIR: A: is required"


def test_expand_dockerfile_for_display() -> None:
    df = parse("ARG IMG=alpine\nARG P\nFROM --platform=$P $IMG AS a\nARG X=1\nENV Y=$X\n")
    out = expand_dockerfile(df, {"P": "linux/arm64", "X": "2"})
    assert out.stages[0].base == "alpine"
    assert out.stages[0].platform == "linux/arm64"
    env = out.stages[0].instructions[1]
    assert isinstance(env, Env) and env.pairs[0].value == "2"
    assert df.stages[0].base == "$IMG"  # the raw IR is untouched


def test_undeclared_build_arg_does_not_reach_from() -> None:
    df = parse("FROM --platform=$P x\n")
    assert expand_dockerfile(df, {"P": "linux/arm64"}).stages[0].platform is None


def test_quoted_word_split_by_copy_is_an_expansion_error() -> None:
    # COPY splits its arguments at blanks (not at quotes), as BuildKit does, so a
    # quoted path with a space leaves an unmatched quote for the expansion to report.
    df = parse('FROM x\nCOPY "a b" /dst/\n')
    with pytest.raises(DockerfileError, match="matching double-quote"):
        expand_dockerfile(df, {})


def test_builtin_platform_args_reach_from() -> None:
    df = parse("FROM --platform=$BUILDPLATFORM x\nARG TARGETARCH\nWORKDIR /$TARGETARCH\n")
    scope = global_scope(df.meta_args, {}, {"BUILDPLATFORM": "linux/amd64",
                                             "TARGETARCH": "amd64"})
    assert expand_from(df.stages[0], scope).platform == "linux/amd64"
    steps = expand_stage(df.stages[0], global_vars=scope, build_args={})
    assert isinstance(steps[1].instruction, Workdir)
    assert steps[1].instruction.path == "/amd64"


@pytest.mark.parametrize(("line", "message"), [
    ("EXPOSE $P", "EXPOSE: invalid port 'http'"),
    ("EXPOSE 80/tcpx", "EXPOSE: invalid port '80/tcpx'"),
    ("STOPSIGNAL SIGNOPE", "STOPSIGNAL: invalid signal 'SIGNOPE'"),
    ("STOPSIGNAL 0", "STOPSIGNAL: invalid signal '0'"),
])
def test_values_docker_checks_after_expansion(line: str, message: str) -> None:
    instruction = parse(f"FROM x\n{line}\n").stages[0].instructions[0]
    with pytest.raises(DockerfileError, match=message):
        expand_instruction(instruction, {"P": "http"})


@pytest.mark.parametrize("line", ["EXPOSE 80 443/udp 8000-8010/TCP 9/sctp", "STOPSIGNAL SIGTERM",
                                  "STOPSIGNAL term", "STOPSIGNAL 9", "STOPSIGNAL SIGRTMIN+3"])
def test_valid_ports_and_signals(line: str) -> None:
    instruction = parse(f"FROM x\n{line}\n").stages[0].instructions[0]
    assert expand_instruction(instruction, {}) == instruction
