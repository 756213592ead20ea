"""Docker's variable substitution, and the scoping rules that decide what is in scope.

Pure: ``expand(word, env)`` is BuildKit's ``shell.Lex.ProcessWord``: quote removal
(``'...'`` literal, ``"..."`` expanding) and the escape char, plus
``$var ${var} ${var:-w} ${var-w} ${var:+w} ${var+w} ${var:?msg} ${var?msg}
${var#p} ${var##p} ${var%p} ${var%%p} ${var/p/r} ${var//p/r}``.

Scoping, as Docker defines it:

- ARGs before the first FROM (``meta_args``) form the global scope, usable only in
  FROM lines, unless a stage re-declares them (``ARG NAME`` without a default takes
  the global value);
- inside a stage an ARG is in scope from its declaration to the end of the stage;
  its value is the ``--build-arg`` if given, else its default;
- ENV values win over ARG values of the same name;
- the predefined proxy ARGs are usable in RUN without being declared (they reach
  the RUN environment only when given with ``--build-arg``).

Docker expands ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME,
WORKDIR, ARG defaults and RUN --mount options; RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK
command text is left to the shell, ONBUILD triggers are expanded when they fire.
"""

from __future__ import annotations

import dataclasses
import re
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rootless.dockerfile.ir import (
    Add,
    Arg,
    ArgDecl,
    Copy,
    Dockerfile,
    Env,
    Expose,
    From,
    Heredoc,
    Instruction,
    KeyValue,
    Label,
    Run,
    RunMount,
    Stage,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from rootless.errors import DockerfileError

PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
              "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
"""Build args Docker accepts without a matching ARG (kept out of the image history)."""

EXPANDED_INSTRUCTIONS = ("ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "RUN",
                         "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
"""Keywords whose arguments Docker substitutes (RUN: only its --mount options)."""

_SPECIAL_PARAMS = "@*#?-$!0"
_PORT = re.compile(r"^[0-9]{1,5}(-[0-9]{1,5})?(/(tcp|udp|sctp))?$", re.IGNORECASE)
_REALTIME_SIGNAL = re.compile(r"^RTMIN(\+[0-9]+)?$|^RTMAX(-[0-9]+)?$")


def is_signal(name: str) -> bool:
    """What Docker's signal.ParseSignal accepts: a number, or a name with or without SIG."""
    if name.isdigit():
        return int(name) > 0
    bare = name.upper().removeprefix("SIG")
    return f"SIG{bare}" in signal.Signals.__members__ or bool(_REALTIME_SIGNAL.match(bare)) \
        or bare in ("CLD", "IOT", "POLL")


class SubstitutionError(ValueError):
    """A malformed ``${...}`` or a ``${var?message}`` on an unset variable."""


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``word`` with quotes removed and variables substituted, as Docker does."""
    return _Lexer(word, env, escape).process(stop="")


def expand_with_refs(
    word: str, env: Mapping[str, str], escape: str = "\\"
) -> tuple[str, frozenset[str]]:
    """Like ``expand``, also naming the variables the word referred to."""
    lexer = _Lexer(word, env, escape)
    return lexer.process(stop=""), frozenset(lexer.refs)


@dataclass(slots=True)
class _Lexer:
    text: str
    env: Mapping[str, str]
    escape: str
    # A heredoc body: quotes are ordinary characters and the escape char protects only
    # "$" and itself, as in a shell here-document.
    heredoc: bool = False
    pos: int = 0
    refs: set[str] = field(default_factory=set)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def process(self, stop: str) -> str:
        """Up to ``stop`` (consumed) or the end; quotes and escapes processed."""
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.peek()
            if stop and ch == stop:
                self.pos += 1
                return "".join(out)
            if ch == "'" and not self.heredoc:
                out.append(self.single_quoted())
            elif ch == '"' and not self.heredoc:
                out.append(self.double_quoted())
            elif ch == "$":
                out.append(self.dollar())
            else:
                self.pos += 1
                if ch == self.escape and self.heredoc:
                    if self.peek() in ("$", self.escape):
                        ch = self.next()
                elif ch == self.escape:
                    if self.pos >= len(self.text):
                        break  # an escape at the very end is dropped
                    ch = self.next()
                out.append(ch)
        if stop:
            raise SubstitutionError(f"missing '{stop}' in substitution")
        return "".join(out)

    def single_quoted(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        if end < 0:
            raise SubstitutionError("unexpected end of statement while looking for "
                                    "matching single-quote")
        value = self.text[self.pos:end]
        self.pos = end + 1
        return value

    def double_quoted(self) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise SubstitutionError("unexpected end of statement while looking for "
                                        "matching double-quote")
            ch = self.peek()
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == self.escape:
                following = self.peek()
                if not following:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        start = self.pos
        ch = self.peek()
        if ch.isdigit():
            while self.peek().isdigit():
                self.pos += 1
            return self.text[start:self.pos]
        if ch and ch in _SPECIAL_PARAMS:
            self.pos += 1
            return ch
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.pos += 1
        return self.text[start:self.pos]

    def lookup(self, name: str) -> str | None:
        self.refs.add(name)
        return self.env.get(name)

    def dollar(self) -> str:
        self.pos += 1  # the "$"
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.lookup(name) or ""
        self.pos += 1  # the "{"
        name = self.name()
        if not name:
            raise SubstitutionError("bad substitution: a ${...} needs a variable name")
        value = self.lookup(name)
        ch = self.next()
        if ch == "}":
            return value or ""
        if ch == "":
            raise SubstitutionError("missing '}' in substitution")
        if ch == ":":
            modifier = self.next()
            word = self.process(stop="}")
            if modifier == "-":
                return value or word
            if modifier == "+":
                return word if value else ""
            if modifier == "?":
                if not value:
                    raise SubstitutionError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            raise SubstitutionError(f"unsupported modifier ({modifier}) in substitution")
        if ch in "-+?":
            word = self.process(stop="}")
            if ch == "-":
                return word if value is None else value
            if ch == "+":
                return word if value is not None else ""
            if value is None:
                raise SubstitutionError(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        if ch in "#%":
            greedy = self.peek() == ch
            if greedy:
                self.pos += 1
            pattern = self.raw_until("}")
            return _remove(value or "", pattern, ch == "#", greedy, self.escape)
        if ch == "/":
            replace_all = self.peek() == "/"
            if replace_all:
                self.pos += 1
            pattern = self.raw_until("/", "}")
            replacement = "" if self.text[self.pos - 1] == "}" else self.process(stop="}")
            return _replace(value or "", pattern, replacement, replace_all, self.escape)
        raise SubstitutionError(f"unsupported modifier ({ch}) in substitution")

    def raw_until(self, *stops: str) -> str:
        """A pattern: variables expanded, escapes kept (they mean "literal" there)."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise SubstitutionError("missing '}' in substitution")
            if ch in stops:
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(re_glob_escape(self.dollar(), self.escape))
                continue
            self.pos += 1
            if ch == self.escape and self.peek():
                out.append(ch + self.next())
                continue
            out.append(ch)


def re_glob_escape(text: str, escape: str) -> str:
    """A variable's value inside a pattern matches literally."""
    return "".join(escape + c if c in "*?[" + escape else c for c in text)


def _glob_regex(pattern: str, escape: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == escape and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "*":
            if not out or out[-1] != ".*":  # "**" would only add backtracking
                out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _compile(pattern: str, escape: str) -> re.Pattern[str]:
    try:
        return re.compile(_glob_regex(pattern, escape), re.DOTALL)
    except re.error as exc:
        raise SubstitutionError(f"bad pattern {pattern!r}: {exc}") from None


def _remove(value: str, pattern: str, prefix: bool, greedy: bool, escape: str) -> str:
    regex = _compile(pattern, escape)
    sizes = range(len(value), -1, -1) if greedy else range(len(value) + 1)
    for size in sizes:
        part = value[:size] if prefix else value[len(value) - size:]
        if regex.fullmatch(part):
            return value[size:] if prefix else value[:len(value) - size]
    return value


def _replace(value: str, pattern: str, replacement: str, replace_all: bool,
             escape: str) -> str:
    regex = _compile(pattern, escape)
    if not pattern:
        return value
    return regex.sub(lambda _m: replacement, value, count=0 if replace_all else 1)


# --- scopes -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Scope:
    """What a point in a stage can see: declared ARGs and ENV (ENV wins)."""

    args: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        return {**self.args, **self.env}


def global_scope(
    meta_args: tuple[Arg, ...],
    build_args: Mapping[str, str],
    builtins: Mapping[str, str] | None = None,
    escape: str = "\\",
) -> dict[str, str]:
    """The variables FROM lines see: ``builtins`` (e.g. TARGETPLATFORM), then the ARGs
    before the first FROM, each overridden by its ``--build-arg``."""
    env = dict(builtins or {})
    for arg in meta_args:
        for decl in arg.args:
            value = _arg_value(decl, env, build_args, None, arg, escape)
            if value is not None:
                env[decl.name] = value
    return env


def _arg_value(
    decl: ArgDecl,
    env: Mapping[str, str],
    build_args: Mapping[str, str],
    inherited: str | None,
    where: Instruction,
    escape: str,
) -> str | None:
    if decl.name in build_args:
        return build_args[decl.name]
    if decl.default is not None:
        return _word(decl.default, env, where, escape)
    return inherited


def _word(word: str, env: Mapping[str, str], where: Instruction, escape: str) -> str:
    try:
        return expand(word, env, escape)
    except SubstitutionError as exc:
        raise DockerfileError(f"{where.keyword}: {exc}", where.loc) from None


@dataclass(frozen=True, slots=True)
class ExpandedStep:
    """An instruction as it will run, and the scope it runs in."""

    instruction: Instruction
    scope: Scope


def expand_stage(
    stage: Stage,
    *,
    global_vars: Mapping[str, str],
    build_args: Mapping[str, str],
    base_env: Mapping[str, str] | None = None,
    escape: str = "\\",
) -> list[ExpandedStep]:
    """Walk a stage: each instruction expanded with the scope in effect before it.

    ``global_vars`` comes from ``global_scope``; ``base_env`` is the base image's ENV.
    The scope of a step is the one its RUN would see (use ``run_environment``).
    """
    scope = Scope(args={}, env=dict(base_env or {}))
    steps: list[ExpandedStep] = []
    for instruction in stage.instructions:
        expanded = expand_instruction(instruction, scope.variables(), escape)
        steps.append(ExpandedStep(expanded, scope))
        if isinstance(instruction, Arg):
            args = dict(scope.args)
            for decl in instruction.args:
                value = _arg_value(decl, {**args, **scope.env}, build_args,
                                   global_vars.get(decl.name), instruction, escape)
                if value is not None:
                    args[decl.name] = value
                else:
                    args.pop(decl.name, None)
            scope = Scope(args=args, env=scope.env)
        elif isinstance(expanded, Env):
            scope = Scope(args=scope.args,
                          env={**scope.env, **{kv.key: kv.value for kv in expanded.pairs}})
    return steps


def run_environment(scope: Scope, build_args: Mapping[str, str]) -> dict[str, str]:
    """The environment of a RUN: ENV, declared ARGs, and proxy build args if given."""
    env = {name: build_args[name] for name in PROXY_ARGS if name in build_args}
    env.update(scope.args)
    env.update(scope.env)
    return env


def expand_from(stage: Stage, global_vars: Mapping[str, str], escape: str = "\\") -> Stage:
    """The stage with its base image and platform expanded in the global scope."""
    where = From(loc=stage.loc, original=stage.original, image=stage.base)
    base = _word(stage.base, global_vars, where, escape)
    platform = _word(stage.platform, global_vars, where, escape) if stage.platform else None
    return dataclasses.replace(stage, base=base, platform=platform or None)


def expand_instruction(
    instruction: Instruction, env: Mapping[str, str], escape: str = "\\"
) -> Instruction:
    """The instruction with the words Docker substitutes expanded (others unchanged)."""

    def w(word: str) -> str:
        return _word(word, env, instruction, escape)

    def opt(word: str | None) -> str | None:
        return None if word is None else w(word)

    match instruction:
        case Env() | Label():
            pairs = tuple(KeyValue(key=w(kv.key), value=w(kv.value))
                          for kv in instruction.pairs)
            return dataclasses.replace(instruction, pairs=pairs)
        case Add() | Copy():
            return dataclasses.replace(
                instruction,
                sources=tuple(w(s) for s in instruction.sources),
                dest=w(instruction.dest),
                from_=opt(instruction.from_),
                chown=opt(instruction.chown),
                chmod=opt(instruction.chmod),
                exclude=tuple(w(e) for e in instruction.exclude),
                checksum=opt(instruction.checksum),
                heredocs=tuple(_heredoc(h, env, escape, instruction)
                               for h in instruction.heredocs),
            )
        case Arg():
            return dataclasses.replace(instruction, args=tuple(
                ArgDecl(name=d.name, default=opt(d.default)) for d in instruction.args))
        case Expose():
            ports = tuple(p for word in instruction.ports for p in w(word).split())
            for port in ports:
                if not _PORT.match(port):
                    raise DockerfileError(f"EXPOSE: invalid port {port!r}: expected "
                                          "PORT[-PORT][/tcp|/udp|/sctp]", instruction.loc)
            return dataclasses.replace(instruction, ports=ports)
        case Volume():
            return dataclasses.replace(instruction,
                                       paths=tuple(w(p) for p in instruction.paths))
        case User():
            return dataclasses.replace(instruction, user=w(instruction.user))
        case Workdir():
            return dataclasses.replace(instruction, path=w(instruction.path))
        case Stopsignal():
            signal_name = w(instruction.signal)
            if not is_signal(signal_name):
                raise DockerfileError(f"STOPSIGNAL: invalid signal {signal_name!r}",
                                      instruction.loc)
            return dataclasses.replace(instruction, signal=signal_name)
        case From():
            return dataclasses.replace(instruction, image=w(instruction.image),
                                       platform=opt(instruction.platform))
        case Run():
            mounts = tuple(_mount(m, opt) for m in instruction.mounts)
            return dataclasses.replace(instruction, mounts=mounts)
    return instruction


def _mount(mount: RunMount, opt: Callable[[str | None], str | None]) -> RunMount:
    return dataclasses.replace(mount, target=opt(mount.target), source=opt(mount.source),
                               from_=opt(mount.from_), id=opt(mount.id))


def _heredoc(heredoc: Heredoc, env: Mapping[str, str], escape: str,
             where: Instruction) -> Heredoc:
    if not heredoc.expand:
        return heredoc
    try:
        content = _Lexer(heredoc.content, env, escape, heredoc=True).process(stop="")
    except SubstitutionError as exc:
        raise DockerfileError(f"{where.keyword}: {exc}", heredoc.loc) from None
    return dataclasses.replace(heredoc, content=content)


def _expand_arg(arg: Arg, env: Mapping[str, str], escape: str) -> Arg:
    expanded = expand_instruction(arg, env, escape)
    assert isinstance(expanded, Arg)
    return expanded


def expand_dockerfile(
    dockerfile: Dockerfile,
    build_args: Mapping[str, str],
    builtins: Mapping[str, str] | None = None,
) -> Dockerfile:
    """Every stage expanded as a build would (without the base images' ENV)."""
    escape = dockerfile.escape
    global_vars = global_scope(dockerfile.meta_args, build_args, builtins, escape)
    stages = []
    for stage in dockerfile.stages:
        stage = expand_from(stage, global_vars, escape)
        steps = expand_stage(stage, global_vars=global_vars, build_args=build_args,
                             escape=escape)
        stages.append(dataclasses.replace(
            stage, instructions=tuple(step.instruction for step in steps)))
    meta_args = tuple(_expand_arg(a, global_vars, escape) for a in dockerfile.meta_args)
    return dataclasses.replace(dockerfile, stages=tuple(stages), meta_args=meta_args)
