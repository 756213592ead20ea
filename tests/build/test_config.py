"""Image config folds: what `docker build` writes for each instruction."""

from __future__ import annotations

from rootless.build.cache import ImageState
from rootless.build.config import apply_layer, apply_metadata, child_config, finalize
from rootless.build.plan import BaseImage, make_plan
from rootless.dockerfile import parse
from rootless.oci.digest import Digest
from rootless.oci.model import LayerInfo

BASE = {"architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "OnBuild": ["RUN x"]},
        "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


def fold(text: str) -> ImageState:
    df = parse(text)
    plan = make_plan(df, build_args={}, target=None,
                     base_images={"base": BaseImage("sha256:" + "1" * 64, BASE)},
                     source_digest=lambda _s, _l: "sha256:0", onbuild=lambda _t, _l: [])
    state = ImageState(child_config(BASE), ())
    for step in plan.stages[-1].steps:
        if step.number:
            layer = LayerInfo(Digest("sha256:" + "a" * 64), Digest("sha256:" + "b" * 64), 10)
            state = apply_layer(state, step, layer, "2024-01-01T00:00:00Z")
        else:
            state = apply_metadata(state, step, "2024-01-01T00:00:00Z")
    return state


def test_child_config_drops_onbuild() -> None:
    assert "OnBuild" not in child_config(BASE)["config"]


def test_entrypoint_resets_an_inherited_cmd_but_not_a_new_one() -> None:
    conf = finalize(fold("FROM base\nENTRYPOINT [\"/app\"]\n").config, {})["config"]
    assert conf["Entrypoint"] == ["/app"] and "Cmd" not in conf
    conf = finalize(fold("FROM base\nCMD [\"x\"]\nENTRYPOINT [\"/app\"]\n").config,
                    {})["config"]
    assert conf["Cmd"] == ["x"]


def test_shell_form_goes_through_shell() -> None:
    conf = fold("FROM base\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\n").config["config"]
    assert conf["Cmd"] == ["/bin/bash", "-c", "echo hi"]


def test_expose_ranges_and_protocols() -> None:
    conf = fold("FROM base\nEXPOSE 80 8000-8002/udp\n").config["config"]
    assert set(conf["ExposedPorts"]) == {"80/tcp", "8000/udp", "8001/udp", "8002/udp"}


def test_history_and_layers() -> None:
    state = fold("FROM base\nENV A=1\nRUN make\nARG X=1\nLABEL a=b\n")
    history = state.config["history"]
    assert [h["created_by"] for h in history] == [
        "ENV A=1", "RUN /bin/sh -c make # buildkit", "LABEL a=b"]
    assert [h.get("empty_layer", False) for h in history] == [True, False, True]
    assert state.config["rootfs"]["diff_ids"] == ["sha256:" + "b" * 64]


def test_run_history_names_build_args() -> None:
    state = fold("FROM base\nARG V=2\nRUN echo $V\n")
    assert state.config["history"][-1]["created_by"] == \
        "RUN |1 V=2 /bin/sh -c echo $V # buildkit"


def test_labels_from_the_command_line_merge_last() -> None:
    conf = finalize(fold("FROM base\nLABEL a=1 b=2\n").config, {"b": "cli"})["config"]
    assert conf["Labels"] == {"a": "1", "b": "cli"}
