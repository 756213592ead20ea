"""`.dockerignore` semantics, case by case as Docker's patternmatcher answers them."""

from __future__ import annotations

import pytest

from rootless.build.ignore import IgnoreMatcher, parse_dockerignore


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        (["*.log"], "a.log", True),
        (["*.log"], "dir/a.log", False),  # "*" never crosses "/"
        (["**/*.log"], "dir/sub/a.log", True),
        (["**/*.log"], "a.log", True),  # "**" matches zero directories too
        (["dir"], "dir/sub/file", True),  # a parent directory matching hides its contents
        (["dir/**"], "dir", False),
        (["dir/**"], "dir/x/y", True),
        (["a/**/b"], "a/b", True),
        (["a/**/b"], "a/x/y/b", True),
        (["*", "!keep"], "keep", False),
        (["*", "!keep"], "other", True),
        (["*", "!keep", "keep"], "keep", True),  # the last match wins
        (["dir", "!dir/keep.txt"], "dir/keep.txt", False),
        (["dir", "!dir/keep.txt"], "dir/drop.txt", True),
        (["?.txt"], "a.txt", True),
        (["?.txt"], "ab.txt", False),
        (["[a-c].txt"], "b.txt", True),
        (["[a-c].txt"], "d.txt", False),
        (["a.b"], "axb", False),  # "." is literal
        (["\\*"], "*", True),
        (["\\*"], "x", False),
        (["/abs/path"], "abs/path", True),
        (["./x/../y"], "y", True),
        (["node_modules"], "node_modules/pkg/index.js", True),
        (["docs/*.md", "!docs/README.md"], "docs/README.md", False),
    ],
)
def test_matches_like_docker(patterns: list[str], path: str, ignored: bool) -> None:
    assert IgnoreMatcher(parse_dockerignore("\n".join(patterns))).ignored(path) is ignored


def test_reading_cleans_and_skips_comments() -> None:
    text = "\ufeff# comment\n\n  spaced.txt  \n! /neg/../kept\n/lead/\n"
    assert parse_dockerignore(text) == ["spaced.txt", "!kept", "lead"]


def test_exception_may_reach_into_ignored_directory() -> None:
    m = IgnoreMatcher(["dir", "!dir/sub/keep"])
    assert m.may_include_below("dir")
    assert not m.may_include_below("other")
    assert not IgnoreMatcher(["dir"]).may_include_below("dir")
