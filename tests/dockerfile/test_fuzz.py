"""Property: any text yields an IR or our DockerfileSyntaxError; never anything else,
never a hang (each example is bounded by hypothesis' deadline)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rootless.dockerfile import parse
from rootless.dockerfile.expand import SubstitutionError, expand, expand_dockerfile
from rootless.dockerfile.ir import Dockerfile, dump
from rootless.errors import DockerfileError, DockerfileSyntaxError

FRAGMENTS = [
    "FROM ", "from ", "RUN ", "CMD ", "ENTRYPOINT ", "COPY ", "ADD ", "ENV ", "ARG ",
    "LABEL ", "EXPOSE ", "VOLUME ", "USER ", "WORKDIR ", "ONBUILD ", "STOPSIGNAL ",
    "HEALTHCHECK ", "SHELL ", "MAINTAINER ", "AS ", "NONE", "CMD",
    "alpine", "a=b", "k=\"v w\"", "=", "$A", "${A:-x}", "${", "}", "'", '"', "[", "]",
    '["a", "b"]', "[\"", ",", "\\", "`", "\n", "\r\n", "\t", " ", "#", "# escape=`\n",
    "# syntax=x\n", "<<EOF", "<<-EOF", "<<'EOF'", "EOF", "\tEOF", "--mount=type=cache",
    "--mount=type=secret,id=x", "--from=a", "--link", "--platform=linux/amd64",
    "--interval=5s", "--", "-", "\ufeff", "\x00", "é", "🐳", "\\\n", "`\n",
]

dockerfileish = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=40
).map("".join)

SETTINGS = settings(max_examples=400, deadline=timedelta(seconds=2),
                    suppress_health_check=[HealthCheck.too_slow])


def check(text: str) -> None:
    try:
        result = parse(text, "Dockerfile")
    except DockerfileSyntaxError as err:
        assert str(err).startswith("Dockerfile:")
        assert err.loc.line >= 1 and err.loc.column >= 1
        return
    assert isinstance(result, Dockerfile)
    assert result.stages
    dump(result)  # the IR always serialises
    try:
        expand_dockerfile(result, {"A": "1"})
    except DockerfileError:
        pass


@SETTINGS
@given(dockerfileish)
def test_dockerfile_like_text(text: str) -> None:
    check(text)


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    check(text)


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text_after_a_valid_start(text: str) -> None:
    check("FROM alpine\n" + text)


@SETTINGS
@given(st.lists(st.sampled_from(["$", "{", "}", ":", "-", "+", "?", "#", "%", "/", "A",
                                 "'", '"', "\\", "*", "[", "]", " ", "x"]), max_size=30)
       .map("".join))
def test_expand_never_fails_otherwise(word: str) -> None:
    try:
        assert isinstance(expand(word, {"A": "a*b"}), str)
    except SubstitutionError:
        pass
