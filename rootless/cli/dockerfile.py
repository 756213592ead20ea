"""``rootless dockerfile parse``: show how rootless reads a Dockerfile.

For users debugging a Dockerfile (``--format text``, the default: one line per
instruction with its location, and with ``--build-arg`` the expanded form under it;
lint warnings go to stderr)
and for tools (``--format json``: the IR; with ``--build-arg``, an object with the
``raw`` and ``expanded`` IR).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from rootless.errors import RootlessError, UsageError

if TYPE_CHECKING:
    from rootless.cli import GlobalOptions
    from rootless.dockerfile.ir import Dockerfile, Instruction


def register(verbs: argparse._SubParsersAction[Any],
             groups: dict[str, argparse._SubParsersAction[Any]]) -> None:
    parser = groups["dockerfile"].add_parser(
        "parse", help="Print a Dockerfile as rootless understands it",
        description="Parse a Dockerfile and print its stages and instructions "
                    "(raw, and expanded with --build-arg).")
    parser.add_argument("-f", "--file", default="Dockerfile", metavar="FILE",
                        help="the Dockerfile ('-' reads standard input; default ./Dockerfile)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default text)")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="set a build argument and also print the expanded form "
                             "(KEY alone takes the value from the environment)")
    parser.set_defaults(handler=parse_command)


def parse_build_args(items: list[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid --build-arg {item!r}: expected KEY=VALUE")
        if sep:
            args[key] = value
        elif key in os.environ:
            args[key] = os.environ[key]
    return args


def read_dockerfile(path: str) -> tuple[str, str]:
    """The text and the name to use in messages."""
    if path == "-":
        return sys.stdin.buffer.read().decode("utf-8", errors="replace"), "<stdin>"
    try:
        with open(path, "rb") as file:
            return file.read().decode("utf-8", errors="replace"), path
    except FileNotFoundError:
        raise RootlessError(f"cannot read {path}: no such file",
                            hint="use -f FILE to name the Dockerfile") from None
    except OSError as exc:
        raise RootlessError(f"cannot read {path}: {exc.strerror}") from None


def parse_command(_opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.dockerfile import parse
    from rootless.dockerfile.expand import expand_dockerfile
    from rootless.dockerfile.ir import dump, to_json

    text, name = read_dockerfile(args.file)
    build_args = parse_build_args(args.build_arg)
    dockerfile = parse(text, name)
    expanded = expand_dockerfile(dockerfile, build_args) if args.build_arg else None
    if args.format == "json":
        if expanded is None:
            sys.stdout.write(dump(dockerfile))
        else:
            import json
            sys.stdout.write(json.dumps({"raw": to_json(dockerfile),
                                         "expanded": to_json(expanded)},
                                        indent=2, ensure_ascii=False) + "\n")
        return 0
    sys.stdout.write(render_text(dockerfile, expanded))
    for warning in dockerfile.warnings:  # in JSON they are part of the IR
        print(f"warning: {warning.loc}: {warning.message} [{warning.rule}]", file=sys.stderr)
    return 0


def render_text(dockerfile: Dockerfile, expanded: Dockerfile | None) -> str:
    lines: list[str] = []
    for directive in dockerfile.directives:
        lines.append(f"# {directive.name}={directive.value}")
    for i, arg in enumerate(dockerfile.meta_args):
        lines.append(_line(arg, expanded.meta_args[i] if expanded else None, ""))
    for stage in dockerfile.stages:
        title = f"stage {stage.index}" + (f" {stage.name!r}" if stage.name else "")
        base = stage.base
        if expanded is not None and expanded.stages[stage.index].base != base:
            base = f"{base} => {expanded.stages[stage.index].base}"
        platform = f" --platform={stage.platform}" if stage.platform else ""
        lines.append(f"{stage.loc.line:>4}  FROM{platform} {base}  ({title})")
        for j, instruction in enumerate(stage.instructions):
            other = expanded.stages[stage.index].instructions[j] if expanded else None
            lines.append(_line(instruction, other, "  "))
    return "\n".join(lines) + "\n"


def _line(instruction: Instruction, expanded: Instruction | None, indent: str) -> str:
    text = f"{instruction.loc.line:>4}  {indent}{instruction.original}"
    for heredoc in getattr(instruction, "heredocs", ()):
        text += f"\n{'':>4}  {indent}  <<{heredoc.name}: {len(heredoc.content)} bytes"
    if expanded is not None and expanded != instruction:
        text += f"\n{'':>4}  {indent}=> {summary(expanded)}"
    return text


def summary(instruction: Instruction) -> str:
    """The instruction's values, after expansion, in Dockerfile-like syntax."""
    from rootless.dockerfile import ir

    match instruction:
        case ir.Env() | ir.Label():
            pairs = " ".join(f"{kv.key}={kv.value!r}" for kv in instruction.pairs)
            return f"{instruction.keyword} {pairs}"
        case ir.Add() | ir.Copy():
            flags = "".join(f" --{name}={value}" for name, value in (
                ("from", instruction.from_), ("chown", instruction.chown),
                ("chmod", instruction.chmod)) if value)
            sources = " ".join(repr(s) for s in instruction.sources)
            return f"{instruction.keyword}{flags} {sources} {instruction.dest!r}"
        case ir.Arg():
            decls = " ".join(d.name if d.default is None else f"{d.name}={d.default!r}"
                             for d in instruction.args)
            return f"ARG {decls}"
        case ir.Expose():
            return "EXPOSE " + " ".join(instruction.ports)
        case ir.Volume():
            return "VOLUME " + " ".join(repr(p) for p in instruction.paths)
        case ir.User():
            return f"USER {instruction.user}"
        case ir.Workdir():
            return f"WORKDIR {instruction.path}"
        case ir.Stopsignal():
            return f"STOPSIGNAL {instruction.signal}"
        case ir.Run():
            mounts = " ".join(f"--mount=type={m.type},target={m.target}"
                              for m in instruction.mounts)
            return f"RUN {mounts} ..."
    return instruction.original
