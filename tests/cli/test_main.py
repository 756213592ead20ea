from tests.helpers import Rootless


def test_help_lists_verbs(rootless: Rootless) -> None:
    out = rootless("--help").stdout
    assert "image" in out and "system" in out


def test_unknown_verb_is_one_line_error(rootless: Rootless) -> None:
    res = rootless("frobnicate", check=False)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "invalid choice" in res.stderr


def _registered_owners() -> dict[str, set[str]]:
    """Which module adds each top-level verb and group sub-verb, by building the full parser."""
    import argparse
    import importlib

    from rootless import cli

    owners: dict[str, set[str]] = {}
    parser = cli._Parser(prog="rootless")
    verbs = parser.add_subparsers(dest="verb", parser_class=cli._Parser)
    groups = {}
    for name in cli.GROUPS:
        groups[name] = verbs.add_parser(name).add_subparsers(dest="subverb",
                                                              parser_class=cli._Parser)
    for module_name in cli.VERB_MODULES:
        before = set(verbs.choices)
        before_groups = {name: set(group.choices) for name, group in groups.items()}
        importlib.import_module(module_name).register(verbs, groups)
        for verb in set(verbs.choices) - before:
            owners.setdefault(verb, set()).add(module_name)
        for name, group in groups.items():
            if set(group.choices) - before_groups[name]:
                owners.setdefault(name, set()).add(module_name)
    assert isinstance(parser, argparse.ArgumentParser)
    return owners


def test_verb_owners_table_matches_the_modules() -> None:
    from rootless import cli

    assert {verb: set(mods) for verb, mods in cli.VERB_OWNERS.items()} == _registered_owners()


def test_requested_verb_skips_global_options() -> None:
    from rootless.cli import requested_verb

    assert requested_verb(["--root", "/x", "-D", "run", "--rm", "img"]) == "run"
    assert requested_verb(["--storage-driver", "vfs", "image", "ls"]) == "image"
    assert requested_verb(["--help"]) is None


def test_run_imports_only_its_own_verb_module(rootless: Rootless) -> None:
    import subprocess
    import sys

    code = ("import sys; from rootless.cli import build_parser; "
            "build_parser(['run', '--help']); "
            "print(sorted(m for m in sys.modules if m.startswith('rootless.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "rootless.cli.containers" in out
    assert "rootless.cli.build" not in out and "rootless.cli.registry" not in out


# What `rootless run --rm IMAGE CMD` imports, in the CLI process and in the sandbox's
# children (PID 1 mounts the --rm overlay, the command's process enters the root).
_RUN_PATH_IMPORTS = """
import sys
from rootless.cli import build_parser
argv = ['run', '--rm', 'busybox', 'true']
build_parser(argv).parse_args(argv)
from rootless.run import RunRequest, containers_of, process_spec, rootfs_setup, spec_to_json
from rootless.run import _mount_volatile_overlay, _remove_layer
from rootless.store import Store
from rootless.sandbox import Sandbox
from rootless.sandbox.process import init_main, command_main
from rootless.cowfs.overlay import overlay_options
from rootless.containers import remove_tree
print(' '.join(sorted(sys.modules)))
"""

# Modules `rootless run` does not need: layer tars and gzip, the registry client, the
# builder, the FUSE union, garbage collection, -t and single-ID mode's extras.
_NOT_ON_RUN_PATH = (
    "rootless.oci.layer", "rootless.oci.pgzip", "rootless.oci.tarstream", "rootless.registry",
    "rootless.build", "rootless.dockerfile", "rootless.cowfs.fuse", "rootless.cowfs.union",
    "rootless.cowfs.layers", "rootless.store.gc", "rootless.store.blobs",
    "rootless.sandbox.seccomp", "rootless.sandbox.tty", "rootless.elf", "lark", "requests",
    "tarfile", "gzip", "subprocess", "concurrent.futures", "tempfile", "socket", "traceback",
)


def test_run_path_imports_no_heavy_module() -> None:
    """`rootless run` start-up latency is benchmarked (scripts/bench-run): every module
    it imports is paid for on every run."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _RUN_PATH_IMPORTS], capture_output=True,
                         text=True, check=True).stdout
    loaded = set(out.split())
    assert "rootless.sandbox.runner" in loaded  # the script did import the run path
    assert sorted(loaded.intersection(_NOT_ON_RUN_PATH)) == []
