"""``system df`` and ``system prune``: what the store holds, and taking it back."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rootless.cli import GlobalOptions
    from rootless.store import Store, StoredImage


def register(verbs: Any, groups: dict[str, Any]) -> None:
    from rootless.cli.images import add_verb

    p = add_verb(groups["system"], "df", "Show disk usage")
    if p is not None:
        p.add_argument("-v", "--verbose", action="store_true", help="show detailed information")
        p.add_argument("--format", help="'json', 'table ...' or a Go template")
        p.set_defaults(handler=disk_usage)

    p = add_verb(groups["system"], "prune", "Remove unused data")
    if p is not None:
        p.add_argument("-a", "--all", action="store_true",
                       help="remove all unused images and all build cache, not just dangling "
                            "images")
        p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
        p.add_argument("--volumes", action="store_true", help="accepted for Docker "
                                                               "compatibility (no volumes yet)")
        p.set_defaults(handler=prune_system)


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    id: str
    path: Path
    image: str
    running: bool


def container_records(store: Store) -> list[ContainerRecord]:
    """The store's containers; running means its waiting process is alive
    (the container area's own test, so a SIGKILLed ``run`` counts as stopped)."""
    from rootless.containers import Containers

    return [ContainerRecord(c.id, c.path, str(c.doc.get("Image") or ""), c.running)
            for c in sorted(Containers(store.containers_dir).all(), key=lambda c: c.id)]


@dataclass(frozen=True, slots=True)
class UsageRow:
    type: str
    total: int
    active: int
    size: int
    reclaimable: int
    percent: bool = True

    def to_json(self) -> dict[str, Any]:
        from rootless.cli.output import human_size
        return {"Active": str(self.active), "Reclaimable": self.reclaimable_text(),
                "Size": human_size(self.size), "TotalCount": str(self.total), "Type": self.type}

    def reclaimable_text(self) -> str:
        from rootless.cli.output import human_size
        text = human_size(self.reclaimable)
        if self.percent and self.size:
            text += f" ({round(100 * self.reclaimable / self.size)}%)"
        return text


def _image_usage(store: Store, images: list[StoredImage],
                 active_ids: set[str]) -> tuple[UsageRow, dict[str, dict[str, int]]]:
    """Image sizes counting each blob and unpacked layer once, as they are on disk."""
    from rootless.fsutil import tree_size

    blob_size: dict[str, int] = {}
    users: dict[str, set[str]] = {}
    for image in images:
        for digest in image.blob_digests:
            users.setdefault(digest, set()).add(image.image_id)
            if digest not in blob_size:
                path = store.blob_path(digest)
                blob_size[digest] = path.stat().st_size if path.exists() else 0
        for diff_id in image.diff_ids:
            key = f"layer:{diff_id}"
            users.setdefault(key, set()).add(image.image_id)
            if key not in blob_size:
                blob_size[key] = tree_size(store.layer_dir(diff_id))
    total = sum(blob_size.values())
    reclaimable = sum(size for key, size in blob_size.items()
                      if not users[key] & active_ids)
    per_image: dict[str, dict[str, int]] = {}
    for image in images:
        keys = [*image.blob_digests, *(f"layer:{d}" for d in image.diff_ids)]
        keys = list(dict.fromkeys(keys))
        shared = sum(blob_size[k] for k in keys if len(users[k]) > 1)
        unique = sum(blob_size[k] for k in keys if len(users[k]) == 1)
        per_image[image.image_id] = {"shared": shared, "unique": unique}
    image_ids = {i.image_id for i in images}
    row = UsageRow("Images", len(image_ids), len(image_ids & active_ids), total, reclaimable)
    return row, per_image


def usage(store: Store) -> tuple[list[UsageRow], dict[str, dict[str, int]]]:
    from rootless.fsutil import tree_size

    images = store.images()
    records = container_records(store)
    active_ids = {r.image for r in records}
    image_row, per_image = _image_usage(store, images, active_ids)
    sizes = {r.id: tree_size(r.path) for r in records}
    containers = UsageRow("Containers", len(records), sum(r.running for r in records),
                          sum(sizes.values()),
                          sum(sizes[r.id] for r in records if not r.running))
    volumes_dir = store.root / "volumes"
    volumes = sorted(volumes_dir.iterdir()) if volumes_dir.is_dir() else []
    volume_size = sum(tree_size(v) for v in volumes)
    volumes_row = UsageRow("Local Volumes", len(volumes), 0, volume_size, volume_size)
    cache_count, cache_size = _build_cache_usage(store)
    cache = UsageRow("Build Cache", cache_count, 0, cache_size, cache_size, percent=False)
    return [image_row, containers, volumes_row, cache], per_image


def disk_usage(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.cli.images import _image_rows, open_store
    from rootless.cli.output import human_size, print_formatted, print_table, time_ago

    store = open_store(opts)
    rows, per_image = usage(store)
    if args.format:
        print_formatted(args.format, [r.to_json() for r in rows],
                        headers={"TotalCount": "TOTAL"})
        return 0
    print_table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
                [[r.type, str(r.total), str(r.active), human_size(r.size),
                  r.reclaimable_text()] for r in rows])
    if args.verbose:
        records = container_records(store)
        print("\nImages space usage:\n")
        print_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE",
                     "UNIQUE SIZE", "CONTAINERS"],
                    [[repo, tag, image.short_id, time_ago(image.created),
                      human_size(store.image_size(image)),
                      human_size(per_image[image.image_id]["shared"]),
                      human_size(per_image[image.image_id]["unique"]),
                      str(sum(r.image == image.image_id for r in records))]
                     for image, repo, tag in _image_rows(store.images())])
    return 0


