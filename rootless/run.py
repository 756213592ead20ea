"""``rootless run``: image config + command line → a container, with Docker's semantics.

The pure part (``command_line``, ``merge_env``, ``parse_volume``,
``process_spec``) follows Docker's documented rules; ``start_container`` and
``run_container`` put an image's layers under a fresh copy-on-write upper and
hand the result to the sandbox.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rootless.containers import Container, Containers
from rootless.errors import ContainerError, UsageError
from rootless.sandbox.spec import MountSpec, ProcessSpec, Rootfs, RootfsSetup

if TYPE_CHECKING:
    from rootless.store import StoredImage


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What ``rootless run`` was asked, before the image is consulted."""

    image: str
    command: tuple[str, ...] = ()
    entrypoint: str | None = None     # --entrypoint ("" clears the image's)
    env: tuple[str, ...] = ()         # -e VAR=value / -e VAR
    env_files: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None
    volumes: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()
    read_only: bool = False
    hostname: str | None = None
    network: Literal["host", "none"] = "host"
    tty: bool = False
    interactive: bool = False
    name: str | None = None
    remove: bool = False
    detach: bool = False
    host_env: Mapping[str, str] = field(default_factory=dict)


def command_line(config: Mapping[str, Any], entrypoint: str | None,
                 command: Sequence[str]) -> list[str]:
    """ENTRYPOINT + CMD as Docker combines them.

    The image's ENTRYPOINT prefixes the arguments; arguments given on the
    command line replace the image's CMD; ``--entrypoint`` replaces the
    ENTRYPOINT and also discards the image's CMD (``--entrypoint ""`` resets it
    to nothing). Shell-form instructions are already ``["/bin/sh", "-c", ...]``
    in the config.
    """
    image_entrypoint = list(config.get("Entrypoint") or [])
    image_cmd = list(config.get("Cmd") or [])
    if entrypoint is not None:
        prefix = [entrypoint] if entrypoint else []
        return prefix + list(command)
    return image_entrypoint + (list(command) if command else image_cmd)


def read_env_file(path: str) -> list[str]:
    """Docker's --env-file: VAR=value or VAR per line; # comments and blank lines skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}")
    out = []
    for line in lines:
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        name, eq, _ = stripped.partition("=")
        if not name.strip():
            raise UsageError(f"invalid environment variable in {path}: {line!r}")
        out.append(stripped if eq else name.rstrip())
    return out


def merge_env(image_env: Sequence[str], env_files: Sequence[str], cli_env: Sequence[str],
              host_env: Mapping[str, str]) -> dict[str, str]:
    """The container's environment: image Env, then --env-file, then -e (later wins).

    ``VAR`` without ``=`` takes the host's value, and is left out when the host
    has none.
    """
    env: dict[str, str] = {}
    for item in image_env:
        name, _, value = item.partition("=")
        env[name] = value
    for item in [*[e for f in env_files for e in read_env_file(f)], *cli_env]:
        name, eq, value = item.partition("=")
        if not name:
            raise UsageError(f"invalid environment variable: {item!r}")
        if eq:
            env[name] = value
        elif name in host_env:
            env[name] = host_env[name]
        else:
            env.pop(name, None)
    return env


def parse_volume(spec: str) -> MountSpec:
    """``-v /host:/ctr[:ro|rw]`` as a bind mount (named volumes are not supported)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise UsageError(f"invalid volume specification: {spec!r}",
                         hint="use -v /host/path:/container/path[:ro]")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    if not source.startswith(("/", ".")):
        raise UsageError(f"named volumes are not supported: {spec!r}",
                         hint="bind-mount a host directory: -v /host/path:/container/path")
    if not target.startswith("/"):
        raise UsageError(f"invalid volume specification: {spec!r}: "
                         "the container path must be absolute")
    unknown = [o for o in options if o not in ("ro", "rw", "z", "Z")]
    if unknown:
        raise UsageError(f"invalid mode {unknown[0]!r} in volume specification {spec!r}")
    source = os.path.abspath(source)
    if not os.path.exists(source):
        try:
            os.makedirs(source)  # as Docker does for a missing bind source
        except OSError as exc:
            raise ContainerError(f"invalid volume specification {spec!r}: cannot create "
                                 f"the missing host directory {source}: {exc.strerror}") from None
    return MountSpec(source, target, readonly="ro" in options)


def process_spec(config: Mapping[str, Any], req: RunRequest, hostname: str | None) -> ProcessSpec:
    """The sandbox's ProcessSpec for REQ on an image whose config is CONFIG ("config" key)."""
    argv = command_line(config, req.entrypoint, req.command)
    if not argv:
        raise ContainerError("no command specified",
                             hint="give a command after the image name, or --entrypoint")
    env = merge_env(list(config.get("Env") or []), req.env_files, req.env, req.host_env)
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if hostname:
        env.setdefault("HOSTNAME", hostname)
    if req.tty:
        env.setdefault("TERM", "xterm")
    workdir = req.workdir or config.get("WorkingDir") or "/"
    if not workdir.startswith("/"):
        raise UsageError(f"the working directory {workdir!r} is invalid, it needs to be an "
                         "absolute path")
    mounts = [parse_volume(v) for v in req.volumes]
    for item in req.tmpfs:
        target, _, options = item.partition(":")
        mounts.append(MountSpec("", target, kind="tmpfs", options=options))
    return ProcessSpec(
        argv=tuple(argv), env=env, cwd=workdir, user=req.user or config.get("User") or "0",
        tty=req.tty, network=req.network, hostname=hostname, mounts=tuple(mounts),
        readonly_rootfs=req.read_only,
    )


