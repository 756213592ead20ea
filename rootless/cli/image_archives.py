"""Verbs moving images in and out of the store as files: save, load, import, export."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rootless.errors import RootlessError, UsageError

if TYPE_CHECKING:
    from rootless.archive import SaveItem
    from rootless.cli import GlobalOptions
    from rootless.store import Store


def register(verbs: Any, groups: dict[str, Any]) -> None:
    from rootless.cli.images import add_verb

    for parent in (verbs, groups["image"]):
        p = add_verb(parent, "save", "Save one or more images to a tar archive "
                                     "(streamed to STDOUT by default)")
        if p is not None:
            p.add_argument("images", nargs="+", metavar="IMAGE")
            p.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
            p.add_argument("--format", default="docker-archive",
                           choices=("docker-archive", "oci-archive"),
                           help="archive format (default docker-archive)")
            p.set_defaults(handler=save)

        p = add_verb(parent, "load", "Load an image from a tar archive or STDIN")
        if p is not None:
            p.add_argument("-i", "--input", help="read from tar archive file, instead of STDIN")
            p.add_argument("-q", "--quiet", action="store_true", help="suppress the load output")
            p.set_defaults(handler=load)

        p = add_verb(parent, "import", "Import the contents from a tarball to create a "
                                       "filesystem image")
        if p is not None:
            p.add_argument("source", metavar="file|-")
            p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
            p.add_argument("-c", "--change", action="append", default=[],
                           help="apply Dockerfile instruction to the created image")
            p.add_argument("-m", "--message", default="", help="set commit message for "
                                                              "imported image")
            p.add_argument("--platform", help="set platform (linux/ARCH[/VARIANT])")
            p.set_defaults(handler=import_tarball)

    for parent in (verbs, groups["container"]):
        p = add_verb(parent, "export", "Export a container's filesystem as a tar archive")
        if p is not None:
            p.add_argument("container", metavar="CONTAINER")
            p.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
            p.set_defaults(handler=export)


@contextlib.contextmanager
def output_stream(path: str | None, what: str) -> Iterator[IO[bytes]]:
    """STDOUT (never a terminal), or a file replaced atomically once complete."""
    if path is None or path == "-":
        if sys.stdout.isatty():
            raise UsageError(f"cowardly refusing to write {what} to a terminal",
                             hint="use the -o flag or redirect")
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    import tempfile

    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".",
                                   prefix=f".{target.name}.")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            raise RootlessError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


@contextlib.contextmanager
def input_stream(path: str | None, what: str) -> Iterator[tuple[IO[bytes], str]]:
    if path is None or path == "-":
        if sys.stdin.isatty():
            raise UsageError(f"requested {what} from STDIN, but STDIN is a terminal",
                             hint="use the -i flag or redirect")
        yield sys.stdin.buffer, "-"
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise UsageError(f"cannot open {path}: {exc.strerror}") from None
    with f:
        yield f, path


def _save_items(store: Store, names: list[str]) -> list[SaveItem]:
    from rootless.archive import SaveItem
    from rootless.reference import ImageReference

    items: list[SaveItem] = []
    for name in names:
        image = store.resolve(name)
        tags: tuple[ImageReference, ...] = ()
        with contextlib.suppress(RootlessError):
            ref = ImageReference.parse(name)
            if ref in image.tags:
                tags = (ref,)
        items.append(SaveItem(image, tags))
    return items


def save(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.archive import save_docker_archive, save_oci_archive
    from rootless.cli.images import open_store

    store = open_store(opts)
    items = _save_items(store, args.images)
    writer = save_oci_archive if args.format == "oci-archive" else save_docker_archive
    with output_stream(args.output, "an image archive") as out:
        writer(store, items, out)
    return 0


def load(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.archive import load_archive
    from rootless.cli.images import open_store

    store = open_store(opts)
    with input_stream(args.input, "load") as (stream, name):
        images = load_archive(store, stream, "the archive" if name == "-" else name)
    if not args.quiet:
        for image in images:
            if image.tags:
                for t in image.tags:
                    print(f"Loaded image: {t.familiar}")
            else:
                print(f"Loaded image ID: {image.image_id}")
    return 0


def import_tarball(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.cli.images import open_store
    from rootless.reference import ImageReference
    from rootless.rootfs_import import apply_changes, import_rootfs

    tags = [ImageReference.parse(args.reference)] if args.reference else []
    apply_changes({}, args.change)  # refuse bad --change lines before reading anything
    if args.source.startswith(("http://", "https://")):
        raise UsageError("importing from a URL is not supported",
                         hint="download the tarball first, then import the file")
    arch = None
    if args.platform:
        os_name, _, arch = args.platform.partition("/")
        if os_name != "linux" or not arch:
            raise UsageError(f"invalid --platform {args.platform!r}: expected linux/ARCH[/VARIANT]")
    store = open_store(opts)
    with input_stream(None if args.source == "-" else args.source, "import") as (stream, name):
        image = import_rootfs(store, stream, source=name, tags=tags, changes=args.change,
                              message=args.message, arch=arch)
    print(image.image_id)
    return 0


def export(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.cli.images import open_store
    from rootless.export import export_container, find_container

    store = open_store(opts)
    find_container(store, args.container)  # fail before touching the output
    with output_stream(args.output, "a container's filesystem") as out:
        export_container(store, args.container, out)
    return 0
