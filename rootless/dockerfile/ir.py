"""The Dockerfile IR: what the build engine reads; nothing downstream sees Lark trees.

One frozen dataclass per instruction (as BuildKit's ``instructions/commands.go``),
grouped into ``Stage``s and a ``Dockerfile``. Every node carries ``loc`` (where its
keyword is) and ``original`` (the logical line as written, continuations joined,
heredoc bodies not included), so tools can show raw and expanded forms side by side.

Values are kept *as written*: quotes, escapes and ``$variables`` are still in the
words. ``rootless.dockerfile.expand.expand_instruction`` turns an instruction into its
expanded form exactly as Docker does (quote removal plus substitution) for the
instructions Docker expands; RUN/CMD/ENTRYPOINT shell text is left to the shell.

A command is ``str`` for the shell form and ``tuple[str, ...]`` for the exec (JSON) form.

Field names are a contract: add fields, never rename them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from rootless.errors import Location

Command = str | tuple[str, ...]
"""Shell form (one string, run by the SHELL) or exec form (argv from JSON)."""


def is_exec_form(command: Command) -> bool:
    return isinstance(command, tuple)


@dataclass(frozen=True, slots=True, kw_only=True)
class Directive:
    """A parser directive at the top of the file: ``# syntax=``, ``# escape=``, ``# check=``."""

    name: str  # lower case
    value: str
    loc: Location


@dataclass(frozen=True, slots=True, kw_only=True)
class Heredoc:
    """One here-document: ``<<EOF`` ... ``EOF``.

    ``content`` is the body with its final newline (as the shell sees it); with
    ``strip_tabs`` (``<<-EOF``) leading tabs are already removed from every line.
    ``expand`` is False when the delimiter was quoted (``<<'EOF'``, ``<<"EOF"``):
    the body is then used verbatim.
    """

    name: str
    content: str
    expand: bool
    strip_tabs: bool
    loc: Location


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyValue:
    """A ``key=value`` pair of LABEL or ENV, both sides as written."""

    key: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunMount:
    """One ``RUN --mount=...``, with BuildKit's defaults applied.

    ``type`` is bind, cache, tmpfs, secret or ssh. Options that do not apply to a
    type stay None. ``from_`` is a stage name, stage index or image (bind, cache).
    """

    type: str
    target: str | None = None
    source: str | None = None
    from_: str | None = None
    readonly: bool = False
    id: str | None = None
    sharing: str | None = None  # cache: shared | private | locked
    mode: int | None = None  # cache, secret, ssh: octal file mode
    uid: int | None = None
    gid: int | None = None
    size: int | None = None  # tmpfs: bytes
    required: bool = False  # secret, ssh
    env: str | None = None  # secret: expose as this environment variable
    original: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Instruction:
    """Fields every instruction has. Use ``match`` on the concrete classes."""

    keyword: ClassVar[str] = ""
    loc: Location
    original: str


@dataclass(frozen=True, slots=True, kw_only=True)
class From(Instruction):
    keyword: ClassVar[str] = "FROM"
    image: str
    name: str | None = None  # stage name, lower-cased as Docker compares them
    platform: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Run(Instruction):
    keyword: ClassVar[str] = "RUN"
    command: Command
    mounts: tuple[RunMount, ...] = ()
    network: str | None = None  # default | none | host
    security: str | None = None  # sandbox | insecure
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Cmd(Instruction):
    keyword: ClassVar[str] = "CMD"
    command: Command


@dataclass(frozen=True, slots=True, kw_only=True)
class Entrypoint(Instruction):
    keyword: ClassVar[str] = "ENTRYPOINT"
    command: Command


@dataclass(frozen=True, slots=True, kw_only=True)
class Label(Instruction):
    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[KeyValue, ...]
    legacy: bool = False  # the old ``LABEL key value with spaces`` form


@dataclass(frozen=True, slots=True, kw_only=True)
class Maintainer(Instruction):
    """Deprecated; Docker turns it into the image's ``author``."""

    keyword: ClassVar[str] = "MAINTAINER"
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Expose(Instruction):
    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]  # "80", "80/tcp", "53/udp", "8000-8010"


@dataclass(frozen=True, slots=True, kw_only=True)
class Env(Instruction):
    keyword: ClassVar[str] = "ENV"
    pairs: tuple[KeyValue, ...]
    legacy: bool = False  # the old ``ENV key value with spaces`` form


@dataclass(frozen=True, slots=True, kw_only=True)
class _FileCopy(Instruction):
    """Shared shape of ADD and COPY (each rejects the other's flags at parse time)."""

    sources: tuple[str, ...]
    dest: str
    from_: str | None = None  # COPY only
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    exclude: tuple[str, ...] = ()
    checksum: str | None = None  # ADD only
    keep_git_dir: bool = False  # ADD only
    unpack: bool | None = None  # ADD only: --unpack=false keeps a local archive packed
    json_form: bool = False  # paths came from a JSON array (no quote processing)
    heredocs: tuple[Heredoc, ...] = ()  # sources named <<EOF are these bodies