def prune_system(opts: GlobalOptions, args: argparse.Namespace) -> int:
    from rootless.cli.images import (
        collect_garbage,
        confirm,
        open_store,
        print_prune_report,
        prune_unused_images,
    )
    from rootless.containers import Containers
    from rootless.fsutil import tree_size

    images = "all images without at least one container associated to them" if args.all \
        else "all dangling images"
    cache = "all build cache" if args.all else "unused build cache"
    if not args.force and not confirm(
            "WARNING! This will remove:\n  - all stopped containers\n"
            f"  - {images}\n  - {cache}\n\nAre you sure you want to continue?"):
        return 0
    store = open_store(opts)
    reclaimed = 0
    removed_containers = []
    with store.lock():
        containers = Containers(store.containers_dir)
        for container in containers.all():
            if container.running:
                continue
            size = tree_size(container.path)
            containers.remove(container)  # files of sub-IDs go in the user namespace
            reclaimed += size
            removed_containers.append(container.id)
        lines = prune_unused_images(store, args.all)
    if store.buildcache_dir.exists():
        keep = {str(d) for image in store.images() for d in image.diff_ids}
        reclaimed += _prune_build_cache(store, keep, everything=args.all)
    report = collect_garbage(store)
    reclaimed += report.reclaimed
    print_prune_report({"Deleted Containers": removed_containers, "Deleted Images": lines},
                       reclaimed)
    return 0


def _build_cache_usage(store: Store) -> tuple[int, int]:
    """(entries, bytes) of the build cache: the build area's own count when it is there."""
    from rootless.fsutil import tree_size

    try:
        from rootless.build.cache import BuildCache
    except ImportError:
        return len(list(store.buildcache_dir.glob("entries/*.json"))), \
            tree_size(store.buildcache_dir)
    return BuildCache.of_store(store.root).usage()


def _prune_build_cache(store: Store, keep_diff_ids: set[str], everything: bool) -> int:
    """Drop build cache entries (all with ``everything``); their blobs go in the next gc."""
    from rootless.fsutil import force_rmtree, tree_size

    try:
        from rootless.build.cache import BuildCache
    except ImportError:
        if not everything:
            return 0
        size = 0
        for entry in sorted(store.buildcache_dir.iterdir()):
            size += tree_size(entry)
            force_rmtree(entry)
        return size
    with store.lock():
        report = BuildCache.of_store(store.root).prune(keep_diff_ids=keep_diff_ids,
                                                       everything=everything)
    return report.reclaimed
