"""Image verbs: images / image ls, image inspect, history, tag, rmi / image rm, image prune.

save, load, import and export live in ``image_archives`` and are registered
from here. Handlers import the store lazily to keep ``rootless run`` start-up light.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import sys
from typing import TYPE_CHECKING, Any

from rootless.errors import RootlessError, StoreConflict, UsageError

if TYPE_CHECKING:
    from rootless.cli import GlobalOptions
    from rootless.reference import ImageReference
    from rootless.store import GcReport, Store, StoredImage

Subparsers = argparse._SubParsersAction


def add_verb(parent: Any, name: str, help_text: str,
             aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser | None:
    """Add a sub-command unless another module already registered that name."""
    existing = getattr(parent, "_name_parser_map", {})
    if name in existing:
        return None
    aliases = tuple(a for a in aliases if a not in existing)
    parser: argparse.ArgumentParser = parent.add_parser(
        name, help=help_text, description=help_text, aliases=list(aliases))
    return parser


def register(verbs: Subparsers, groups: dict[str, Subparsers]) -> None:
    for parent, name, aliases in ((verbs, "images", ()), (groups["image"], "ls", ("list",))):
        p = add_verb(parent, name, "List images", aliases)
        if p is not None:
            p.add_argument("filter_ref", nargs="?", metavar="REPOSITORY[:TAG]")
            p.add_argument("-a", "--all", action="store_true",
                           help="show all images (default hides intermediate images)")
            p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
            p.add_argument("--digests", action="store_true", help="show digests")
            p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
            p.add_argument("-f", "--filter", action="append", default=[],
                           help="filter output (dangling=true|false, reference=PATTERN)")
            p.add_argument("--format", help="'json', 'table ...' or a Go template")
            p.set_defaults(handler=list_images)

    p = add_verb(groups["image"], "inspect", "Display detailed information on one or more images")
    if p is not None:
        p.add_argument("images", nargs="+", metavar="IMAGE")
        p.add_argument("-f", "--format", help="format the output using a Go template")
        p.set_defaults(handler=inspect_images)

    for parent in (verbs, groups["image"]):
        p = add_verb(parent, "history", "Show the history of an image")
        if p is not None:
            p.add_argument("image", metavar="IMAGE")
            p.add_argument("-H", "--human", type=_boolean, default=True, metavar="BOOL",
                           help="print sizes and dates in human readable format (default true)")
            p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
            p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
            p.add_argument("--format", help="'json', 'table ...' or a Go template")
            p.set_defaults(handler=history)

    for parent in (verbs, groups["image"]):
        p = add_verb(parent, "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
        if p is not None:
            p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
            p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
            p.set_defaults(handler=tag)

    for parent, name, aliases in ((verbs, "rmi", ()), (groups["image"], "rm", ("remove",))):
        p = add_verb(parent, name, "Remove one or more images", aliases)
        if p is not None:
            p.add_argument("images", nargs="+", metavar="IMAGE")
            p.add_argument("-f", "--force", action="store_true",
                           help="force removal: untag an image with several tags or one a "
                                "container uses")
            p.add_argument("--no-prune", action="store_true",
                           help="do not delete unreferenced blobs and layers")
            p.set_defaults(handler=remove_images)

    p = add_verb(groups["image"], "prune", "Remove unused images")
    if p is not None:
        p.add_argument("-a", "--all", action="store_true",
                       help="remove all images no container uses, not just dangling ones")
        p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
        p.set_defaults(handler=prune_images)

    from rootless.cli import image_archives
    image_archives.register(verbs, groups)


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def open_store(opts: GlobalOptions) -> Store:
    from rootless.store import Store
    return Store.open(opts.root)


def confirm(question: str) -> bool:
    """Docker's ``[y/N]`` prompt; a closed or non-interactive stdin means no."""
    sys.stdout.write(f"{question} [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


# -- images ----------------------------------------------------------------------


def _image_rows(images: list[StoredImage]) -> list[tuple[StoredImage, str, str]]:
    """(image, repository, tag) per tag, ``<none>`` for dangling images; newest first."""
    from datetime import UTC, datetime

    epoch = datetime.min.replace(tzinfo=UTC)
    rows: list[tuple[StoredImage, str, str]] = []
    for image in sorted(images, key=lambda i: i.created or epoch, reverse=True):
        if not image.tags:
            rows.append((image, "<none>", "<none>"))
        for ref in image.tags:
            rows.append((image, ref.familiar_name, ref.tag or "<none>"))
    return rows


def _matches(row: tuple[StoredImage, str, str], pattern: str) -> bool:
    """Docker's reference filter: shell globs over the name (short or full) and tag."""
    _image, repo, tag = row
    if repo == "<none>":
        return False
    name, want_tag = pattern, ""
    if ":" in pattern.rsplit("/", 1)[-1]:  # a colon after the last slash starts the tag
        name, want_tag = pattern.rsplit(":", 1)
    from rootless.reference import ImageReference

    names = {repo}
    with contextlib.suppress(RootlessError):
        names.add(ImageReference.parse(repo).name)
    return any(fnmatch.fnmatchcase(n, name) for n in names) and \
        (not want_tag or fnmatch.fnmatchcase(tag, want_tag))


def list_images(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.cli.output import (
        docker_time,
        human_size,
        print_formatted,
        print_table,
        time_ago,
    )

    store = open_store(opts)
    rows = _image_rows(store.images())
    for name, problem in store.damaged():
        print(f"rootless: image {name} is damaged ({problem}); remove it with "
              f"'rootless rmi -f {name}'", file=sys.stderr)
    patterns = [args.filter_ref] if args.filter_ref else []
    for spec in args.filter:
        key, eq, value = spec.partition("=")
        if not eq:
            raise UsageError(f"bad format of filter (expected name=value): {spec}")
        if key == "reference":
            patterns.append(value)
        elif key == "dangling":
            want = value.lower() in ("true", "1")
            rows = [r for r in rows if r[0].dangling == want]
        else:
            raise UsageError(f"invalid filter {key!r}", hint="use dangling= or reference=")
    for pattern in patterns:
        rows = [r for r in rows if _matches(r, pattern)]

    def image_id(image: StoredImage) -> str:
        return str(image.image_id) if args.no_trunc else image.short_id

    if args.quiet:
        for shown in dict.fromkeys(image_id(r[0]) for r in rows):
            print(shown)
        return 0

    sizes = {image.manifest_digest: store.image_size(image) for image, _r, _t in rows}
    if args.format:
        items = [{
            "Containers": "N/A",
            "CreatedAt": docker_time(image.created),
            "CreatedSince": time_ago(image.created),
            "Digest": str(image.manifest_digest),
            "ID": image_id(image),
            "Repository": repo,
            "SharedSize": "N/A",
            "Size": human_size(sizes[image.manifest_digest]),
            "Tag": tag_name,
            "UniqueSize": "N/A",
            "VirtualSize": human_size(sizes[image.manifest_digest]),
        } for image, repo, tag_name in rows]
        print_formatted(args.format, items, headers={
            "ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT"})
        return 0
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else []) + \
        ["IMAGE ID", "CREATED", "SIZE"]
    table = [[repo, tag_name] + ([str(image.manifest_digest)] if args.digests else []) +
             [image_id(image), time_ago(image.created),
              human_size(sizes[image.manifest_digest])]
             for image, repo, tag_name in rows]
    print_table(headers, table)
    return 0


# -- inspect ---------------------------------------------------------------------

_DOCKER_CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}


