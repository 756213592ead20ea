"""Dockerfile text → IR: the pipeline, and Lark's exceptions as ``DockerfileSyntaxError``.

``parse`` runs: directives (escape char) → ``logical.scan`` (continuations, comments,
heredocs) → the LALR grammar over the logical lines → ``transform`` (IR instructions)
→ stages → ``lint`` warnings. The parser is built once (``functools.cache``) from the
grammar shipped as package data; a Lark position maps back to the physical file
through its logical line.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from importlib.resources import files

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedInput

from rootless.dockerfile.directives import read_directives
from rootless.dockerfile.ir import INSTRUCTION_NAMES, Arg, Dockerfile, From, Instruction, Stage
from rootless.dockerfile.lint import lint
from rootless.dockerfile.logical import LogicalLine, Scanned, physical_lines, scan
from rootless.dockerfile.transform import to_instructions
from rootless.dockerfile.words import BLANKS, did_you_mean
from rootless.errors import DockerfileSyntaxError, Location


@cache
def parser() -> Lark:
    grammar = files("rootless.grammar").joinpath("dockerfile.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                maybe_placeholders=False)


def logical_document(scanned: Scanned) -> str:
    return "".join(line.text + "\n" for line in scanned.lines)


def parse_tree(scanned: Scanned) -> Tree[Token]:
    try:
        return parser().parse(logical_document(scanned))
    except UnexpectedInput as exc:
        raise _translate(exc, scanned) from None
    except LarkError as exc:  # pragma: no cover - Lark failing in another way is our bug
        raise DockerfileSyntaxError(f"cannot parse: {exc}", scanned.location(scanned.lines[0]))


def _translate(exc: UnexpectedInput, scanned: Scanned) -> DockerfileSyntaxError:
    index = max(exc.line, 1) - 1
    line = scanned.lines[min(index, len(scanned.lines) - 1)]
    offset = max(exc.column, 1) - 1
    name = BLANKS.split(line.text[offset:].strip(" \t\v\f\r"), maxsplit=1)[0]
    if not name:
        return scanned.error("unexpected end of instruction", line, offset)
    return unknown_instruction(scanned, line, offset, name)


def unknown_instruction(
    scanned: Scanned, line: LogicalLine, offset: int, name: str
) -> DockerfileSyntaxError:
    shown = name if name.isprintable() else name.encode("unicode_escape").decode("ascii")
    if len(shown) > 40:
        shown = shown[:40] + "…"
    # Suggest from the part before any Unicode space too: "RUN\u00a0echo" means RUN.
    head = name.split()[0] if name.split() else name
    message = f"unknown instruction: {shown}{did_you_mean(head.upper(), INSTRUCTION_NAMES)}"
    return scanned.error(message, line, offset)


def parse(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """The IR of a Dockerfile's text; ``DockerfileSyntaxError`` if it is not one."""
    lines = [line.rstrip("\r\n") for line in physical_lines(text)]
    directives, escape = read_directives(lines, filename)
    scanned = scan(text, escape, filename)
    instructions = to_instructions(parse_tree(scanned), scanned, escape) \
        if scanned.lines else []
    meta_args, stages = _stages(instructions, scanned)
    dockerfile = Dockerfile(stages=stages, meta_args=meta_args, directives=directives,
                            escape=escape)
    return dataclasses.replace(dockerfile, warnings=lint(dockerfile, scanned))


def _stages(
    instructions: list[Instruction], scanned: Scanned
) -> tuple[tuple[Arg, ...], tuple[Stage, ...]]:
    meta_args: list[Arg] = []
    stages: list[Stage] = []
    current: From | None = None
    body: list[Instruction] = []
    first_use: dict[str, From] = {}

    def close() -> None:
        if current is not None:
            stages.append(Stage(name=current.name, base=current.image,
                                platform=current.platform, index=len(stages),
                                instructions=tuple(body), loc=current.loc,
                                original=current.original))

    for instruction in instructions:
        if isinstance(instruction, From):
            close()
            current, body = instruction, []
            if instruction.name is not None:
                if instruction.name in first_use:
                    raise _error_at(scanned, instruction,
                                    f"duplicate stage name {instruction.name!r} (first used "
                                    f"at line {first_use[instruction.name].loc.line})")
                first_use[instruction.name] = instruction
        elif current is None:
            if not isinstance(instruction, Arg):
                raise _error_at(scanned, instruction,
                                f"{instruction.keyword} before the first FROM: only ARG can "
                                "come before FROM")
            meta_args.append(instruction)
        else:
            body.append(instruction)
    close()
    if not stages:
        if scanned.lines:
            raise scanned.error("no build stage: the Dockerfile has no FROM",
                                scanned.lines[0])
        raise DockerfileSyntaxError("no build stage: the Dockerfile has no instructions",
                                    Location(scanned.filename, 1, 1))
    return tuple(meta_args), tuple(stages)


def _error_at(scanned: Scanned, instruction: Instruction, message: str) -> DockerfileSyntaxError:
    loc = instruction.loc
    return DockerfileSyntaxError(message, loc, source_line=scanned.source(loc.line, loc.column))
