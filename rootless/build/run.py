"""One RUN step: its process spec, its mounts, and the clean-up of what the
sandbox itself put into the upper directory (mount points, /etc stubs)."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rootless.build.config import command_argv, is_heredoc_script, run_command
from rootless.build.copy import resolve_in_root
from rootless.dockerfile import ir
from rootless.errors import BuildStepError

if TYPE_CHECKING:
    from rootless.build.cache import ImageState
    from rootless.build.executor import Builder
    from rootless.build.plan import Step
    from rootless.build.progress import Vertex

# What the sandbox creates in the rootfs when the image lacks it.
SANDBOX_STUBS = ("/proc", "/dev", "/sys", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
HOSTNAME = "buildkitsandbox"


def run_env(config: Mapping[str, Any], build_args: tuple[tuple[str, str], ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in (config.get("config") or {}).get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    for key, value in build_args:
        env.setdefault(key, value)  # ENV wins over ARG
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def exists_in_lowers(lowers: list[Path], path: str) -> bool:
    return any(os.path.lexists(resolve_in_root(lower, path)) for lower in lowers)


@dataclass
class RunSetup:
    builder: Builder
    state: ImageState
    step: Step
    instr: ir.Run
    lowers: list[Path]
    upper: Path
    work: Path
    target: Path
    stubs: list[str] = field(default_factory=list)
    stage_views: list[tuple[int, Path]] = field(default_factory=list)

    def _mounts(self, env: dict[str, str]) -> tuple[Any, ...]:
        from rootless.sandbox import MountSpec

        specs: list[MountSpec] = []
        req = self.builder.req
        workdir = (self.state.config.get("config") or {}).get("WorkingDir") or "/"
        for mount in self.instr.mounts:
            target = mount.target
            if mount.type == "secret":
                secret_id = mount.id or (posixpath.basename(target) if target else None)
                if not secret_id:
                    raise BuildStepError("RUN --mount=type=secret needs id= or target=",
                                         self.instr.loc)
                source = req.secrets.get(secret_id)
                if source is None:
                    if mount.required:
                        raise BuildStepError(f"secret {secret_id!r} is required but was not "
                                             "given", self.instr.loc,
                                             hint=f"pass --secret id={secret_id},src=FILE")
                    continue
                if mount.env:
                    env[mount.env] = Path(source).read_text()
                    if not target:
                        continue
                target = target or f"/run/secrets/{secret_id}"
                specs.append(MountSpec(str(source), target, readonly=True))
            elif mount.type == "cache":
                if not target:
                    raise BuildStepError("RUN --mount=type=cache needs target=", self.instr.loc)
                directory = self.builder.cache.mount_dir(mount.id or target)
                if mount.mode is not None:
                    os.chmod(directory, mount.mode)
                specs.append(MountSpec(str(directory), target, readonly=mount.readonly))
            elif mount.type == "tmpfs":
                if not target:
                    raise BuildStepError("RUN --mount=type=tmpfs needs target=", self.instr.loc)
                options = f"size={mount.size}" if mount.size else ""
                specs.append(MountSpec("", target, kind="tmpfs", options=options))
            elif mount.type == "bind":
                if not target:
                    raise BuildStepError("RUN --mount=type=bind needs target=", self.instr.loc)
                if mount.from_:
                    source_path = self._stage_view(mount.source or "/")
                else:
                    source_path = req.context.resolve(mount.source or ".", self.instr.loc)
                specs.append(MountSpec(str(source_path), target, readonly=mount.readonly))
            else:
                raise BuildStepError(f"RUN --mount=type={mount.type} is not supported",
                                     self.instr.loc)
            full_target = posixpath.join(workdir, specs[-1].target)
            specs[-1] = MountSpec(specs[-1].source, full_target, specs[-1].readonly,
                                  specs[-1].kind, specs[-1].options)
            self.stubs.append(full_target)
        return tuple(specs)

    def _stage_view(self, source: str) -> Path:
        """Where a ``--mount=type=bind,from=STAGE`` source will be: the stage's root is
        mounted (read-only layers, throwaway upper) by ``setup`` in the namespace."""
        index = self.step.mount_stages[len(self.stage_views)]
        root = self.upper.parent / f"from-{len(self.stage_views)}"
        self.stage_views.append((index, root))
        cleaned = posixpath.normpath("/" + source).lstrip("/")
        return root / cleaned if cleaned not in ("", ".") else root

    def _shebang_script(self) -> tuple[list[str], Any] | None:
        """``RUN <<EOF`` whose body starts with ``#!``: BuildKit runs the body as a file
        with that interpreter, not through the shell. The file is bound under /dev
        (a tmpfs in the sandbox), so nothing of it reaches the layer."""
        from rootless.sandbox import MountSpec

        if not is_heredoc_script(self.instr):
            return None
        body = self.instr.heredocs[0].content
        if not body.startswith("#!"):
            return None
        line = body[2:].split("\n", 1)[0].strip()
        interpreter, _, arg = line.partition(" ")
        path = self.upper.parent / "heredoc-script"
        path.write_text(body)
        path.chmod(0o755)
        inside = "/dev/.rootless-heredoc-script"
        argv = [interpreter, *([arg.strip()] if arg.strip() else []), inside]
        return argv, MountSpec(str(path), inside, readonly=True)

    def execute(self, vertex: Vertex) -> tuple[int, list[str]]:
        from rootless.cowfs import mount_rootfs
        from rootless.sandbox import ProcessSpec, Rootfs, Sandbox
        from rootless.sandbox.runner import ExecError

        config = self.state.config
        conf = config.get("config") or {}
        env = run_env(config, self.step.build_args)
        mounts = self._mounts(env)
        argv = command_argv(run_command(self.instr), config)
        script = self._shebang_script()
        if script is not None:
            mounts = (*mounts, script[1])
            argv = script[0]
        self.stubs.extend(SANDBOX_STUBS)
        self.stubs = [s for s in self.stubs if not exists_in_lowers(self.lowers, s)]
        lowers, upper, work, target = self.lowers, self.upper, self.work, self.target
        driver = self.builder.driver_for_user(conf.get("User") or "", self.lowers)

        views = [(self.builder.stage_lowers(index), root) for index, root in self.stage_views]

        def setup() -> Rootfs:
            for view_lowers, root in views:
                mount_rootfs(view_lowers, root.with_name(root.name + "-upper"),
                             root.with_name(root.name + "-work"), root, driver)
            handle = mount_rootfs(lowers, upper, work, target, driver)
            return Rootfs(str(target), release=handle.unmount)

        read_fd, write_fd = os.pipe()
        # Separate descriptors: the sandbox closes stdout and stderr one by one.
        error_fd = os.dup(write_fd)
        spec = ProcessSpec(
            argv=tuple(argv), env=env, cwd=conf.get("WorkingDir") or "/",
            user=conf.get("User") or "0:0", stdout=write_fd, stderr=error_fd,
            network="none" if self.instr.network == "none" else "host",
            hostname=HOSTNAME, mounts=mounts)
        sandbox = Sandbox(setup, mapping=self.builder.mapping)
        try:
            try:
                process = sandbox.start(spec)
            finally:
                os.close(write_fd)
                os.close(error_fd)
            with os.fdopen(read_fd, "rb", buffering=0) as reader:
                read_fd = -1
                while chunk := reader.read(65536):
                    self.builder.progress.output(vertex, chunk)
            status = process.wait()
        except ExecError as exc:
            raise BuildStepError(f"RUN: {exc.message}", self.instr.loc,
                                 exit_status=exc.exit_code, hint=exc.hint) from exc
        finally:
            if read_fd >= 0:
                os.close(read_fd)
        return status, argv


def remove_stubs(upper: Path, stubs: list[str]) -> None:
    """Drop what only the sandbox created (empty mount points and /etc stubs) from the
    upper directory, and the parent directories that then hold nothing, so a RUN's
    layer has only what its command changed. Run inside the build's namespace."""
    from rootless.oci.layer import is_opaque

    parents: set[str] = set()
    for stub in stubs:
        path = upper / stub.lstrip("/")
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                path.rmdir()  # only when empty
            except OSError:
                continue
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            path.unlink()
        else:
            continue
        parent = posixpath.dirname(stub)
        while parent not in ("/", ""):
            parents.add(parent)
            parent = posixpath.dirname(parent)
    for parent in sorted(parents, key=lambda p: -p.count("/")):
        path = upper / parent.lstrip("/")
        if path.is_dir() and not path.is_symlink() and not is_opaque(path):
            try:
                path.rmdir()
            except OSError:
                pass
