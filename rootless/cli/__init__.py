"""Command-line entry point: ``rootless VERB ...``.

This is the only place that reads argv and the environment into options,
prints errors and chooses exit codes. Verbs live in sibling modules, each with
``register(verbs, groups)``; a module imports its heavy dependencies inside the
handler so that ``rootless run`` pays only for what it uses.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rootless import __version__
from rootless.errors import RootlessError

# Verb modules, in the order their verbs appear in --help.
VERB_MODULES = (
    "rootless.cli.build",
    "rootless.cli.containers",
    "rootless.cli.images",
    "rootless.cli.registry",
    "rootless.cli.dockerfile",
    "rootless.cli.system",
    "rootless.cli.info",
)

# The modules that register each top-level verb or group, so that a command imports
# only its own verb module (start-up latency of `rootless run` is benchmarked).
# tests/cli/test_main.py checks this table against what the modules register.
VERB_OWNERS: dict[str, tuple[str, ...]] = {
    "build": ("rootless.cli.build",),
    "builder": ("rootless.cli.build",),
    "commit": ("rootless.cli.containers",),
    "container": ("rootless.cli.containers", "rootless.cli.images"),
    "dockerfile": ("rootless.cli.dockerfile",),
    "exec": ("rootless.cli.containers",),
    "export": ("rootless.cli.images",),
    "history": ("rootless.cli.images",),
    "image": ("rootless.cli.images", "rootless.cli.registry"),
    "images": ("rootless.cli.images",),
    "import": ("rootless.cli.images",),
    "info": ("rootless.cli.info",),
    "load": ("rootless.cli.images",),
    "login": ("rootless.cli.registry",),
    "logout": ("rootless.cli.registry",),
    "logs": ("rootless.cli.containers",),
    "ps": ("rootless.cli.containers",),
    "pull": ("rootless.cli.registry",),
    "push": ("rootless.cli.registry",),
    "rm": ("rootless.cli.containers",),
    "rmi": ("rootless.cli.images",),
    "run": ("rootless.cli.containers",),
    "save": ("rootless.cli.images",),
    "start": ("rootless.cli.containers",),
    "system": ("rootless.cli.info", "rootless.cli.system"),
    "tag": ("rootless.cli.images",),
    "unshare": ("rootless.cli.info",),
}

# Global options that take a value, to find the verb in argv without parsing it.
_VALUE_OPTIONS = ("--root", "--storage-driver")

# Management groups, as in `docker image ls`, `docker system df`.
GROUPS = {
    "image": "Manage images",
    "container": "Manage containers",
    "system": "Manage rootless",
    "builder": "Manage the build cache",
    "dockerfile": "Inspect Dockerfiles",
}


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """Options every verb may read; built once from argv and the environment."""

    root: Path
    debug: bool
    storage_driver: str


Handler = Callable[[GlobalOptions, argparse.Namespace], int | None]


def default_root() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "rootless"


def global_options(args: argparse.Namespace) -> GlobalOptions:
    """Flags first, then the environment, then the user's config file, then defaults."""
    env_root = os.environ.get("ROOTLESS_ROOT")
    root: Path | None = args.root or (Path(env_root) if env_root else None)
    driver: str | None = args.storage_driver or os.environ.get("ROOTLESS_STORAGE_DRIVER")
    if root is None or driver is None:
        from rootless.userconfig import load_user_config

        config = load_user_config()
        root = root or config.root
        driver = driver or config.storage_driver
    return GlobalOptions(root=root or default_root(),
                         debug=args.debug or bool(os.environ.get("ROOTLESS_DEBUG")),
                         storage_driver=driver or "auto")


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line error, as docker does for bad flags."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"rootless: {message}\nSee '{self.prog} --help'.\n")


if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[_Parser]
else:
    _SubParsers = argparse._SubParsersAction


class _Verbs(_SubParsers):
    """Subparsers that may be asked to build one verb only (``only``).

    Building every parser of a verb module costs `rootless run` a few milliseconds
    of its benchmarked start-up; a module's ``register`` that checks ``wants(name)``
    skips the verbs the command line does not use.
    """

    only: str | None = None  # None: every verb; "": none of them

    def wants(self, name: str) -> bool:
        return self.only is None or name == self.only


def requested_verb(argv: Sequence[str]) -> str | None:
    """The first word of ARGV that is not a global option (or its value)."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUE_OPTIONS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ARGV: with only the verb modules its verb needs, or all of them
    (for --help, an unknown verb, or ARGV None)."""
    import importlib

    verb = requested_verb(argv) if argv is not None else None
    modules = VERB_OWNERS.get(verb, VERB_MODULES) if verb else VERB_MODULES

    parser = _Parser(
        prog="rootless",
        description="Build and run Docker images as an ordinary user: no root, no daemon.",
    )
    parser.add_argument("--version", action="version", version=f"rootless version {__version__}")
    parser.add_argument("--root", type=Path, help="store directory (default $ROOTLESS_ROOT, "
                        "else $XDG_DATA_HOME/rootless)")
    parser.add_argument("-D", "--debug", action="store_true", help="debug output")
    parser.add_argument("--storage-driver", choices=("auto", "fuse", "overlay", "vfs"),
                        help="copy-on-write driver (default $ROOTLESS_STORAGE_DRIVER, else auto)")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=_Parser,
                                  action=_Verbs)
    assert isinstance(verbs, _Verbs)
    if verb in VERB_OWNERS:
        verbs.only = verb  # a known verb (or group) needs its own parser alone
    groups: dict[str, argparse._SubParsersAction[_Parser]] = {}
    for name, help_text in GROUPS.items():
        if not verbs.wants(name):
            # Not on this command line: a detached stand-in for register() to skip.
            unused = _Verbs([], prog=f"rootless {name}", parser_class=_Parser,
                            dest="subverb", metavar="COMMAND")
            unused.only = ""
            groups[name] = unused
            continue
        group = verbs.add_parser(name, help=help_text, description=help_text)
        groups[name] = group.add_subparsers(dest="subverb", metavar="COMMAND",
                                            parser_class=_Parser, action=_Verbs)
        group.set_defaults(handler=_group_help(group))
    for module_name in (m for m in VERB_MODULES if m in modules):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # that part of rootless is not written yet
            raise
        module.register(verbs, groups)
    return parser


def _group_help(group: argparse.ArgumentParser) -> Handler:
    def show(_opts: GlobalOptions, _args: argparse.Namespace) -> int:
        group.print_help()
        return 0
    return show


def main(argv: Sequence[str] | None = None) -> None:
    as_command = argv is None  # the console script: nothing runs after us in this process
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        sys.exit(0)
    try:
        code = handler(global_options(args), args)
    except RootlessError as err:
        print(f"rootless: {err}", file=sys.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # `rootless images | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    if as_command:
        _exit_without_teardown(code or 0)
    sys.exit(code or 0)


def _exit_without_teardown(code: int) -> None:
    """Exit with CODE now, skipping the interpreter's teardown when nothing needs it.

    Freeing every module and object costs several milliseconds, which `rootless
    run` pays on every container (its start-to-exit latency is benchmarked). With
    no atexit callback (tempfile's finalizers, logging...) and no other thread,
    flushing stdout and stderr is all that teardown would do that anyone sees.
    Returns (for sys.exit) when something else may need the teardown.
    """
    import atexit

    threading = sys.modules.get("threading")
    if atexit._ncallbacks() or (threading is not None and threading.active_count() > 1):
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None when started with that descriptor closed
                stream.flush()
    except BrokenPipeError:
        return  # sys.exit's path reports nothing for it either; let it handle this
    os._exit(code)
