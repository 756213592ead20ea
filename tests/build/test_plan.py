"""The pure planner: stage graph, --target, scoping, cache keys."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from rootless.build.plan import BaseImage, BuildPlan, make_plan
from rootless.dockerfile import ir, parse
from rootless.errors import Location, PlanError

BUSYBOX = BaseImage("sha256:" + "1" * 64, {"config": {"Env": ["PATH=/bin", "BASE=yes"]}})


def plan(text: str, *, args: Mapping[str, str] | None = None, target: str | None = None,
         digests: Mapping[str, str] | None = None,
         bases: Mapping[str, BaseImage] | None = None) -> BuildPlan:
    def digest(source: str, _loc: Location) -> str:
        return (digests or {}).get(source, "sha256:" + "0" * 64)

    return make_plan(parse(text), build_args=args or {}, target=target,
                     base_images=bases or {"busybox": BUSYBOX}, source_digest=digest)


MULTI = """\
FROM busybox AS build
RUN make
FROM busybox AS unused
RUN false
FROM scratch AS final
COPY --from=build /out /out
"""


def test_only_needed_stages_are_planned() -> None:
    p = plan(MULTI)
    assert [s.name for s in p.stages] == ["build", "final"]
    assert p.target == 2
    assert plan(MULTI, target="unused").stages[0].name == "unused"
    assert [s.name for s in plan(MULTI, target="build").stages] == ["build"]


def test_unknown_target_suggests() -> None:
    with pytest.raises(PlanError) as err:
        plan(MULTI, target="fnal")
    assert err.value.hint == "did you mean 'final'?"


def test_copy_from_a_stage_keys_on_that_stage() -> None:
    p = plan(MULTI)
    copy = p.stage(2).steps[0]
    assert copy.from_stage == 0
    changed = plan(MULTI.replace("RUN make", "RUN make all"))
    assert changed.stage(2).steps[0].cache_key != copy.cache_key


def test_meta_args_expand_from_and_build_args_override() -> None:
    text = "ARG BASE=busybox\nFROM $BASE\nARG V=1\nRUN echo $V\n"
    p = plan(text)
    assert p.stages[0].base.ref == "busybox"
    run = p.stages[0].steps[-1]
    assert run.build_args == (("V", "1"),)
    overridden = plan(text, args={"V": "2"})
    assert overridden.stages[0].steps[-1].build_args == (("V", "2"),)
    assert overridden.stages[0].steps[-1].cache_key != run.cache_key


def test_env_from_the_base_image_expands() -> None:
    p = plan("FROM busybox\nWORKDIR /x/$BASE\n")
    workdir = p.stages[0].steps[0].instruction
    assert isinstance(workdir, ir.Workdir) and workdir.path == "/x/yes"


def test_env_wins_over_arg_and_is_not_a_build_arg() -> None:
    p = plan("FROM busybox\nARG A=arg\nENV A=env\nRUN echo $A\n")
    assert p.stages[0].steps[-1].build_args == ()


def test_unused_build_args_are_reported() -> None:
    p = plan("FROM busybox\nARG USED\nRUN true\n", args={"USED": "1", "EXTRA": "2"})
    assert p.unused_args == ("EXTRA",)


def test_source_content_changes_the_copy_key_and_everything_after() -> None:
    text = "FROM busybox\nCOPY a /a\nRUN one\nCOPY b /b\nRUN two\n"
    first = plan(text, digests={"a": "sha256:a1", "b": "sha256:b1"}).stages[0].steps
    second = plan(text, digests={"a": "sha256:a1", "b": "sha256:b2"}).stages[0].steps
    assert [x.cache_key == y.cache_key for x, y in zip(first, second, strict=True)] == \
        [True, True, False, False]


def test_moving_a_line_keeps_keys_but_the_base_image_changes_them() -> None:
    a = plan("FROM busybox\nRUN one\n").stages[0].steps[0].cache_key
    b = plan("\n\nFROM busybox\n\n  RUN one\n").stages[0].steps[0].cache_key
    assert a == b
    other = BaseImage("sha256:" + "2" * 64, BUSYBOX.config)
    assert plan("FROM busybox\nRUN one\n", bases={"busybox": other}).stages[0].steps[0] \
        .cache_key != a


def test_step_numbers_count_filesystem_steps_after_from() -> None:
    p = plan("FROM busybox\nENV A=1\nRUN one\nLABEL x=y\nCOPY a /a\n")
    assert [s.number for s in p.stages[0].steps] == [0, 2, 0, 3]
    assert p.stages[0].total == 3


def test_no_from_is_an_error() -> None:
    with pytest.raises((PlanError, Exception)):
        plan("# nothing\n")
