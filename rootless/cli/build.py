"""``rootless build`` and ``rootless builder prune``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rootless.errors import UsageError

if TYPE_CHECKING:
    from rootless.cli import GlobalOptions


def register(verbs: Any, groups: dict[str, Any]) -> None:
    p = verbs.add_parser("build", help="Build an image from a Dockerfile",
                         description="Build an image from a Dockerfile and a context "
                                     "(a directory, a tarball, or '-' for a tar on stdin).")
    p.add_argument("context", metavar="CONTEXT", help="directory, tarball or '-'")
    p.add_argument("-f", "--file", metavar="FILE",
                   help="the Dockerfile (default CONTEXT/Dockerfile; '-' reads stdin)")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="TAG",
                   help="name:tag for the image (repeatable)")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V",
                   help="set a build-time variable (repeatable)")
    p.add_argument("--target", metavar="STAGE", help="build this stage and stop")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    p.add_argument("--pull", action="store_true", help="always pull base images")
    p.add_argument("--label", action="append", default=[], metavar="K=V",
                   help="set a label on the image (repeatable)")
    p.add_argument("--iidfile", metavar="FILE", help="write the image ID to FILE")
    p.add_argument("--progress", choices=("auto", "plain", "tty", "quiet"), default="auto",
                   help="progress output (default auto)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the image ID")
    p.add_argument("--platform", metavar="PLATFORM", help="e.g. linux/amd64")
    p.add_argument("--secret", action="append", default=[], metavar="id=ID,src=PATH",
                   help="a secret RUN --mount=type=secret can read (repeatable)")
    p.set_defaults(handler=run_build)

    prune = groups["builder"].add_parser("prune", help="Remove build cache",
                                         description="Remove build cache")
    prune.add_argument("-a", "--all", action="store_true",
                       help="remove all build cache, not just what no image uses")
    prune.add_argument("-f", "--force", action="store_true", help="do not prompt")
    prune.set_defaults(handler=run_prune)


def _pairs(items: list[str], what: str, *, value_from_env: bool = False) -> dict[str, str]:
    import os

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid {what} {item!r}: expected KEY=VALUE")
        if not sep and value_from_env:
            if key not in os.environ:
                continue  # docker: `--build-arg NAME` takes NAME from the environment
            value = os.environ[key]
        out[key] = value
    return out


def _secrets(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        fields = dict(part.partition("=")[::2] for part in item.split(","))
        secret_id = fields.get("id")
        src = fields.get("src") or fields.get("source")
        if not secret_id:
            raise UsageError(f"invalid --secret {item!r}: id= is required")
        if src is None:
            env_name = fields.get("env") or secret_id
            raise UsageError(f"invalid --secret {item!r}: src= is required",
                             hint=f"e.g. --secret id={secret_id},src=./{env_name.lower()}.txt")
        path = Path(src).expanduser()
        if not path.is_file():
            raise UsageError(f"secret {secret_id}: {src} is not a readable file")
        out[secret_id] = path.resolve()
    return out


def run_build(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.build.context import (
        BuildContext,
        looks_like_tar,
        open_directory,
        open_tar,
    )
    from rootless.build.executor import BuildRequest, build
    from rootless.build.progress import Progress
    from rootless.dockerfile import parse
    from rootless.reference import ImageReference
    from rootless.store import Store

    tags = tuple(ImageReference.parse(t) for t in args.tag)
    build_args = _pairs(args.build_arg, "--build-arg", value_from_env=True)
    labels = _pairs(args.label, "--label")
    secrets = _secrets(args.secret)
    if args.file == "-" and args.context == "-":
        raise UsageError("cannot read both the Dockerfile and the context from stdin")
    stdin_data = sys.stdin.buffer.read() if "-" in (args.file, args.context) else b""
    dockerfile_text: str | None = None
    shown_name = "Dockerfile"
    import tempfile

    empty_dir: tempfile.TemporaryDirectory[str] | None = None
    if args.file == "-":
        dockerfile_text = stdin_data.decode(errors="replace")
    context: BuildContext
    if args.context == "-":
        if looks_like_tar(stdin_data):
            import io

            context = open_tar(io.BytesIO(stdin_data), args.file)
        else:
            # `rootless build - < Dockerfile`: a Dockerfile and no context at all
            dockerfile_text = stdin_data.decode(errors="replace")
            empty_dir = tempfile.TemporaryDirectory(prefix="rootless-empty-context-")
            context = open_directory(Path(empty_dir.name), None)
    else:
        ctx_path = Path(args.context)
        if ctx_path.is_file():
            with ctx_path.open("rb") as f:
                context = open_tar(f, args.file)
        elif ctx_path.is_dir():
            df_path = Path(args.file) if args.file and args.file != "-" else None
            if df_path is not None and not df_path.is_absolute() and not df_path.exists():
                df_path = ctx_path / df_path  # docker also looks inside the context
            context = open_directory(ctx_path, df_path or ctx_path / "Dockerfile")
        else:
            raise UsageError(f"unable to prepare context: path {args.context!r} not found")
    try:
        if dockerfile_text is None:
            if args.file and args.context != "-" and not Path(args.context).is_file():
                df = Path(args.file)
                if not df.is_absolute() and not df.exists():
                    df = Path(args.context) / args.file
                shown_name = args.file
            else:
                df = context.root / (args.file or "Dockerfile")
                shown_name = args.file or "Dockerfile"
            try:
                dockerfile_text = df.read_text()
            except FileNotFoundError:
                raise UsageError(f"failed to read Dockerfile: {shown_name} not found",
                                 hint="name it with -f FILE") from None
            except OSError as exc:
                raise UsageError(f"failed to read Dockerfile {shown_name}: "
                                 f"{exc.strerror}") from None
        dockerfile = parse(dockerfile_text, shown_name)
        store = Store.open(opts.root)
        request = BuildRequest(
            dockerfile=dockerfile, dockerfile_name=shown_name, context=context, tags=tags,
            build_args=build_args, target=args.target, no_cache=args.no_cache,
            pull=args.pull, labels=labels, platform=args.platform, secrets=secrets,
            storage_driver=opts.storage_driver)
        progress = Progress("quiet" if args.quiet else args.progress)
        image = build(store, request, progress)
    finally:
        context.close()
        if empty_dir is not None:
            empty_dir.cleanup()
    if args.iidfile:
        Path(args.iidfile).write_text(str(image.image_id))
    if args.quiet:
        print(str(image.image_id))
    return 0


def run_prune(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.build.cache import BuildCache
    from rootless.store import Store

    if not args.force and sys.stdin.isatty():
        what = "all build cache" if args.all else "all dangling build cache"
        answer = input(f"WARNING! This will remove {what}.\nAre you sure you want to "
                       "continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    store = Store.open(opts.root)
    cache = BuildCache.of_store(store.root)
    keep = {str(d) for image in store.images() for d in image.diff_ids}
    report = cache.prune(keep_diff_ids=keep, everything=args.all)
    gc = store.gc()
    total = report.reclaimed + gc.reclaimed
    print(f"Deleted build cache objects: {report.entries + report.mounts}")
    print(f"Total reclaimed space: {_human(total)}")
    return 0


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.3g}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1000
    return f"{size}B"