def spec_to_json(spec: ProcessSpec) -> dict[str, Any]:
    """What a container record keeps to start the container again (``start``)."""
    return {"Argv": list(spec.argv), "Env": dict(spec.env), "Cwd": spec.cwd, "User": spec.user,
            "Tty": spec.tty, "Network": spec.network, "Hostname": spec.hostname,
            "ReadOnly": spec.readonly_rootfs,
            "Mounts": [{"Source": m.source, "Target": m.target, "ReadOnly": m.readonly,
                        "Kind": m.kind, "Options": m.options} for m in spec.mounts]}


def spec_from_json(doc: Mapping[str, Any]) -> ProcessSpec:
    return ProcessSpec(
        argv=tuple(doc.get("Argv") or ()), env=dict(doc.get("Env") or {}),
        cwd=doc.get("Cwd") or "/", user=doc.get("User") or "0", tty=bool(doc.get("Tty")),
        network="none" if doc.get("Network") == "none" else "host",
        hostname=doc.get("Hostname"), readonly_rootfs=bool(doc.get("ReadOnly")),
        mounts=tuple(MountSpec(m["Source"], m["Target"], bool(m.get("ReadOnly")),
                               "tmpfs" if m.get("Kind") == "tmpfs" else "bind",
                               m.get("Options") or "") for m in doc.get("Mounts") or ()))


@dataclass(frozen=True, slots=True)
class _LayerRef:
    digest: str
    diff_id: str


def _presents_owners_needed(lowers: list[Path]) -> bool:
    """Inside the sandbox: whether ``auto`` must use the fuse driver so that files show
    the owners the image records. Only the full ID mapping can show them at all (with
    one mapped ID every owner reads as root), and only fuse presents recorded owners.
    """
    with open("/proc/self/uid_map") as uid_map:
        full = sum(int(line.split()[2]) for line in uid_map if line.strip()) > 1
    if not full:
        return False
    from rootless.cowfs.layers import has_foreign_owners

    return has_foreign_owners(lowers)


def rootfs_setup(root: Path, container: Container, driver: str,
                 remove_after: bool, image: StoredImage | None = None) -> RootfsSetup:
    """The sandbox's RootfsSetup: the image's layers + the container's upper, mounted.

    Runs inside the sandbox's namespaces; with REMOVE_AFTER (``--rm``) the
    container directory is deleted there too, as mapped root, so files the
    container chowned to sub-IDs go with it. IMAGE is the container's image when
    the caller has it at hand (``run`` just resolved it), else it is looked up.
    """
    from rootless.store import Store

    store = Store(root)
    if image is None or str(image.image_id) != container.doc["Image"]:
        image = store.resolve(str(container.doc["Image"]))
    lowers = [store.layer_dir(str(i)) for i in image.diff_ids]
    if not all(path.is_dir() for path in lowers):  # the common case needs no import
        from rootless.cowfs.layers import ensure_unpacked

        lowers = ensure_unpacked(store, [_LayerRef(str(d.digest), str(i)) for d, i
                                         in zip(image.layers, image.diff_ids, strict=True)])

    def setup() -> Rootfs:
        chosen = driver
        if driver == "auto" and _presents_owners_needed(lowers):
            chosen = "fuse"  # overlayfs would show every file as root's
        if remove_after and chosen in ("auto", "overlay"):
            transient = _mount_volatile_overlay(lowers, container)
            if transient is not None:
                return transient
        from rootless.cowfs.driver import mount_rootfs

        mount = partial(mount_rootfs, lowers, container.upper, container.work, container.rootfs)
        if chosen == "fuse" and driver == "auto":
            try:
                handle = mount("fuse")
            except Exception:  # no /dev/fuse here: owners are lost, the container runs
                handle = mount("auto")
        elif chosen == "auto":
            # Trying overlayfs here, where it is needed, is cheaper than auto's probe
            # (a namespace and a test mount of its own); on failure the probe decides.
            try:
                handle = mount("overlay")
            except Exception:
                handle = mount("auto")
        else:
            handle = mount(chosen)

        def release() -> None:
            handle.unmount()
            if remove_after:
                _remove_layer(container)

        return Rootfs(str(container.rootfs), release)

    return setup


def _remove_layer(container: Container) -> None:
    """Delete a --rm container's writable layer, from inside its user namespace.

    Only the layer (which may hold files of sub-IDs): the record is
    ``rootless run``'s to delete, after the namespace is gone. The kernel may
    still be tearing the overlay down (work/ changing under us): what stays
    behind, ``rootless run`` removes too.
    """
    import contextlib

    from rootless.fsutil import force_rmtree

    for path in (container.upper, container.work):
        with contextlib.suppress(OSError):
            force_rmtree(path)


def _mount_volatile_overlay(lowers: list[Path], container: Container) -> Rootfs | None:
    """An overlayfs mount for a ``--rm`` container, with ``volatile`` (as podman does).

    Unmounting an overlayfs syncs its upper file system (the whole disk the
    store is on); a container whose layer is deleted on exit needs none of
    that. None when the mount does not work here (the caller falls back).
    """
    from rootless.cowfs.overlay import overlay_options
    from rootless.sandbox import libc

    if not lowers:
        return None
    options = overlay_options(lowers, container.upper, container.work) + ",volatile"
    if len(options) > 4000:
        return None
    target = str(container.rootfs)
    try:
        libc.mount("overlay", target, "overlay", libc.MS_NODEV, options)
    except OSError:
        return None

    def release() -> None:
        libc.umount2(target, libc.MNT_DETACH)
        _remove_layer(container)

    return Rootfs(target, release)


def containers_of(root: Path) -> Containers:
    return Containers(root / "containers")
