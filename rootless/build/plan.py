"""PURE: a parsed Dockerfile + build args + base image configs → a BuildPlan.

Nothing here touches the filesystem, the store or the network. The executor
resolves base images first (it may pull), then asks for a plan; the plan tells
it which stages to build (only those the target needs), in which order, each
step with its instruction already expanded (ARG/ENV scoping as Docker does),
the build args RUN sees, and a cache key chaining the parent's key, the
instruction, the build args and the checksums of what a COPY/ADD reads.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from rootless.dockerfile import ir
from rootless.errors import Location, PlanError

# ARGs Docker predefines: usable without an ARG line, and left out of history.
PREDEFINED_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Called with (source path in the context, loc) → content checksum.
SourceDigest = Callable[[str, Location], str]


@dataclass(frozen=True, slots=True)
class Base:
    """What a stage starts from: ``scratch``, an image, or an earlier stage."""

    kind: str  # "scratch" | "image" | "stage"
    ref: str  # image reference (expanded), or the stage's index as text
    platform: str | None = None

    @property
    def stage_index(self) -> int:
        return int(self.ref)


@dataclass(frozen=True, slots=True)
class BaseImage:
    """A resolved base image, as the executor found it in the store."""

    image_id: str
    config: Mapping[str, Any]  # the whole image config JSON


@dataclass(frozen=True, slots=True)
class Step:
    """One instruction of a stage, expanded, with its cache key."""

    instruction: ir.Instruction  # expanded (words substituted, quotes removed)
    written: ir.Instruction  # as written in the Dockerfile
    number: int  # position among the stage's steps (FROM is 1); 0 = metadata only
    build_args: tuple[tuple[str, str], ...]  # ARGs in scope with a value (RUN sees them)
    cache_key: str
    from_stage: int | None = None  # COPY --from=<stage>
    from_image: str | None = None  # COPY --from=<image>
    mount_stages: tuple[int, ...] = ()  # RUN --mount=from=<stage>

    @property
    def loc(self) -> Location:
        return self.instruction.loc

    @property
    def changes_filesystem(self) -> bool:
        return isinstance(self.instruction, ir.Run | ir.Copy | ir.Add)


@dataclass(frozen=True, slots=True)
class StagePlan:
    index: int
    name: str | None
    base: Base
    base_key: str  # the parent key of the first step (base image ID or stage key)
    steps: tuple[Step, ...]
    loc: Location

    @property
    def label(self) -> str:
        return self.name or f"stage-{self.index}"

    @property
    def final_key(self) -> str:
        return self.steps[-1].cache_key if self.steps else self.base_key

    @property
    def total(self) -> int:
        """BuildKit's "k/n": FROM plus every filesystem step."""
        return 1 + sum(1 for s in self.steps if s.number)


@dataclass(frozen=True, slots=True)
class BuildPlan:
    stages: tuple[StagePlan, ...]  # only the needed ones, dependencies first
    target: int  # index of the stage whose result is the image
    unused_args: tuple[str, ...] = ()

    def stage(self, index: int) -> StagePlan:
        for s in self.stages:
            if s.index == index:
                return s
        raise KeyError(index)


def _expand_word(word: str, variables: Mapping[str, str], escape: str) -> str:
    from rootless.dockerfile.expand import expand

    return expand(word, variables, escape)


