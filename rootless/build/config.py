"""Image configs as ``docker build`` (BuildKit) writes them: pure folds over steps.

Each step turns an ``ImageState`` (config + layers) into the next; metadata
instructions touch only ``config``; RUN/COPY/ADD append a layer (or, when they
changed nothing, only a history entry marked ``empty_layer``).
"""

from __future__ import annotations

import copy
import json
import posixpath
from collections.abc import Mapping
from typing import Any

from rootless.build.cache import ImageState
from rootless.build.plan import DEFAULT_PATH, Step
from rootless.dockerfile import ir
from rootless.oci.model import LayerInfo

COMMENT = "buildkit.dockerfile.v0"
DEFAULT_SHELL = ("/bin/sh", "-c")


def host_architecture() -> str:
    from rootless.elf import host_platform

    return host_platform().split("/", 1)[1]


def scratch_config(platform: str | None) -> dict[str, Any]:
    arch = host_architecture()
    os_name = "linux"
    if platform:
        parts = platform.split("/")
        os_name = parts[0] or "linux"
        arch = parts[1] if len(parts) > 1 else arch
    return {"architecture": arch, "os": os_name,
            "config": {"Env": [f"PATH={DEFAULT_PATH}"]},
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


def child_config(base: Mapping[str, Any]) -> dict[str, Any]:
    """A new stage's starting config: the base's, minus what does not inherit."""
    out = copy.deepcopy(dict(base))
    conf = out.setdefault("config", {}) or {}
    out["config"] = conf
    conf.pop("OnBuild", None)  # triggers fire once, in the child build
    if not conf.get("Env"):
        conf["Env"] = [f"PATH={DEFAULT_PATH}"]
    out.pop("container_config", None)
    out.pop("container", None)
    out.pop("docker_version", None)
    out.setdefault("history", [])
    out.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    return out


def _go_quote_list(items: list[str] | tuple[str, ...]) -> str:
    """Go's ``fmt.Sprintf("%q", []string{...})``: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def shell_of(config: Mapping[str, Any]) -> tuple[str, ...]:
    shell = (config.get("config") or {}).get("Shell")
    return tuple(shell) if shell else DEFAULT_SHELL


def command_argv(command: ir.Command, config: Mapping[str, Any]) -> list[str]:
    if isinstance(command, tuple):
        return list(command)
    return [*shell_of(config), command]


def created_by(step: Step, config: Mapping[str, Any]) -> str:
    """The history line BuildKit writes for an instruction."""
    instr = step.instruction
    match instr:
        case ir.Run():
            argv = command_argv(_run_text(instr), config)
            args = [f"{k}={v}" for k, v in step.build_args]
            prefix = f"|{len(args)} {' '.join(args)} " if args else ""
            return f"RUN {prefix}{' '.join(argv)} # buildkit"
        case ir.Copy() | ir.Add():
            flags = []
            if isinstance(instr, ir.Copy) and instr.from_:
                flags.append(f"--from={instr.from_}")
            if instr.chown:
                flags.append(f"--chown={instr.chown}")
            if instr.chmod:
                flags.append(f"--chmod={instr.chmod}")
            if instr.link:
                flags.append("--link")
            heredocs = [f"<<{h.name}" for h in instr.heredocs]
            words = [*flags, *heredocs, *instr.sources, instr.dest]
            return f"{instr.keyword} {' '.join(words)} # buildkit"
        case ir.Cmd() | ir.Entrypoint():
            return f"{instr.keyword} {_go_quote_list(command_argv(instr.command, config))}"
        case ir.Env():
            return "ENV " + " ".join(f"{kv.key}={kv.value}" for kv in instr.pairs)
        case ir.Label():
            return "LABEL " + " ".join(f"{kv.key}={kv.value}" for kv in instr.pairs)
        case ir.Expose():
            return "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in _ports(instr.ports)) + "]"
        case ir.Volume():
            return "VOLUME [" + " ".join(instr.paths) + "]"
        case ir.Shell():
            return "SHELL [" + " ".join(instr.shell) + "]"
        case ir.Arg():
            return "ARG " + " ".join(d.name if d.default is None else f"{d.name}={d.default}"
                                     for d in instr.args)
        case ir.Onbuild():
            return f"ONBUILD {instr.expression}"
        case ir.Healthcheck():
            return f"HEALTHCHECK &{{{_go_quote_list(instr.test)}}}"
    text = instr.original.strip()
    return text


def _run_text(instr: ir.Run) -> ir.Command:
    """The command RUN executes: heredoc bodies joined to the shell text."""
    command = instr.command
    if isinstance(command, tuple) or not instr.heredocs:
        return command
    if is_heredoc_script(instr):
        return instr.heredocs[0].content
    text = command
    for heredoc in instr.heredocs:
        text += "\n" + heredoc.content + heredoc.name
    return text


def is_heredoc_script(instr: ir.Run) -> bool:
    """``RUN <<EOF`` alone: the body is the script (BuildKit runs it with the shell)."""
    if isinstance(instr.command, tuple) or len(instr.heredocs) != 1:
        return False
    word = instr.command.strip()
    return word.startswith("<<") and word.lstrip("<-").strip("'\"") == instr.heredocs[0].name


def run_command(instr: ir.Run) -> ir.Command:
    return _run_text(instr)


def _ports(ports: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for port in ports:
        number, _, proto = port.partition("/")
        proto = proto.lower() or "tcp"
        if "-" in number:
            lo, _, hi = number.partition("-")
            if lo.isdigit() and hi.isdigit():
                out.extend(f"{p}/{proto}" for p in range(int(lo), int(hi) + 1))
                continue
        out.append(f"{number}/{proto}")
    return sorted(set(out))


def _set_env(conf: dict[str, Any], key: str, value: str) -> None:
    env = list(conf.get("Env") or [])
    for i, item in enumerate(env):
        if item.partition("=")[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    conf["Env"] = env


def apply_metadata(state: ImageState, step: Step, now: str) -> ImageState:
    config = copy.deepcopy(state.config)
    conf: dict[str, Any] = config.setdefault("config", {}) or {}
    config["config"] = conf
    instr = step.instruction
    match instr:
        case ir.Env():
            for kv in instr.pairs:
                _set_env(conf, kv.key, kv.value)
        case ir.Label():
            labels = dict(conf.get("Labels") or {})
            labels.update({kv.key: kv.value for kv in instr.pairs})
            conf["Labels"] = labels
        case ir.Expose():
            ports = dict(conf.get("ExposedPorts") or {})
            ports.update({p: {} for p in _ports(instr.ports)})
            conf["ExposedPorts"] = ports
        case ir.User():
            conf["User"] = instr.user
        case ir.Workdir():
            current = conf.get("WorkingDir") or "/"
            conf["WorkingDir"] = posixpath.normpath(posixpath.join(current, instr.path))
        case ir.Cmd():
            conf["Cmd"] = command_argv(instr.command, config)
            if not isinstance(instr.command, tuple):
                conf["ArgsEscaped"] = True
            config.setdefault("_rootless_cmd_set", True)
        case ir.Entrypoint():
            conf["Entrypoint"] = command_argv(instr.command, config)
            if not isinstance(instr.command, tuple):
                conf["ArgsEscaped"] = True
            if not config.get("_rootless_cmd_set"):
                conf["Cmd"] = None  # ENTRYPOINT resets an inherited CMD, as Docker does
        case ir.Volume():
            volumes = dict(conf.get("Volumes") or {})
            volumes.update({p: {} for p in instr.paths})
            conf["Volumes"] = volumes
        case ir.Stopsignal():
            conf["StopSignal"] = instr.signal
        case ir.Healthcheck():
            health: dict[str, Any] = {"Test": list(instr.test)}
            for name, value in (("Interval", instr.interval), ("Timeout", instr.timeout),
                                ("StartPeriod", instr.start_period),
                                ("StartInterval", instr.start_interval),
                                ("Retries", instr.retries)):
                if value is not None:
                    health[name] = value
            conf["Healthcheck"] = health
        case ir.Shell():
            conf["Shell"] = list(instr.shell)
        case ir.Onbuild():
            conf["OnBuild"] = [*(conf.get("OnBuild") or []), instr.expression]
        case ir.Maintainer():
            config["author"] = instr.name
    if isinstance(instr, ir.Arg):
        return ImageState(config, state.layers)  # ARG leaves no history (BuildKit)
    history = list(config.get("history") or [])
    history.append({"created": now, "created_by": created_by(step, state.config),
                    "comment": COMMENT, "empty_layer": True})
    config["history"] = history
    config["created"] = now
    return ImageState(config, state.layers)


def apply_layer(state: ImageState, step: Step, layer: LayerInfo | None, now: str) -> ImageState:
    config = copy.deepcopy(state.config)
    entry: dict[str, Any] = {"created": now, "created_by": created_by(step, state.config),
                             "comment": COMMENT}
    layers = state.layers
    if layer is None:
        entry["empty_layer"] = True
    else:
        layers = (*layers, layer)
        rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), str(layer.diff_id)]
    config["history"] = [*(config.get("history") or []), entry]
    config["created"] = now
    return ImageState(config, layers)


def finalize(config: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    out = copy.deepcopy(dict(config))
    out.pop("_rootless_cmd_set", None)
    conf = out.setdefault("config", {})
    if labels:
        conf["Labels"] = {**(conf.get("Labels") or {}), **labels}
    if conf.get("Cmd") is None:
        conf.pop("Cmd", None)
    return out
