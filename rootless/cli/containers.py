"""Container verbs: run, ps, rm, start, logs, exec, commit, container prune/ls/rm/...

Handlers import the sandbox, store and cowfs lazily: ``rootless run`` start-up
latency is benchmarked (scripts/bench-run).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from rootless.errors import ContainerError, ImageNotFound, RootlessError

if TYPE_CHECKING:
    from rootless.cli import GlobalOptions
    from rootless.containers import Container
    from rootless.store import StoredImage

Subparsers = argparse._SubParsersAction


def _add(parent: Any, name: str, help_text: str, aliases: tuple[str, ...] = (),
         add_help: bool = True) -> argparse.ArgumentParser | None:
    """A parser for verb NAME under PARENT; None when it exists already or this
    command line does not use it (``rootless run`` builds its own parser alone)."""
    existing = getattr(parent, "_name_parser_map", {})
    if name in existing:
        return None
    wants = getattr(parent, "wants", None)
    if wants is not None and not any(wants(n) for n in (name, *aliases)):
        return None
    parser: argparse.ArgumentParser = parent.add_parser(
        name, help=help_text, description=help_text, add_help=add_help,
        aliases=[a for a in aliases if a not in existing])
    return parser


def _run_flags(p: argparse.ArgumentParser, *, create: bool) -> None:
    p.add_argument("-e", "--env", action="append", default=[], metavar="VAR[=VALUE]",
                   help="set an environment variable")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("-u", "--user", help="user name or uid[:group or gid]")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background, "
                   "print the container ID")
    if not create:
        return
    p.add_argument("--env-file", action="append", default=[], help="read environment files")
    p.add_argument("--entrypoint", help="override the image's ENTRYPOINT")
    p.add_argument("-v", "--volume", action="append", default=[], metavar="HOST:CTR[:ro]",
                   help="bind-mount a host path")
    p.add_argument("--tmpfs", action="append", default=[], metavar="PATH[:OPTIONS]",
                   help="mount a tmpfs")
    p.add_argument("--read-only", action="store_true", help="read-only root filesystem")
    p.add_argument("-h", "--hostname", help="container host name")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--name", help="assign a name to the container")
    p.add_argument("--network", "--net", default="host", choices=("host", "none"),
                   help="network: the host's (default) or none (loopback only)")
    p.add_argument("--platform", help="accepted for Docker compatibility")
    p.add_argument("--pull", choices=("missing", "never", "always"), default="missing",
                   help="pull the image if it is not in the store")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")


def register(verbs: Subparsers, groups: dict[str, Subparsers]) -> None:
    container = groups["container"]
    for parent in (verbs, container):
        p = _add(parent, "run", "Create and run a new container from an image",
                 add_help=False)  # -h is --hostname, as in docker run
        if p is not None:
            p.add_argument("--help", action="help", help="show this help message and exit")
            _run_flags(p, create=True)
            p.set_defaults(handler=run)
    listings: tuple[tuple[Any, str, tuple[str, ...]], ...] = (
        (verbs, "ps", ()), (container, "ls", ("list", "ps")))
    for parent, name, aliases in listings:
        p = _add(parent, name, "List containers", aliases)
        if p is not None:
            p.add_argument("-a", "--all", action="store_true", help="show all containers")
            p.add_argument("-q", "--quiet", action="store_true", help="only display IDs")
            p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
            p.set_defaults(handler=ps)
    removals: tuple[tuple[Any, str, tuple[str, ...]], ...] = (
        (verbs, "rm", ()), (container, "rm", ("remove",)))
    for parent, name, aliases in removals:
        p = _add(parent, name, "Remove one or more containers", aliases)
        if p is not None:
            p.add_argument("-f", "--force", action="store_true",
                           help="force the removal of a running container")
            p.add_argument("containers", nargs="+", metavar="CONTAINER")
            p.set_defaults(handler=rm)
    p = _add(container, "prune", "Remove all stopped containers")
    if p is not None:
        p.add_argument("-f", "--force", action="store_true", help="do not prompt")
        p.set_defaults(handler=prune)
    for parent in (verbs, container):
        p = _add(parent, "start", "Start one or more stopped containers")
        if p is not None:
            p.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr")
            p.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
            p.add_argument("containers", nargs="+", metavar="CONTAINER")
            p.set_defaults(handler=start)
        p = _add(parent, "logs", "Fetch the logs of a container")
        if p is not None:
            p.add_argument("container", metavar="CONTAINER")
            p.set_defaults(handler=logs)
        p = _add(parent, "exec", "Execute a command in a running container")
        if p is not None:
            _run_flags(p, create=False)
            p.add_argument("container", metavar="CONTAINER")
            p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
            p.set_defaults(handler=exec_)
        p = _add(parent, "commit", "Create a new image from a container's changes")
        if p is not None:
            p.add_argument("-c", "--change", action="append", default=[],
                           help="apply a Dockerfile instruction to the image")
            p.add_argument("-m", "--message", help="commit message")
            p.add_argument("-a", "--author", help="author")
            p.add_argument("container", metavar="CONTAINER")
            p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
            p.set_defaults(handler=commit)


# -- run -------------------------------------------------------------------------


def run(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.run import RunRequest, containers_of, process_spec, spec_to_json
    from rootless.store import Store

    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        raise ContainerError("the input device is not a TTY",
                             hint="drop -t, or run from a terminal")
    store = Store.open(opts.root)
    try:
        image = store.resolve(args.image)
    except ImageNotFound:
        if args.pull == "never":
            raise
        image = _pull(store, args.image, args.platform)
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    req = RunRequest(
        image=args.image, command=tuple(command), entrypoint=args.entrypoint,
        env=tuple(args.env), env_files=tuple(args.env_file), user=args.user,
        workdir=args.workdir, volumes=tuple(args.volume), tmpfs=tuple(args.tmpfs),
        read_only=args.read_only, hostname=args.hostname, network=args.network,
        tty=args.tty, interactive=args.interactive, name=args.name, remove=args.rm,
        detach=args.detach, host_env=dict(os.environ))
    config = image.config.get("config") or {}
    containers = containers_of(opts.root)
    spec = process_spec(config, req, args.hostname)
    record_config = spec_to_json(spec)
    record_config["Driver"] = opts.storage_driver
    container = containers.create(image_id=str(image.image_id), image_name=args.image,
                                  command=list(spec.argv), config=record_config,
                                  name=args.name)
    if args.hostname is None:
        from dataclasses import replace

        spec = replace(spec, hostname=container.short_id,
                       env={**spec.env, "HOSTNAME": container.short_id})
        container.config["Hostname"] = container.short_id
        container.config["Env"] = dict(spec.env)
        container.save()
    return _start_container(opts, container, attach=not args.detach,
                            interactive=args.interactive, remove=args.rm, image=image)


def _pull(store: Any, name: str, platform: str | None) -> Any:
    """Docker's run: an image missing from the store is pulled first."""
    from rootless.registry import pull_image

    print(f"Unable to find image '{name}' locally", file=sys.stderr)
    return pull_image(store, name, platform)


