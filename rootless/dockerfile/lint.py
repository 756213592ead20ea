"""Warnings about Dockerfiles that parse but probably do not say what was meant.

The rule names are BuildKit's build checks, so ``# check=skip=Rule1,Rule2`` (or
``skip=all``) silences them as with ``docker build``, and ``# check=error=true``
turns the first one into an error. Pure: the IR and the scanned lines in, warnings out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from rootless.dockerfile.expand import SubstitutionError, expand_with_refs
from rootless.dockerfile.ir import (
    Cmd,
    Dockerfile,
    Entrypoint,
    Env,
    Healthcheck,
    Instruction,
    Label,
    LintWarning,
    Maintainer,
    Stage,
    Workdir,
)
from rootless.dockerfile.logical import Scanned
from rootless.errors import DockerfileSyntaxError, Location

# Args BuildKit defines for FROM lines without an ARG.
PLATFORM_ARGS = ("BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT", "TARGETPLATFORM",
                 "TARGETOS", "TARGETARCH", "TARGETVARIANT")
_ONCE_PER_STAGE = (Cmd, Entrypoint, Healthcheck)
_RESERVED_STAGE_NAMES = ("scratch", "context")
# The official Dockerfile frontends, whose syntax this parser implements.
_BUILTIN_SYNTAX = re.compile(
    r"^(docker\.io/)?docker/dockerfile(-upstream)?(:[0-9A-Za-z._-]+)?(@sha256:[0-9a-f]{64})?$")
_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]")


def lint(dockerfile: Dockerfile, scanned: Scanned) -> tuple[LintWarning, ...]:
    """The warnings ``# check=`` lets through; raises on the first if it says error=true."""
    skip, error = _check_directive(dockerfile.directive("check"))
    found = [w for w in _all(dockerfile, scanned) if "all" not in skip and w.rule not in skip]
    found.sort(key=lambda w: (w.loc.line, w.loc.column))
    if error and found:
        first = found[0]
        raise DockerfileSyntaxError(
            f"{first.message} ({first.rule}; the check directive sets error=true)", first.loc,
            source_line=scanned.source(first.loc.line, first.loc.column))
    return tuple(found)


def _check_directive(value: str | None) -> tuple[set[str], bool]:
    skip: set[str] = set()
    error = False
    for part in (value or "").split(";"):
        key, _sep, val = part.strip().partition("=")
        if key.strip().lower() == "skip":
            skip |= {name.strip() for name in val.split(",") if name.strip()}
        elif key.strip().lower() == "error":
            error = val.strip().lower() == "true"
    return skip, error


def _all(df: Dockerfile, scanned: Scanned) -> Iterator[LintWarning]:
    for directive in df.directives:
        if directive.name == "syntax" and not _BUILTIN_SYNTAX.match(directive.value):
            yield LintWarning(rule="UnsupportedSyntax",
                              message=f"the syntax directive names the frontend "
                                      f"'{directive.value}'; rootless parses with its own "
                                      "(Dockerfile 1.x) frontend", loc=directive.loc)
    for line in scanned.lines:
        for number in line.empty_continuations:
            yield LintWarning(rule="NoEmptyContinuation",
                              message="empty continuation line (a future Docker rejects it)",
                              loc=Location(scanned.filename, number, 1))
    yield from _casing(df)
    declared = {d.name for arg in df.meta_args for d in arg.args} | set(PLATFORM_ARGS)
    for stage in df.stages:
        yield from _stage(stage, declared)


def _keyword(original: str) -> str:
    return original.split(maxsplit=1)[0] if original.split() else ""


def _casing(df: Dockerfile) -> Iterator[LintWarning]:
    written = [(_keyword(s.original), s.loc) for s in df.stages]
    written += [(_keyword(i.original), i.loc) for i in _every_instruction(df)]
    upper = sum(1 for word, _ in written if word.isupper())
    majority_upper = upper * 2 >= len(written)
    for word, loc in written:
        if word.isupper() != majority_upper and (word.islower() or word.isupper()):
            case = "uppercase" if majority_upper else "lowercase"
            yield LintWarning(rule="ConsistentInstructionCasing",
                              message=f"'{word}' should match the case of most instructions "
                                      f"({case})", loc=loc)


def _every_instruction(df: Dockerfile) -> Iterator[Instruction]:
    yield from df.meta_args
    for stage in df.stages:
        yield from stage.instructions


def _stage(stage: Stage, declared: set[str]) -> Iterator[LintWarning]:
    words = stage.original.split()
    if len(words) >= 3 and words[-2].lower() == "as" and words[0].isupper() != \
            words[-2].isupper():
        yield LintWarning(rule="FromAsCasing",
                          message=f"'{words[-2]}' and '{words[0]}' keywords' casing do not "
                                  "match", loc=stage.loc)
    if stage.name is not None and words and words[-1] != words[-1].lower():
        yield LintWarning(rule="StageNameCasing",
                          message=f"stage name '{words[-1]}' should be lowercase", loc=stage.loc)
    if stage.name in _RESERVED_STAGE_NAMES:
        yield LintWarning(rule="ReservedStageName",
                          message=f"'{stage.name}' is reserved and should not be used as a "
                                  "stage name", loc=stage.loc)
    for text in (stage.base, stage.platform or ""):
        try:
            _value, refs = expand_with_refs(text, {})
        except SubstitutionError:
            continue  # reported when the build expands it
        for name in sorted(refs - declared):
            yield LintWarning(rule="UndefinedArgInFrom",
                              message=f"FROM argument '{name}' is not declared (add ARG "
                                      f"{name} before the first FROM)", loc=stage.loc)
    yield from _instructions(stage)


def _instructions(stage: Stage) -> Iterator[LintWarning]:
    last: dict[type, Instruction] = {}
    absolute_workdir = False
    for instruction in stage.instructions:
        kind = type(instruction)
        if isinstance(instruction, _ONCE_PER_STAGE):
            if kind in last:
                yield LintWarning(
                    rule="MultipleInstructionsDisallowed",
                    message=f"{instruction.keyword} is given more than once in this stage "
                            f"(line {last[kind].loc.line}); only the last one takes effect",
                    loc=instruction.loc)
            last[kind] = instruction
        match instruction:
            case Maintainer():
                yield LintWarning(rule="MaintainerDeprecated",
                                  message="MAINTAINER is deprecated: use LABEL "
                                          "org.opencontainers.image.authors=...",
                                  loc=instruction.loc)
            case Env(legacy=True) | Label(legacy=True):
                keyword = instruction.keyword
                yield LintWarning(rule="LegacyKeyValueFormat",
                                  message=f'"{keyword} key value" should be written '
                                          f'"{keyword} key=value"', loc=instruction.loc)
            case Workdir():
                if instruction.path.startswith(("/", "$")) or _WINDOWS_ABSOLUTE.match(
                        instruction.path):
                    absolute_workdir = True
                elif not absolute_workdir:
                    yield LintWarning(rule="WorkdirRelativePath",
                                      message=f"relative WORKDIR '{instruction.path}' depends "
                                              "on the base image's working directory",
                                      loc=instruction.loc)
            case Cmd() | Entrypoint() if isinstance(instruction.command, str):
                if instruction.command.lstrip().startswith("["):
                    message = (f"{instruction.keyword} looks like a JSON array but is not "
                               "valid JSON, so it runs as a shell command")
                else:
                    message = (f"JSON arguments recommended for {instruction.keyword}: in "
                               "shell form the command does not receive signals such as "
                               "SIGTERM")
                yield LintWarning(rule="JSONArgsRecommended", message=message,
                                  loc=instruction.loc)