def env_list_to_dict(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def meta_arg_values(dockerfile: ir.Dockerfile, build_args: Mapping[str, str],
                    builtins: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values of the ARGs before the first FROM (usable in FROM lines)."""
    from rootless.dockerfile.expand import global_scope

    return global_scope(dockerfile.meta_args, build_args, builtins, dockerfile.escape)


def stage_bases(dockerfile: ir.Dockerfile, build_args: Mapping[str, str],
                builtins: Mapping[str, str] | None = None) -> list[Base]:
    """Every stage's base, FROM expanded with the meta ARGs."""
    from rootless.dockerfile.expand import expand_from

    meta = meta_arg_values(dockerfile, build_args, builtins)
    bases: list[Base] = []
    for stage in dockerfile.stages:
        expanded = expand_from(stage, meta, dockerfile.escape)
        image, platform = expanded.base, expanded.platform
        if not image:
            raise PlanError("base name should not be blank (an ARG used in FROM may be "
                            "unset)", stage.loc)
        earlier = _find_stage(dockerfile, image, before=stage.index)
        if image.lower() == "scratch":
            bases.append(Base("scratch", "scratch", platform))
        elif earlier is not None:
            bases.append(Base("stage", str(earlier), platform))
        else:
            bases.append(Base("image", image, platform))
    return bases


def _find_stage(dockerfile: ir.Dockerfile, name: str, before: int) -> int | None:
    for stage in dockerfile.stages[:before]:
        if stage.name is not None and stage.name == name.lower():
            return stage.index
    if name.isdigit() and int(name) < before:
        return int(name)
    return None


def target_index(dockerfile: ir.Dockerfile, target: str | None) -> int:
    if not dockerfile.stages:
        raise PlanError("the Dockerfile has no FROM instruction: nothing to build")
    if target is None:
        return len(dockerfile.stages) - 1
    for stage in dockerfile.stages:
        if stage.name == target.lower():
            return stage.index
    names = [s.name for s in dockerfile.stages if s.name]
    close = difflib.get_close_matches(target.lower(), names, n=1)
    hint = f"did you mean {close[0]!r}?" if close else (
        f"stages: {', '.join(names)}" if names else "no stage has a name (FROM ... AS name)")
    raise PlanError(f"target stage {target!r} could not be found", hint=hint)


def _stage_deps(dockerfile: ir.Dockerfile, index: int, bases: list[Base],
                meta: Mapping[str, str]) -> set[int]:
    deps: set[int] = set()
    if bases[index].kind == "stage":
        deps.add(bases[index].stage_index)
    for instr in dockerfile.stages[index].instructions:
        refs: list[str] = []
        if isinstance(instr, ir.Copy) and instr.from_:
            refs.append(instr.from_)
        if isinstance(instr, ir.Run):
            refs.extend(m.from_ for m in instr.mounts if m.from_)
        for ref in refs:
            found = _find_stage(dockerfile, _expand_word(ref, meta, dockerfile.escape), index)
            if found is not None:
                deps.add(found)
    return deps


def needed_stages(dockerfile: ir.Dockerfile, target: int, bases: list[Base],
                  meta: Mapping[str, str]) -> list[int]:
    """The target and the stages it reads from, transitively, in Dockerfile order."""
    needed: set[int] = set()
    todo = [target]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        todo.extend(_stage_deps(dockerfile, index, bases, meta))
    return sorted(needed)


def key_of(*parts: object) -> str:
    data = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def make_plan(
    dockerfile: ir.Dockerfile,
    *,
    build_args: Mapping[str, str],
    target: str | None,
    base_images: Mapping[str, BaseImage],
    source_digest: SourceDigest,
    onbuild: Callable[[str, Location], list[ir.Instruction]] | None = None,
    builtins: Mapping[str, str] | None = None,
) -> BuildPlan:
    """Plan the build. ``base_images`` maps every image named in a needed FROM (and
    ``COPY --from=<image>``) to its resolved image; ``onbuild`` parses a base image's
    ONBUILD trigger into instructions."""
    tgt = target_index(dockerfile, target)
    bases = stage_bases(dockerfile, build_args, builtins)
    meta = meta_arg_values(dockerfile, build_args, builtins)
    order = needed_stages(dockerfile, tgt, bases, meta)
    planned: dict[int, StagePlan] = {}
    configs: dict[int, dict[str, str]] = {}  # stage index → ENV at its end
    used_args: set[str] = set()
    for index in order:
        stage = dockerfile.stages[index]
        base = bases[index]
        triggers: list[str] = []
        if base.kind == "scratch":
            base_key, base_env = "scratch", {}
        elif base.kind == "stage":
            parent = planned[base.stage_index]
            base_key, base_env = parent.final_key, configs[base.stage_index]
        else:
            image = base_images[base.ref]
            cfg = image.config.get("config") or {}
            base_key = image.image_id
            base_env = env_list_to_dict(cfg.get("Env"))
            triggers = list(cfg.get("OnBuild") or [])
        instructions: list[ir.Instruction] = []
        for trigger in triggers:
            if onbuild is None:
                raise PlanError(f"base image {base.ref} has ONBUILD triggers", stage.loc)
            instructions.extend(onbuild(trigger, stage.loc))
        instructions.extend(stage.instructions)
        plan, env = _plan_stage(dockerfile, stage, base, base_key, base_env, instructions,
                                build_args, meta, planned, base_images, source_digest,
                                used_args)
        planned[index] = plan
        configs[index] = env
    unused = tuple(sorted(k for k in build_args
                          if k not in used_args and k not in meta and k not in PREDEFINED_ARGS))
    return BuildPlan(tuple(planned[i] for i in order), tgt, unused)


def _plan_stage(
    dockerfile: ir.Dockerfile,
    stage: ir.Stage,
    base: Base,
    base_key: str,
    base_env: dict[str, str],
    instructions: list[ir.Instruction],
    build_args: Mapping[str, str],
    meta: Mapping[str, str],
    planned: Mapping[int, StagePlan],
    base_images: Mapping[str, BaseImage],
    source_digest: SourceDigest,
    used_args: set[str],
) -> tuple[StagePlan, dict[str, str]]:
    from rootless.dockerfile.expand import expand_stage

    walked = expand_stage(replace(stage, instructions=tuple(instructions)), global_vars=meta,
                          build_args=build_args, base_env=base_env, escape=dockerfile.escape)
    steps: list[Step] = []
    parent_key = base_key
    number = 2  # FROM is step 1
    env: dict[str, str] = dict(base_env)
    for written, walked_step in zip(instructions, walked, strict=True):
        expanded = walked_step.instruction
        scope = walked_step.scope
        env = dict(scope.env)
        if isinstance(written, ir.Arg):
            used_args.update(d.name for d in written.args if d.name in build_args)
        args = tuple(sorted((k, v) for k, v in scope.args.items() if k not in scope.env))
        args += tuple(sorted((k, build_args[k]) for k in PREDEFINED_ARGS & set(build_args)
                             if k not in scope.args and k not in scope.env))
        from_stage: int | None = None
        from_image: str | None = None
        mount_stages: list[int] = []
        extra: list[object] = []
        if isinstance(expanded, ir.Copy) and expanded.from_:
            found = _find_stage(dockerfile, expanded.from_, stage.index)
            if found is not None:
                from_stage = found
                extra.append(planned[found].final_key)
            else:
                from_image = expanded.from_
                if from_image not in base_images:
                    raise PlanError(f"COPY --from={from_image}: no such stage or image",
                                    expanded.loc)
                extra.append(base_images[from_image].image_id)
        elif isinstance(expanded, ir.Copy | ir.Add):
            extra.extend(_source_checksums(expanded, source_digest))
        if isinstance(expanded, ir.Run):
            for mount in expanded.mounts:
                if mount.type != "bind":
                    continue
                if mount.from_:
                    found = _find_stage(dockerfile, mount.from_, stage.index)
                    if found is None:
                        raise PlanError(f"RUN --mount from={mount.from_}: only build stages "
                                        "can be mounted", expanded.loc)
                    mount_stages.append(found)
                    extra.append(planned[found].final_key)
                else:
                    extra.append(source_digest(mount.source or ".", expanded.loc))
        fs_step = isinstance(expanded, ir.Run | ir.Copy | ir.Add)
        run_args = args if isinstance(expanded, ir.Run) else ()
        cache_key = key_of(parent_key, ir.to_json(_without_loc(expanded)), run_args, extra)
        steps.append(Step(expanded, written, number if fs_step else 0, run_args, cache_key,
                          from_stage, from_image, tuple(mount_stages)))
        if fs_step:
            number += 1
        parent_key = cache_key
    if walked:
        last = walked[-1]
        env = dict(last.scope.env)
        if isinstance(last.instruction, ir.Env):
            env.update({kv.key: kv.value for kv in last.instruction.pairs})
    return StagePlan(stage.index, stage.name, base, base_key, tuple(steps), stage.loc), env


def _without_loc(instruction: ir.Instruction) -> ir.Instruction:
    """The instruction without where it was written: moving a line does not change
    what it does, so it must not invalidate the cache."""
    nowhere = Location("", 0)
    out = replace(instruction, loc=nowhere, original="")
    if isinstance(out, ir.Run | ir.Copy | ir.Add) and out.heredocs:
        out = replace(out, heredocs=tuple(replace(h, loc=nowhere) for h in out.heredocs))
    if isinstance(out, ir.Run) and out.mounts:
        out = replace(out, mounts=tuple(replace(m, original="") for m in out.mounts))
    return out


def _source_checksums(instr: ir.Copy | ir.Add, source_digest: SourceDigest) -> list[str]:
    heredoc_names = {h.name for h in instr.heredocs}
    out: list[str] = []
    for source in instr.sources:
        if source.startswith("<<") and source.lstrip("<-").strip("'\"") in heredoc_names:
            continue  # the body is in the instruction itself
        if isinstance(instr, ir.Add) and _is_url(source):
            out.append(source)  # the URL (and --checksum) are the key, as BuildKit does
            continue
        out.append(source_digest(source, instr.loc))
    return out


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))
