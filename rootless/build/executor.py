"""Runs a build: plan → for each step, cache lookup, else execute → image in the store.

Each filesystem step (RUN, COPY, ADD) mounts the copy-on-write root filesystem
over the parent's layers with a fresh upper directory, does its work (RUN in
the sandbox; COPY/ADD in a forked child inside a user + mount namespace),
then turns the upper directory into an OCI layer (``oci.layer.diff``) stored in
the store. Metadata instructions fold into the image config. Every step's
resulting image state is recorded in the build cache under its key.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rootless.build import config as cfgmod
from rootless.build.cache import BuildCache, ImageState
from rootless.build.context import BuildContext
from rootless.build.copy import CopyOptions, CopySource, add_url, copy_sources, resolve_in_root
from rootless.build.plan import BaseImage, BuildPlan, StagePlan, Step, make_plan
from rootless.build.progress import Progress, Vertex
from rootless.cowfs.layers import has_foreign_owners
from rootless.dockerfile import ir
from rootless.errors import (
    BuildStepError,
    ImageNotFound,
    Location,
    PlanError,
    RootlessError,
)
from rootless.oci.model import LayerInfo
from rootless.reference import ImageReference
from rootless.sandbox.userns import call_in_userns
from rootless.store import Store, StoredImage


@dataclass(frozen=True)
class BuildRequest:
    dockerfile: ir.Dockerfile
    dockerfile_name: str  # as shown in messages ("Dockerfile", "app/Dockerfile")
    context: BuildContext
    tags: tuple[ImageReference, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    secrets: Mapping[str, Path] = field(default_factory=dict)
    storage_driver: str = "auto"


class Builder:
    def __init__(self, store: Store, request: BuildRequest, progress: Progress) -> None:
        self.store = store
        self.req = request
        self.progress = progress
        self.cache = BuildCache.of_store(store.root)
        self.epoch = _source_date_epoch()
        self._driver: str | None = None
        self._mapping: Any = None
        self._stage_states: dict[int, ImageState] = {}
        self.stored: dict[str, StoredImage] = {}  # images named by FROM or COPY --from

    # -- set-up ---------------------------------------------------------------

    @property
    def mapping(self) -> Any:
        if self._mapping is None:
            from rootless.sandbox import IdMapping

            self._mapping = IdMapping.detect()
        return self._mapping

    @property
    def driver(self) -> str:
        if self._driver is None:
            from rootless.cowfs import select_driver

            self._driver = select_driver(self.req.storage_driver, self.store.root).name
        return self._driver

    def driver_for_user(self, user: str, lowers: Sequence[Path] = ()) -> str:
        """The driver for a RUN as ``user`` over LOWERS. Kernel overlayfs shows the
        unpacked layers' owners as they are on disk (all ours), not the owners the
        layers record, so a non-root USER could not write to its own files, and with
        the full ID mapping even root's RUN would see wrong owners: with ``auto`` such
        steps use the FUSE driver, which presents the recorded owners."""
        if self.req.storage_driver != "auto":
            return self.driver
        as_root = user.split(":")[0] in ("", "0", "root")
        if as_root and not (self.mapping.mode == "full" and has_foreign_owners(lowers)):
            return self.driver
        if self.driver == "overlay":
            from rootless.cowfs.driver import unavailable

            if unavailable("fuse", self.store.root) is None:
                return "fuse"
        return self.driver

    def now(self) -> str:
        if self.epoch is not None:
            stamp = datetime.fromtimestamp(self.epoch, UTC)
        else:
            stamp = datetime.now(UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")

    def _resolve_image(self, ref: str, loc: Location,
                       platform: str | None = None) -> StoredImage:
        vertex = self.progress.start(f"[internal] load metadata for {ref}")
        image: StoredImage | None = None
        if not self.req.pull:
            with contextlib.suppress(ImageNotFound):
                image = self.store.resolve(ref)
        if image is None:
            image = self._pull(ref, loc, platform or self.req.platform)
        self.progress.done(vertex)
        return image

    def _pull(self, ref: str, loc: Location, platform: str | None) -> StoredImage:
        try:
            from rootless.registry import pull_image
        except ImportError:
            raise PlanError(f"base image {ref!r} is not in the store", loc,
                            hint="import or pull it first") from None
        try:
            return pull_image(self.store, ref, platform)
        except RootlessError as exc:
            raise PlanError(f"base image {ref!r} is not in the store and pulling it failed: "
                            f"{exc.message}", loc, hint=exc.hint) from exc

    def plan(self) -> BuildPlan:
        from rootless.build import plan as planmod
        from rootless.dockerfile import parse

        df = self.req.dockerfile
        tgt = planmod.target_index(df, self.req.target)
        bases = planmod.stage_bases(df, self.req.build_args)
        meta = planmod.meta_arg_values(df, self.req.build_args)
        needed = planmod.needed_stages(df, tgt, bases, meta)
        images: dict[str, BaseImage] = {}
        stored: dict[str, StoredImage] = {}
        for index in needed:
            base = bases[index]
            refs = [base.ref] if base.kind == "image" else []
            for instr in df.stages[index].instructions:
                if isinstance(instr, ir.Copy) and instr.from_:
                    name = planmod._expand_word(instr.from_, meta, df.escape)
                    if planmod._find_stage(df, name, index) is None:
                        refs.append(name)
            for ref in refs:
                if ref not in images:
                    image = self._resolve_image(ref, df.stages[index].loc, base.platform)
                    stored[ref] = image
                    images[ref] = BaseImage(str(image.image_id), image.config)
        self.stored = stored

        def onbuild(trigger: str, loc: Location) -> list[ir.Instruction]:
            parsed = parse(f"FROM scratch\n{trigger}\n", f"ONBUILD trigger of {loc}")
            return list(parsed.stages[0].instructions)

        def digest(source: str, loc: Location) -> str:
            paths = self.req.context.expand(source, loc)
            return ",".join(self.req.context.checksum(p) for p in paths)

        return make_plan(df, build_args=self.req.build_args, target=self.req.target,
                         base_images=images, source_digest=digest, onbuild=onbuild)

    # -- the build --------------------------------------------------------------

    def run(self) -> StoredImage:
        plan = self.plan()
        for arg in plan.unused_args:
            print(f"[Warning] One or more build-args [{arg}] were not consumed",
                  file=sys.stderr)
        with self.store.lease():
            for stage in plan.stages:
                self._stage_states[stage.index] = self._build_stage(stage, plan)
            final = self._stage_states[plan.target]
            config = cfgmod.finalize(final.config, self.req.labels)
            vertex = self.progress.start("exporting to image")
            image = self.store.commit_image(config, list(final.layers), list(self.req.tags))
            self.progress.note(vertex, f"writing image {image.image_id} done")
            for tag in self.req.tags:
                self.progress.note(vertex, f"naming to {tag} done")
            self.progress.done(vertex)
        return image

    def _initial_state(self, stage: StagePlan) -> ImageState:
        if stage.base.kind == "scratch":
            return ImageState(cfgmod.scratch_config(self.req.platform), ())
        if stage.base.kind == "stage":
            parent = self._stage_states[stage.base.stage_index]
            return ImageState(cfgmod.child_config(parent.config), parent.layers)
        image = self.stored[stage.base.ref]
        layers = tuple(LayerInfo(d.digest, diff, d.size, d.media_type)
                       for d, diff in zip(image.layers, image.diff_ids, strict=True))
        return ImageState(cfgmod.child_config(image.config), layers)

    def _build_stage(self, stage: StagePlan, plan: BuildPlan) -> ImageState:
        label = f"{stage.label} " if len(plan.stages) > 1 else ""
        base_name = stage.base.ref if stage.base.kind != "stage" \
            else plan.stage(stage.base.stage_index).label
        vertex = self.progress.start(f"[{label}1/{stage.total}] FROM {base_name}")
        state = self._initial_state(stage)
        self.progress.done(vertex)
        checked_arch = False
        for step in stage.steps:
            title = f"[{label}{step.number}/{stage.total}] {_shown(step.written)}"
            cached = None if self.req.no_cache else self.cache.get(step.cache_key,
                                                                    self.store.has_blob)
            if cached is not None:
                if step.number:
                    self.progress.cached(self.progress.start(title))
                state = cached
                continue
            if not step.number:
                state = cfgmod.apply_metadata(state, step, self.now())
                self.cache.put(step.cache_key, state)
                continue
            vertex = self.progress.start(title)
            try:
                if isinstance(step.instruction, ir.Run) and not checked_arch:
                    self._check_architecture(state, step)
                    checked_arch = True
                state = self._execute(state, step, vertex)
            except BuildStepError as exc:
                self.progress.error(vertex, exc.message)
                raise
            except RootlessError as exc:
                self.progress.error(vertex, exc.message)
                raise BuildStepError(f"{_shown(step.written)}: {exc.message}", step.loc,
                                     hint=exc.hint) from exc
            self.cache.put(step.cache_key, state)
            self.progress.done(vertex)
        return state

    def _check_architecture(self, state: ImageState, step: Step) -> None:
        from rootless.elf import diagnose_exec_failure, host_platform

        arch = state.config.get("architecture")
        host = host_platform().split("/", 1)[1]
        if arch and arch != host and state.layers and not _binfmt_registered(arch):
            raise BuildStepError(
                f"the base image is linux/{arch} and this host runs linux/{host}: RUN cannot "
                "execute its programs", step.loc,
                hint="register qemu-user-static through binfmt_misc (apt-get install "
                     "qemu-user-static binfmt-support), or build FROM an image for "
                     f"linux/{host} (--platform linux/{host})")
        lowers = self._lowers(state.layers)
        for lower in reversed(lowers):
            sh = Path(resolve_in_root(lower, "/bin/sh"))
            if sh.is_file():
                diagnosis = diagnose_exec_failure(str(sh), str(lower))
                if diagnosis is not None and "host runs" in diagnosis.message:
                    raise BuildStepError(diagnosis.message, step.loc, hint=diagnosis.hint)
                break

    # -- executing one step -------------------------------------------------------

    def stage_lowers(self, index: int) -> list[Path]:
        """The unpacked layers of an already built stage."""
        return self._lowers(self._stage_states[index].layers)

    def _lowers(self, layers: tuple[LayerInfo, ...]) -> list[Path]:
        from rootless.cowfs import ensure_unpacked

        return ensure_unpacked(self.store, layers)

    def _execute(self, state: ImageState, step: Step, vertex: Vertex) -> ImageState:
        from rootless.build.run import remove_stubs

        lowers = self._lowers(state.layers)
        with self.store.temp_dir("build-") as scratch, self._cleared_in_namespace(scratch):
            upper, work, target = scratch / "upper", scratch / "work", scratch / "rootfs"
            for d in (upper, work, target):
                d.mkdir()
            if not lowers:
                # FROM scratch: one empty lower of our own (overlayfs wants a lower,
                # and one inside its work directory fails with ELOOP).
                lowers = [scratch / "empty"]
                lowers[0].mkdir()
            instr = step.instruction
            stubs: list[str] = []
            if isinstance(instr, ir.Run):
                stubs = self._run(state, step, instr, lowers, upper, work, target, vertex)
            else:
                assert isinstance(instr, ir.Copy | ir.Add)
                self._copy(state, step, instr, lowers, upper, work, target, scratch)
            tar_path = scratch / "layer.tar"
            epoch = self.epoch

            def make_tar() -> bool:
                # Inside the namespace: IDs read back as the container sees them.
                from rootless.oci.layer import diff

                remove_stubs(upper, stubs)
                if not any(upper.iterdir()):
                    return False
                diff(upper, tar_path, epoch=epoch)
                _to_unprivileged_form(upper)
                return True

            layer = None
            if call_in_userns(self.mapping, make_tar):
                with open(tar_path, "rb") as f:
                    layer = self.store.put_layer(f)
                self._promote(upper, layer)
        return cfgmod.apply_layer(state, step, layer, self.now())

    def _promote(self, upper: Path, layer: LayerInfo) -> None:
        """Keep the step's upper directory as the layer's unpacked form.

        It holds exactly the layer, in the on-disk form ``oci.layer.extract``
        writes, so the next step need not unpack the tar we just wrote (nor we
        delete thousands of files): one rename on the same filesystem.
        """
        dest = self.store.layer_dir(layer.diff_id)
        if dest.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.rename(upper, dest)  # losing a race to another unpack is fine

    @contextlib.contextmanager
    def _cleared_in_namespace(self, scratch: Path) -> Iterator[None]:
        """Empty ``scratch`` as the namespace's root on the way out: with the full
        ID mapping the upper holds files of subordinate IDs we cannot delete."""
        try:
            yield
        finally:
            try:
                _clear_directory(scratch)
            except PermissionError:
                # full ID mapping: files of subordinate IDs only the namespace may delete
                with contextlib.suppress(RootlessError):
                    call_in_userns(self.mapping, lambda: _clear_directory(scratch))

    # RUN ---------------------------------------------------------------------------

    def _run(self, state: ImageState, step: Step, instr: ir.Run, lowers: list[Path],
             upper: Path, work: Path, target: Path, vertex: Vertex) -> list[str]:
        from rootless.build.run import RunSetup

        setup = RunSetup(self, state, step, instr, lowers, upper, work, target)
        status, argv = setup.execute(vertex)
        if status != 0:
            raise BuildStepError(
                f"{_shown(step.written)}: process {json.dumps(argv)} did not complete "
                f"successfully: exit code: {status}", step.loc, exit_status=status)
        return setup.stubs

    # COPY / ADD -------------------------------------------------------------------

    def _copy(self, state: ImageState, step: Step, instr: ir.Copy | ir.Add,
              lowers: list[Path], upper: Path, work: Path, target: Path,
              scratch: Path) -> None:
        workdir = (state.config.get("config") or {}).get("WorkingDir") or "/"
        ctx = self.req.context
        from_lowers: list[Path] | None = None
        if step.from_stage is not None:
            from_lowers = self._lowers(self._stage_states[step.from_stage].layers)
        elif step.from_image is not None:
            image = self.stored[step.from_image]
            from_lowers = self._lowers(tuple(
                LayerInfo(d.digest, diff, d.size, d.media_type)
                for d, diff in zip(image.layers, image.diff_ids, strict=True)))
        heredocs = {h.name: h for h in instr.heredocs}
        here_dir = scratch / "heredocs"
        sources: list[CopySource] = []
        urls: list[str] = []
        context_sources: list[str] = []
        multiple = len(instr.sources) + len(heredocs) > 1
        for heredoc in instr.heredocs:  # `COPY <<EOF /dest`: the body is the file
            here_dir.mkdir(exist_ok=True)
            # The body lands in our scratch dir under its bare name: a delimiter such as
            # `<<../../x` must not write outside it (BuildKit cleans the name likewise).
            file_name = posixpath.basename(posixpath.normpath("/" + heredoc.name)) or "_"
            path = here_dir / file_name
            path.write_text(heredoc.content)
            path.chmod(0o644)
            sources.append(CopySource(path, file_name))
        for source in instr.sources:
            name = source.lstrip("<-").strip("'\"") if source.startswith("<<") else None
            if name is not None and name in heredocs:
                continue
            elif isinstance(instr, ir.Add) and source.startswith(("http://", "https://")):
                urls.append(source)
            elif from_lowers is None:
                if any(ch in source for ch in "*?["):
                    multiple = True
                for path in ctx.expand(source, instr.loc):
                    only = None
                    if ctx.ignore and path.is_dir() and not path.is_symlink():
                        only = frozenset(str(p) for p in ctx.walk_sorted(path))
                    sources.append(CopySource(path, ctx.rel_of(path), only))
                context_sources.append(source)
            else:
                if any(ch in source for ch in "*?["):
                    multiple = True
                sources.append(CopySource(Path(source), source))  # resolved in the child
        options = CopyOptions(chown=instr.chown, chmod=instr.chmod, excludes=instr.exclude,
                              parents=instr.parents, is_add=isinstance(instr, ir.Add))
        checksum = instr.checksum if isinstance(instr, ir.Add) else None

        mapping_mode = self.mapping.mode
        driver = self.driver

        def work_in_namespace() -> None:
            from rootless.cowfs import mount_rootfs

            chown = _OwnerRecorder(mapping_mode, target)
            with contextlib.ExitStack() as stack:
                stack.enter_context(mount_rootfs(lowers, upper, work, target, driver))
                resolved = sources
                if from_lowers is not None:
                    from_root = scratch / "from"
                    stack.enter_context(mount_rootfs(from_lowers, scratch / "from-upper",
                                                     scratch / "from-work", from_root, driver))
                    resolved = _resolve_from_root(from_root, sources, instr.loc)
                copy_sources(target, resolved, instr.dest, workdir, options, instr.loc,
                             multiple=multiple, lchown=chown)
                for url in urls:
                    add_url(target, url, instr.dest, workdir, options, checksum, instr.loc,
                            lchown=chown)
            chown.apply_to(upper)

        call_in_userns(self.mapping, work_in_namespace)


# -- helpers run in a forked child inside a user + mount namespace ----------------------


class _OwnerRecorder:
    """Sets owners inside the namespace. In single-ID mode only root is mapped, so
    other owners are recorded and, after unmounting, written into the upper
    directory's ownership record (``oci.layer`` override), which layers export."""

    def __init__(self, mode: str, root: Path) -> None:
        self.mode = mode
        self.root = root
        self.creator_ids = (os.geteuid(), os.getegid())  # owner of what we create
        self.pending: dict[str, tuple[int, int]] = {}

    def __call__(self, path: Path, uid: int, gid: int) -> None:
        if self.mode == "full" or (uid == 0 and gid == 0):
            os.lchown(path, uid, gid)
        else:
            self.pending[path.relative_to(self.root).as_posix()] = (uid, gid)

    def apply_to(self, upper: Path) -> None:
        from rootless.oci.layer import Override, read_override, write_override

        for rel, (uid, gid) in self.pending.items():
            path = upper / rel
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue  # symlink owners are not recorded; they rarely matter
            current = read_override(path)
            mode = current.mode if current else stat.S_IMODE(st.st_mode)
            write_override(path, Override(uid, gid, mode, current.kind if current else None))