def _start_container(opts: GlobalOptions, container: Container, *, attach: bool,
                     interactive: bool, remove: bool, shown: str | None = None,
                     image: StoredImage | None = None) -> int:
    """Run CONTAINER's recorded command in its writable layer (foreground or detached);
    IMAGE is its image when the caller just resolved it (not read again)."""
    from dataclasses import replace

    from rootless.run import rootfs_setup, spec_from_json
    from rootless.sandbox import Sandbox

    driver = str(container.config.get("Driver") or opts.storage_driver)
    spec = spec_from_json(container.config)
    sandbox = Sandbox(rootfs_setup(opts.root, container, driver, remove_after=remove,
                                   image=image),
                      count_faked=opts.debug)
    if opts.debug:
        print(f"rootless: ID mapping {sandbox.mapping.mode}, storage driver {driver}"
              + (", faking ownership changes with seccomp" if sandbox.fake_ownership else ""),
              file=sys.stderr)
    if not attach:
        return _detach(container, sandbox, spec, shown or container.id)
    spec = replace(spec, stdin=0 if interactive else None, stdout=1, stderr=2)
    code = 125
    # Running from now on, so that a rootless run killed at any moment shows as exited.
    container.mark_running(os.getpid(), 0)
    try:
        code = sandbox.run(spec, on_start=lambda p: container.mark_running(os.getpid(),
                                                                          p.init_pid))
    except RootlessError as err:
        code = err.exit_code
        raise
    finally:
        _finish(container, code, remove)
    return code


def _finish(container: Container, code: int, remove: bool) -> None:
    from rootless.containers import remove_tree

    if remove:
        if container.path.exists():
            remove_tree(container.path)
    elif container.path.exists():
        container.mark_exited(code)