def inspect_json(store: Store, image: StoredImage) -> dict[str, Any]:
    """The image in ``docker image inspect``'s JSON shape."""
    config = image.config
    container_config = {**_DOCKER_CONFIG_DEFAULTS, **(config.get("config") or {})}
    out: dict[str, Any] = {
        "Id": str(image.image_id),
        "RepoTags": [t.familiar for t in image.tags],
        "RepoDigests": list(image.repo_digests),
        "Parent": "",
        "Comment": config.get("comment", ""),
        "Created": config.get("created", ""),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": container_config,
        "Architecture": config.get("architecture", ""),
    }
    if config.get("variant"):
        out["Variant"] = config["variant"]
    out.update({
        "Os": config.get("os", ""),
        "Size": store.image_size(image),
        "GraphDriver": {"Data": {"LowerDirs": ":".join(
            str(store.layer_dir(d)) for d in reversed(image.diff_ids))}, "Name": "rootless"},
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in image.diff_ids]},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        "Descriptor": {"mediaType": image.media_type, "digest": str(image.manifest_digest),
                       "size": len(image.manifest_bytes)},
    })
    return out


def inspect_images(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.cli.output import render_template

    store = open_store(opts)
    found: list[dict[str, Any]] = []
    errors: list[str] = []
    for name in args.images:
        try:
            found.append(inspect_json(store, store.resolve(name)))
        except RootlessError as err:
            errors.append(str(err))
    if args.format:
        for doc in found:
            try:
                print(render_template(args.format, doc))
            except ValueError as exc:
                raise UsageError(f"invalid --format: {exc}") from None
    else:
        print(json.dumps(found, indent=4))
    for message in errors:
        print(f"rootless: {message}", file=sys.stderr)
    return 1 if errors else 0


# -- history ---------------------------------------------------------------------


def history_rows(store: Store, image: StoredImage) -> list[dict[str, Any]]:
    """One row per history entry, newest first, with its layer's unpacked size (0 if none)."""
    from rootless.oci.model import parse_time

    sizes = [store.layer_size(layer) for layer in image.layers]
    entries = list(image.image_config.history)
    rows: list[dict[str, Any]] = []
    if not entries:
        rows = [{"created": None, "created_by": "", "size": size, "comment": ""}
                for size in sizes]
    layer_index = 0
    for entry in entries:
        size = 0
        if not entry.empty_layer and layer_index < len(sizes):
            size = sizes[layer_index]
            layer_index += 1
        rows.append({"created": parse_time(entry.created), "created_by": entry.created_by,
                     "size": size, "comment": entry.comment})
    rows.reverse()
    for i, row in enumerate(rows):
        row["id"] = str(image.image_id) if i == 0 else "<missing>"
    return rows


def history(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.cli.output import ellipsis, human_size, print_formatted, print_table, time_ago
    from rootless.oci.model import format_time

    store = open_store(opts)
    image = store.resolve(args.image)
    rows = history_rows(store, image)

    def shown_id(row: dict[str, Any]) -> str:
        if row["id"] == "<missing>" or args.no_trunc:
            return str(row["id"])
        return image.short_id

    if args.quiet:
        for row in rows:
            print(shown_id(row))
        return 0
    items = []
    for row in rows:
        created = row["created"]
        created_text = (time_ago(created) if args.human
                        else (format_time(created) if created else ""))
        created_by = row["created_by"].replace("\t", " ").replace("\n", " ")
        items.append({
            "ID": shown_id(row),
            "CreatedSince": created_text,
            "CreatedAt": format_time(created) if created else "",
            "CreatedBy": created_by if args.no_trunc else ellipsis(created_by, 45),
            "Size": human_size(row["size"]) if args.human else str(row["size"]),
            "Comment": row["comment"],
        })
    if args.format:
        print_formatted(args.format, items, headers={
            "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT"})
        return 0
    print_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
                [[i["ID"], i["CreatedSince"], i["CreatedBy"], i["Size"], i["Comment"]]
                 for i in items])
    return 0


# -- tag, rmi, prune -------------------------------------------------------------


def tag(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.reference import ImageReference

    target = ImageReference.parse(args.target)
    store = open_store(opts)
    with store.lock():
        store.tag(store.resolve(args.source), target)
    return 0


def _named_by_tag(image: StoredImage, name: str) -> ImageReference | None:
    """The tag ``name`` denotes on ``image``, or None when it named the image by ID/digest."""
    from rootless.reference import ImageReference

    try:
        ref = ImageReference.parse(name)
    except RootlessError:
        return None
    return ref if ref in image.tags else None


def remove_image(store: Store, name: str, force: bool) -> list[str]:
    """Docker's rmi for one name; returns the ``Untagged:``/``Deleted:`` lines."""
    from rootless.errors import BlobNotFound, DigestMismatch

    lines: list[str] = []
    with store.lock():
        try:
            image = store.resolve(name)
        except (BlobNotFound, DigestMismatch):
            if not force:
                raise
            removed = store.forget(name)  # damaged: drop its entries unread
            return [f"Deleted: {d}" for d in dict.fromkeys(e.digest for e in removed)]
        users = store.containers_using(image.image_id)
        ref = _named_by_tag(image, name)
        if ref is not None and len(image.tags) > 1:
            store.untag(ref)
            return [f"Untagged: {ref.familiar}"]
        if ref is None and len(image.tags) > 1 and not force:
            raise StoreConflict(
                f"conflict: unable to delete {image.short_id} (must be forced) - "
                f"image is referenced in multiple repositories")
        if users:
            if not force:
                what = f'repository reference "{name}"' if ref is not None else image.short_id
                raise StoreConflict(
                    f"conflict: unable to remove {what} (must force) - container "
                    f"{users[0][:12]} is using its referenced image {image.short_id}",
                    hint="remove the container first, or use -f to untag the image")
            for t in image.tags:
                store.untag(t)
                lines.append(f"Untagged: {t.familiar}")
            return lines  # the container still needs the image: it stays, dangling
        for t in image.tags:
            lines.append(f"Untagged: {t.familiar}")
        store.remove_image(image)
        lines.append(f"Deleted: {image.image_id}")
    return lines


def remove_images(opts: GlobalOptions, args: argparse.Namespace) -> int:
    store = open_store(opts)
    failed = False
    for name in args.images:
        try:
            for line in remove_image(store, name, args.force):
                print(line)
        except RootlessError as err:
            failed = True
            print(f"rootless: {err}", file=sys.stderr)
            if err.hint:
                print(f"hint: {err.hint}", file=sys.stderr)
    if not args.no_prune:
        # Never wait here for a pull or build in progress: its leftovers
        # are collected by a later rmi or prune.
        store.gc(wait=False)
    return 1 if failed else 0


def prune_unused_images(store: Store, all_unused: bool) -> list[str]:
    """Remove dangling images (or, with ``all_unused``, every image no container uses)."""
    lines: list[str] = []
    with store.lock():
        for image in store.images():
            if (image.tags and not all_unused) or store.containers_using(image.image_id):
                continue
            for t in image.tags:
                lines.append(f"untagged: {t.familiar}")
            store.remove_image(image)
            lines.append(f"deleted: {image.image_id}")
    return lines


def collect_garbage(store: Store) -> GcReport:
    """gc(), saying so when it has to wait for a pull or build to finish storing."""
    report = store.gc(wait=False)
    if report.skipped:
        print("waiting for another rootless process to finish storing images...",
              file=sys.stderr, flush=True)
        report = store.gc()
    for path in report.undeletable:
        print(f"rootless: cannot remove {path} (files of another user); remove it with "
              f"'podman unshare rm -rf {path}' or as its owner", file=sys.stderr)
    return report


def prune_images(opts: GlobalOptions, args: argparse.Namespace) -> int:
    what = "all images without at least one container associated to them" if args.all \
        else "all dangling images"
    if not args.force and not confirm(f"WARNING! This will remove {what}.\n"
                                      f"Are you sure you want to continue?"):
        return 0
    store = open_store(opts)
    lines = prune_unused_images(store, args.all)
    report = collect_garbage(store)
    print_prune_report({"Deleted Images": lines}, report.reclaimed)
    return 0


def print_prune_report(sections: dict[str, list[str]], reclaimed: int) -> None:
    """Docker's prune output: each non-empty section, then the space reclaimed."""
    from rootless.cli.output import human_size

    for title, lines in sections.items():
        if lines:
            print(f"{title}:\n" + "\n".join(lines) + "\n")
    print(f"Total reclaimed space: {human_size(reclaimed)}")