@dataclass(frozen=True, slots=True, kw_only=True)
class Add(_FileCopy):
    keyword: ClassVar[str] = "ADD"


@dataclass(frozen=True, slots=True, kw_only=True)
class Copy(_FileCopy):
    keyword: ClassVar[str] = "COPY"


@dataclass(frozen=True, slots=True, kw_only=True)
class ArgDecl:
    name: str
    default: str | None = None  # as written; None when declared without ``=``


@dataclass(frozen=True, slots=True, kw_only=True)
class Arg(Instruction):
    keyword: ClassVar[str] = "ARG"
    args: tuple[ArgDecl, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Volume(Instruction):
    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]
    json_form: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class User(Instruction):
    keyword: ClassVar[str] = "USER"
    user: str  # "user" or "user:group", as written


@dataclass(frozen=True, slots=True, kw_only=True)
class Workdir(Instruction):
    keyword: ClassVar[str] = "WORKDIR"
    path: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Onbuild(Instruction):
    """A trigger: ``expression`` is what goes into the image config's OnBuild list."""

    keyword: ClassVar[str] = "ONBUILD"
    instruction: Instruction
    expression: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Stopsignal(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Healthcheck(Instruction):
    """``HEALTHCHECK NONE`` (command None) or ``HEALTHCHECK [flags] CMD command``.

    Durations are nanoseconds, as in the image config; None means "inherit/default".
    """

    keyword: ClassVar[str] = "HEALTHCHECK"
    command: Command | None
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None

    @property
    def test(self) -> tuple[str, ...]:
        """The image config's ``Healthcheck.Test`` array."""
        if self.command is None:
            return ("NONE",)
        if isinstance(self.command, tuple):
            return ("CMD", *self.command)
        return ("CMD-SHELL", self.command)


@dataclass(frozen=True, slots=True, kw_only=True)
class Shell(Instruction):
    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


INSTRUCTION_TYPES: tuple[type[Instruction], ...] = (
    Add, Arg, Cmd, Copy, Entrypoint, Env, Expose, From, Healthcheck, Label, Maintainer,
    Onbuild, Run, Shell, Stopsignal, User, Volume, Workdir,
)
INSTRUCTION_NAMES: tuple[str, ...] = tuple(sorted(t.keyword for t in INSTRUCTION_TYPES))


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """``FROM base [AS name]`` and the instructions after it (the FROM itself is not
    in ``instructions``; its fields are here and ``loc``/``original`` are its own)."""

    name: str | None
    base: str
    platform: str | None
    index: int
    instructions: tuple[Instruction, ...]
    loc: Location
    original: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LintWarning:
    """Something legal but likely wrong; ``rule`` is BuildKit's check name, so
    ``# check=skip=RuleName`` silences it as it does with docker build."""

    rule: str
    message: str
    loc: Location


@dataclass(frozen=True, slots=True, kw_only=True)
class Dockerfile:
    stages: tuple[Stage, ...]
    meta_args: tuple[Arg, ...]  # ARGs before the first FROM: usable in FROM lines
    directives: tuple[Directive, ...] = ()
    escape: str = "\\"
    warnings: tuple[LintWarning, ...] = ()

    def directive(self, name: str) -> str | None:
        for d in self.directives:
            if d.name == name:
                return d.value
        return None

    def stage(self, name_or_index: str) -> Stage | None:
        """The stage called this (case-insensitive), or with this index."""
        for stage in self.stages:
            if stage.name is not None and stage.name == name_or_index.lower():
                return stage
        if name_or_index.isdigit() and int(name_or_index) < len(self.stages):
            return self.stages[int(name_or_index)]
        return None


# --- a stable JSON shape, for golden files, the CLI and other tools -------------------

def _loc_json(loc: Location) -> dict[str, Any]:
    out: dict[str, Any] = {"file": loc.file, "line": loc.line, "column": loc.column}
    if loc.end_line is not None and loc.end_line != loc.line:
        out["end_line"] = loc.end_line
    return out


def to_json(node: object) -> Any:
    """A JSON-ready value: dataclasses become objects (instructions gain an
    ``"instruction"`` key naming their keyword), tuples lists; field order is stable."""
    if isinstance(node, Location):
        return _loc_json(node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Any] = {}
        if isinstance(node, Instruction):
            out["instruction"] = node.keyword
        for field in dataclasses.fields(node):
            out[field.name] = to_json(getattr(node, field.name))
        return out
    if isinstance(node, tuple | list):
        return [to_json(item) for item in node]
    return node


def dump(node: object) -> str:
    """Indented, stable JSON text of any IR node, ending in a newline."""
    return json.dumps(to_json(node), indent=2, ensure_ascii=False) + "\n"