def _detach(container: Container, sandbox: Any, spec: Any, shown: str) -> int:
    """Start in the background under a monitor process; print the ID once it runs."""
    from dataclasses import replace

    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    monitor = os.fork()
    if monitor == 0:
        os.close(read_fd)
        code = 125
        try:
            os.setsid()
            log = os.open(container.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            null = os.open(os.devnull, os.O_RDWR)
            for fd, target in ((null, 0), (log, 1), (log, 2)):
                os.dup2(fd, target)
            process = sandbox.start(replace(spec, tty=False, stdin=None, stdout=1, stderr=2))
            container.mark_running(os.getpid(), process.init_pid)
            os.write(write_fd, b"ok")
            os.close(write_fd)
            code = process.wait()
        except RootlessError as err:
            code = err.exit_code
            os.write(write_fd, f"{err.exit_code}\t{err}\t{err.hint or ''}".encode())
        finally:
            if container.path.exists():
                container.mark_exited(code)
            os._exit(0)
    os.close(write_fd)
    # One read: the sandbox's own processes hold copies of the write end.
    answer = os.read(read_fd, 65536).decode(errors="replace")
    os.close(read_fd)
    if answer != "ok":
        code_text, _, rest = answer.partition("\t")
        message, _, hint = rest.partition("\t")
        failure = ContainerError(message or "the container monitor died", hint=hint or None)
        failure.exit_code = int(code_text) if code_text.isdigit() else 125
        raise failure
    print(shown)  # run -d: the full ID; start: the name or ID given, as docker does
    return 0


# -- ps, rm, prune ----------------------------------------------------------------


def ps(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.cli.output import ellipsis, print_table, time_ago
    from rootless.containers import parse_iso
    from rootless.run import containers_of

    shown = [c for c in containers_of(opts.root).all() if args.all or c.running]
    if args.quiet:
        for c in shown:
            print(c.id if args.no_trunc else c.short_id)
        return 0
    rows = []
    for c in shown:
        command = " ".join(str(a) for a in c.doc.get("Command") or [])
        rows.append([c.id if args.no_trunc else c.short_id, str(c.doc.get("ImageName")),
                     f'"{command if args.no_trunc else ellipsis(command, 20)}"',
                     time_ago(parse_iso(c.doc.get("Created"))), c.status_text(), c.name])
    print_table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"], rows)
    return 0


def rm(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.run import containers_of

    containers = containers_of(opts.root)
    failed = 0
    for name in args.containers:
        try:
            containers.remove(containers.get(name), force=args.force)
        except RootlessError as err:
            print(f"rootless: {err}", file=sys.stderr)  # one line per container, as docker
            failed = 1
            continue
        print(name)
    return failed


def prune(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.cli.images import confirm
    from rootless.run import containers_of

    if not args.force and not confirm(
            "WARNING! This will remove all stopped containers.\n"
            "Are you sure you want to continue?"):
        return 0
    containers = containers_of(opts.root)
    removed = []
    for c in containers.all():
        if not c.running:
            containers.remove(c)
            removed.append(c.id)
    if removed:
        print("Deleted Containers:")
        print("\n".join(removed))
        print()
    print("Total reclaimed space: 0B")
    return 0


# -- start, logs, exec, commit -------------------------------------------------------


def start(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.run import containers_of

    containers = containers_of(opts.root)
    code = 0
    for name in args.containers:
        container = containers.get(name)
        if container.running:
            continue
        code = _start_container(opts, container, attach=args.attach,
                                interactive=args.interactive, remove=False, shown=name)
    return code


def logs(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.run import containers_of

    container = containers_of(opts.root).get(args.container)
    try:
        with open(container.log_path, "rb") as f:
            while chunk := f.read(65536):
                sys.stdout.buffer.write(chunk)
    except FileNotFoundError:
        pass
    sys.stdout.flush()
    return 0


def exec_(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.run import containers_of, merge_env
    from rootless.sandbox import ProcessSpec
    from rootless.sandbox.enter import exec_in

    container = containers_of(opts.root).get(args.container)
    if not container.running or container.init_pid is None:
        raise ContainerError(f"container {container.short_id} is not running",
                             hint=f"start it: rootless start {container.name}")
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ContainerError("no command specified")
    env = merge_env([f"{k}={v}" for k, v in (container.config.get("Env") or {}).items()],
                    [], args.env, dict(os.environ))
    spec = ProcessSpec(argv=tuple(command), env=env,
                       cwd=args.workdir or container.config.get("Cwd") or "/",
                       user=args.user or container.config.get("User") or "0", tty=args.tty,
                       stdin=0 if args.interactive else None, stdout=1, stderr=2)
    return exec_in(container.init_pid, spec)


def commit(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.commit import commit_container
    from rootless.run import containers_of
    from rootless.store import Store

    store = Store.open(opts.root)
    container = containers_of(opts.root).get(args.container)
    image = commit_container(store, container, args.reference, args.change,
                             message=args.message, author=args.author)
    print(image.image_id)
    return 0