def _resolve_from_root(root: Path, sources: list[CopySource], loc: Location) -> list[CopySource]:
    import fnmatch

    out: list[CopySource] = []
    for source in sources:
        rel = str(source.path)
        if any(ch in rel for ch in "*?["):
            directory = posixpath.dirname(rel.rstrip("/")) or "/"
            pattern = posixpath.basename(rel.rstrip("/"))
            host_dir = resolve_in_root(root, directory)
            names = sorted(n for n in os.listdir(host_dir) if fnmatch.fnmatchcase(n, pattern)) \
                if host_dir.is_dir() else []
            if not names:
                raise BuildStepError(f"no source files were specified: {rel!r} matches nothing",
                                     loc)
            for name in names:
                inner = posixpath.join(directory, name)
                out.append(CopySource(resolve_in_root(root, inner), inner.lstrip("/")))
            continue
        host = resolve_in_root(root, rel)
        if not (host.exists() or host.is_symlink()):
            raise BuildStepError(f"{rel!r} not found in the source stage or image", loc)
        out.append(CopySource(host, rel.lstrip("/")))
    return out


def _shown(instr: ir.Instruction) -> str:
    text = instr.original.strip() or instr.keyword
    first = text.split("\n", 1)[0]
    return first if len(first) <= 200 else first[:197] + "..."


