"""The one converter from Lark tree to IR, plus the checks that need only the syntax.

Each grammar rule (one per instruction) has a method here; it reads the leading
flags and the argument text and builds the IR dataclass, raising
``DockerfileSyntaxError`` pointing at the offending word. Argument syntax follows
BuildKit's line parsers: JSON-or-shell (RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK),
JSON-or-words (ADD, COPY, VOLUME), name=value pairs (ENV, LABEL, ARG), whitespace
separated words (FROM, EXPOSE) and one string (USER, WORKDIR, STOPSIGNAL, MAINTAINER).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import VisitError
from lark.tree import Meta

from rootless.dockerfile import flags as flagspec
from rootless.dockerfile.flags import Flag, FlagValues
from rootless.dockerfile.ir import (
    Add,
    Arg,
    ArgDecl,
    Cmd,
    Command,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from rootless.dockerfile.logical import LogicalLine, Scanned
from rootless.dockerfile.words import BLANKS, HEREDOC_WORD, json_array, split_words
from rootless.errors import DockerfileSyntaxError, Location

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")


@dataclass(frozen=True, slots=True)
class _Parts:
    """What the grammar gives one instruction: where it is, its flags, its arguments."""

    scanned: Scanned
    line: LogicalLine
    keyword: str
    start: int  # offset of the keyword in line.text
    flags: tuple[Flag, ...]
    args: str  # stripped argument text ("" when none)
    args_offset: int
    escape: str

    def error(self, message: str, offset: int | None = None) -> DockerfileSyntaxError:
        return self.scanned.error(message, self.line, self.start if offset is None else offset)

    @property
    def loc(self) -> Location:
        return self.scanned.location(self.line, self.start)

    @property
    def original(self) -> str:
        return self.line.text[self.start:].strip()

    def require_args(self, what: str = "at least one argument") -> None:
        if not self.args:
            raise self.error(f"{self.keyword} requires {what}")

    def blank_words(self) -> list[tuple[str, int]]:
        """Words split at blanks (no quote handling), with their offsets."""
        return [(m.group(), self.args_offset + m.start())
                for m in re.finditer(r"[^ \t\v\f\r]+", self.args)]

    def maybe_json(self) -> tuple[str, ...] | None:
        try:
            return json_array(self.args)
        except ValueError as exc:
            raise self.error(str(exc), self.args_offset) from None

    def command(self) -> Command:
        argv = self.maybe_json()
        return argv if argv is not None else self.args

    def values(self) -> FlagValues:
        return flagspec.check(self.keyword, self.flags, self.error)


@v_args(meta=True)
class ToIR(Transformer[Token, object]):
    """Tree → list of IR instructions, in file order (``parse.py`` groups them into stages)."""

    def __init__(self, scanned: Scanned, escape: str) -> None:
        super().__init__(visit_tokens=False)
        self.scanned = scanned
        self.escape = escape

    def start(self, _meta: Meta, children: list[Instruction]) -> list[Instruction]:
        return children

    def _parts(self, keyword: str, meta: Meta, children: list[object]) -> _Parts:
        line = self.scanned.lines[meta.line - 1]
        start = meta.column - 1
        flags: list[Flag] = []
        args, args_offset = "", len(line.text)
        for child in children:
            if not isinstance(child, Token):
                continue
            offset = child.column - 1 if child.column is not None else start
            if child.type == "FLAG":
                if child.value == "--":  # end of flags: the rest is arguments
                    args_offset = offset + 2
                    break
                flags.append(flagspec.parse_flag(child.value, offset))
            elif child.type == "ARGS":
                args_offset = offset
                break
        end = len(line.text)
        if args_offset < end:
            args = line.text[args_offset:end].rstrip()
            stripped = args.lstrip()
            args_offset += len(args) - len(stripped)
            args = stripped
        return _Parts(self.scanned, line, keyword, start, tuple(flags), args, args_offset,
                      self.escape)

    def _build(self, keyword: str, meta: Meta, children: list[object]) -> Instruction:
        return BUILDERS[keyword](self._parts(keyword, meta, children))

    # One method per grammar rule, named as the rule.
    def from_(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("FROM", meta, children)

    def run(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("RUN", meta, children)

    def cmd(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("CMD", meta, children)

    def entrypoint(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("ENTRYPOINT", meta, children)

    def label(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("LABEL", meta, children)

    def maintainer(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("MAINTAINER", meta, children)

    def expose(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("EXPOSE", meta, children)

    def env(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("ENV", meta, children)

    def add(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("ADD", meta, children)

    def copy(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("COPY", meta, children)

    def arg(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("ARG", meta, children)

    def volume(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("VOLUME", meta, children)

    def user(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("USER", meta, children)

    def workdir(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("WORKDIR", meta, children)

    def stopsignal(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("STOPSIGNAL", meta, children)

    def healthcheck(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("HEALTHCHECK", meta, children)

    def shell(self, meta: Meta, children: list[object]) -> Instruction:
        return self._build("SHELL", meta, children)

    def onbuild(self, meta: Meta, children: list[object]) -> Instruction:
        parts = self._parts("ONBUILD", meta, children)
        parts.values()
        inner = [c for c in children if isinstance(c, Instruction)]
        if not inner:
            raise parts.error("ONBUILD requires an instruction to run later")
        trigger = inner[0]
        if isinstance(trigger, Onbuild):
            raise parts.error("ONBUILD ONBUILD isn't allowed", trigger_offset(parts, trigger))
        if isinstance(trigger, From | Maintainer):
            raise parts.error(f"{trigger.keyword} isn't allowed as an ONBUILD trigger",
                              trigger_offset(parts, trigger))
        expression = trigger.original
        for heredoc in parts.line.heredocs:
            expression += "\n" + heredoc.content + heredoc.name
        return Onbuild(loc=parts.loc, original=parts.original, instruction=trigger,
                       expression=expression)


def trigger_offset(parts: _Parts, trigger: Instruction) -> int:
    return parts.line.text.find(trigger.original, parts.start)


def _from(p: _Parts) -> Instruction:
    values = p.values()
    words = p.blank_words()
    if not words:
        raise p.error("FROM requires an image")
    name: str | None = None
    if len(words) == 3 and words[1][0].lower() == "as":
        name = words[2][0].lower()
        if not _STAGE_NAME.match(name):
            raise p.error(f"invalid stage name {words[2][0]!r}: it must start with a letter "
                          "and hold only letters, digits, '-', '_' and '.'", words[2][1])
    elif len(words) != 1:
        raise p.error("FROM takes an image and an optional 'AS name' "
                      f"({len(words)} arguments given)", words[1][1])
    return From(loc=p.loc, original=p.original, image=words[0][0], name=name,
                platform=values.string("platform"))


def _run(p: _Parts) -> Instruction:
    values = p.values()
    p.require_args()
    mounts = tuple(flagspec.parse_mount(v, off, p.error) for v, off in values.multi("mount"))
    network = values.string("network")
    if network is not None and network not in ("default", "none", "host"):
        raise p.error(f"unsupported network mode {network!r} (default, none or host)",
                      values.offset("network"))
    security = values.string("security")
    if security is not None and security not in ("sandbox", "insecure"):
        raise p.error(f"unsupported security mode {security!r} (sandbox or insecure)",
                      values.offset("security"))
    return Run(loc=p.loc, original=p.original, command=p.command(), mounts=mounts,
               network=network, security=security, heredocs=p.line.heredocs)


def _cmd_like(cls: type[Cmd] | type[Entrypoint]) -> Callable[[_Parts], Instruction]:
    def build(p: _Parts) -> Instruction:
        p.values()
        # An empty CMD/ENTRYPOINT resets it, as Docker does; shown as an empty exec form.
        command: Command = p.command() if p.args else ()
        return cls(loc=p.loc, original=p.original, command=command)
    return build


def _name_values(p: _Parts) -> tuple[tuple[KeyValue, ...], bool]:
    """ENV and LABEL: ``k=v k2="v 2"``, or the legacy ``k the rest``."""
    p.values()
    words = split_words(p.args, p.escape)
    if not words:
        raise p.error(f"{p.keyword} requires at least one argument")
    if "=" not in words[0].text:
        parts = BLANKS.split(p.args, maxsplit=1)
        if len(parts) < 2 or not parts[1]:
            raise p.error(f"{p.keyword} {parts[0]} needs a value: use {p.keyword} "
                          f"{parts[0]}=value", p.args_offset)
        return (KeyValue(key=parts[0], value=parts[1]),), True
    pairs = []
    for word in words:
        key, sep, value = word.text.partition("=")
        if not sep:
            shown = word.text if len(word.text) <= 40 else word.text[:40] + "…"
            raise p.error(f"can't find = in {shown!r}: {p.keyword} takes name=value "
                          "pairs (quote values that contain spaces)",
                          p.args_offset + word.offset)
        if not key:
            raise p.error(f"{p.keyword} names can not be blank", p.args_offset + word.offset)
        pairs.append(KeyValue(key=key, value=value))
    return tuple(pairs), False


def _env(p: _Parts) -> Instruction:
    pairs, legacy = _name_values(p)
    return Env(loc=p.loc, original=p.original, pairs=pairs, legacy=legacy)


def _label(p: _Parts) -> Instruction:
    pairs, legacy = _name_values(p)
    return Label(loc=p.loc, original=p.original, pairs=pairs, legacy=legacy)


def _single(p: _Parts) -> str:
    p.values()
    if not p.args:
        raise p.error(f"{p.keyword} requires exactly one argument")
    return p.args


def _maintainer(p: _Parts) -> Instruction:
    return Maintainer(loc=p.loc, original=p.original, name=_single(p))


def _user(p: _Parts) -> Instruction:
    return User(loc=p.loc, original=p.original, user=_single(p))


def _workdir(p: _Parts) -> Instruction:
    return Workdir(loc=p.loc, original=p.original, path=_single(p))


def _stopsignal(p: _Parts) -> Instruction:
    return Stopsignal(loc=p.loc, original=p.original, signal=_single(p))


def _expose(p: _Parts) -> Instruction:
    p.values()
    p.require_args()
    return Expose(loc=p.loc, original=p.original, ports=tuple(w for w, _ in p.blank_words()))


def _arg(p: _Parts) -> Instruction:
    p.values()
    words = split_words(p.args, p.escape)
    if not words:
        raise p.error("ARG requires at least one argument")
    decls = []
    for word in words:
        name, sep, default = word.text.partition("=")
        if not name:
            raise p.error("ARG names can not be blank", p.args_offset + word.offset)
        decls.append(ArgDecl(name=name, default=default if sep else None))
    return Arg(loc=p.loc, original=p.original, args=tuple(decls))


def _volume(p: _Parts) -> Instruction:
    p.values()
    p.require_args()
    argv = p.maybe_json()
    paths = argv if argv is not None else tuple(w for w, _ in p.blank_words())
    if not paths:
        raise p.error("VOLUME requires at least one argument")
    for path in paths:
        if not path.strip():
            raise p.error("VOLUME specified can not be an empty string", p.args_offset)
    return Volume(loc=p.loc, original=p.original, paths=paths, json_form=argv is not None)


def _shell(p: _Parts) -> Instruction:
    p.values()
    p.require_args()
    argv = p.maybe_json()
    if argv is None:
        raise p.error('SHELL requires the JSON form, e.g. SHELL ["/bin/sh", "-c"]',
                      p.args_offset)
    if not argv:
        raise p.error("SHELL requires at least one argument", p.args_offset)
    return Shell(loc=p.loc, original=p.original, shell=argv)


def _file_copy(cls: type[Add] | type[Copy]) -> Callable[[_Parts], Instruction]:
    def build(p: _Parts) -> Instruction:
        values = p.values()
        argv = p.maybe_json()
        words = list(argv) if argv is not None else [w for w, _ in p.blank_words()]
        if len(words) < 2:
            raise p.error(f"{p.keyword} requires at least two arguments: the sources and "
                          "the destination", p.args_offset if p.args else None)
        *sources, dest = words
        if argv is None and HEREDOC_WORD.match(dest) and _heredoc_name(dest):
            raise p.error(f"{p.keyword} cannot accept a heredoc as the destination",
                          p.args_offset + p.args.rfind(dest))
        heredoc_names = {h.name for h in p.line.heredocs}
        paths = tuple(s for s in sources
                      if argv is not None or _heredoc_name(s) not in heredoc_names)
        return cls(
            loc=p.loc, original=p.original,
            sources=paths,
            dest=dest,
            from_=values.string("from"),
            chown=values.string("chown"),
            chmod=values.string("chmod"),
            link=values.boolean("link"),
            parents=values.boolean("parents"),
            exclude=tuple(v for v, _ in values.multi("exclude")),
            checksum=values.string("checksum"),
            keep_git_dir=values.boolean("keep-git-dir"),
            unpack=values.optional_boolean("unpack"),
            json_form=argv is not None,
            heredocs=p.line.heredocs if argv is None else (),
        )
    return build


def _heredoc_name(word: str) -> str | None:
    match = HEREDOC_WORD.match(word)
    if match is None or not match.group(3):
        return None
    return match.group(3).strip("'\"")


def _healthcheck(p: _Parts) -> Instruction:
    values = p.values()
    p.require_args()
    first = re.match(r"[^ \t\v\f\r]+", p.args)
    kind = first.group() if first else p.args
    rest = p.args[len(kind):].lstrip(" \t\v\f\r")
    rest_offset = p.args_offset + len(p.args) - len(rest)
    if kind.upper() == "NONE":
        if rest:
            raise p.error("HEALTHCHECK NONE takes no arguments", rest_offset)
        if p.flags:
            raise p.error("HEALTHCHECK NONE takes no flags", p.flags[0].offset)
        return Healthcheck(loc=p.loc, original=p.original, command=None)
    if kind.upper() != "CMD":
        raise p.error(f"unknown HEALTHCHECK type {kind!r} (try CMD or NONE)", p.args_offset)
    sub = _Parts(p.scanned, p.line, p.keyword, p.start, p.flags, rest, rest_offset, p.escape)
    command = sub.command()
    if not command:
        raise p.error("HEALTHCHECK CMD requires a command", rest_offset if rest else None)
    return Healthcheck(
        loc=p.loc, original=p.original,
        command=command,
        interval=values.duration("interval"),
        timeout=values.duration("timeout"),
        start_period=values.duration("start-period"),
        start_interval=values.duration("start-interval"),
        retries=values.retries("retries"),
    )


BUILDERS: dict[str, Callable[[_Parts], Instruction]] = {
    "FROM": _from,
    "RUN": _run,
    "CMD": _cmd_like(Cmd),
    "ENTRYPOINT": _cmd_like(Entrypoint),
    "LABEL": _label,
    "MAINTAINER": _maintainer,
    "EXPOSE": _expose,
    "ENV": _env,
    "ADD": _file_copy(Add),
    "COPY": _file_copy(Copy),
    "ARG": _arg,
    "VOLUME": _volume,
    "USER": _user,
    "WORKDIR": _workdir,
    "STOPSIGNAL": _stopsignal,
    "HEALTHCHECK": _healthcheck,
    "SHELL": _shell,
}


def to_instructions(tree: Tree[Token], scanned: Scanned, escape: str) -> list[Instruction]:
    try:
        result = ToIR(scanned, escape).transform(tree)
    except VisitError as exc:
        # Lark wraps what a rule method raises; our own errors go out as they are.
        if isinstance(exc.orig_exc, DockerfileSyntaxError):
            raise exc.orig_exc from None
        raise
    assert isinstance(result, list)
    return result