_QEMU_NAMES = {"arm64": "aarch64", "arm": "arm", "386": "i386", "ppc64le": "ppc64le",
               "s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el",
               "amd64": "x86_64", "loong64": "loongarch64"}


def _binfmt_registered(arch: str) -> bool:
    """Is an emulator (qemu-user via binfmt_misc) registered for ``arch``?"""
    name = _QEMU_NAMES.get(arch, arch)
    try:
        text = Path(f"/proc/sys/fs/binfmt_misc/qemu-{name}").read_text()
    except OSError:
        return False
    return text.startswith("enabled")


def _to_unprivileged_form(tree: Path) -> None:
    """Rewrite TREE (inside the namespace) as an unprivileged extraction leaves a layer:
    everything owned by the namespace's root (the user outside), other owners and
    owner-locking modes recorded in the ``oci.layer`` override attribute; so the
    store can delete it without the namespace and every cowfs driver reads it alike."""
    from rootless.oci.layer import Override, owner_writable_mode, read_override, write_override

    for dirpath, dirnames, filenames in os.walk(tree):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                if st.st_uid or st.st_gid:
                    os.lchown(path, 0, 0)  # as extract: symlink owners are not kept
                continue
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                continue  # whiteouts (0:0 devices), fifos: kept as they are
            is_dir = stat.S_ISDIR(st.st_mode)
            disk_mode = owner_writable_mode(mode, is_dir)
            if (st.st_uid or st.st_gid or disk_mode != mode) and read_override(path) is None:
                write_override(path, Override(st.st_uid, st.st_gid, mode))
            if st.st_uid or st.st_gid:
                os.lchown(path, 0, 0)
            if disk_mode != mode:
                os.chmod(path, disk_mode)


def _clear_directory(path: Path) -> None:
    from rootless.fsutil import force_rmtree

    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            force_rmtree(child)
        else:
            child.unlink()


def _source_date_epoch() -> int | None:
    from rootless.oci.layer import source_date_epoch

    return source_date_epoch()


def build(store: Store, request: BuildRequest, progress: Progress) -> StoredImage:
    return Builder(store, request, progress).run()
