"""Golden files: accepted Dockerfiles and their IR, rejected ones and their exact error.

``tests/golden/dockerfile/parse/<case>/{Dockerfile,ir.json}`` and
``tests/golden/dockerfile/errors/<case>/{Dockerfile,error.txt}``. Regenerate on purpose
with ``scripts/update-goldens`` and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rootless.dockerfile import parse
from rootless.dockerfile.ir import dump
from rootless.errors import DockerfileSyntaxError

GOLDEN = Path(__file__).parent.parent / "golden" / "dockerfile"
PARSE_CASES = sorted(p for p in (GOLDEN / "parse").iterdir() if p.is_dir())
ERROR_CASES = sorted(p for p in (GOLDEN / "errors").iterdir() if p.is_dir())
EXAMPLES = sorted(p for p in (Path(__file__).parents[2] / "Dockerfile.examples").glob("**/*")
                  if p.name.endswith("Dockerfile") or p.name.startswith("Dockerfile."))


def read(path: Path) -> str:
    # Bytes, not text mode: CRLF and a BOM must reach the parser untouched.
    return path.read_bytes().decode("utf-8")


def check_golden(path: Path, got: str, update: bool) -> None:
    if update:
        path.write_text(got, encoding="utf-8", newline="")
    assert path.exists(), f"{path} is missing: run scripts/update-goldens"
    assert got == read(path)


@pytest.mark.parametrize("case", PARSE_CASES, ids=lambda p: p.name)
def test_parse(case: Path, update_goldens: bool) -> None:
    got = dump(parse(read(case / "Dockerfile"), "Dockerfile"))
    check_golden(case / "ir.json", got, update_goldens)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda p: p.name)
def test_error(case: Path, update_goldens: bool) -> None:
    with pytest.raises(DockerfileSyntaxError) as info:
        parse(read(case / "Dockerfile"), "Dockerfile")
    check_golden(case / "error.txt", str(info.value) + "\n", update_goldens)


def test_there_are_many_cases() -> None:
    assert len(PARSE_CASES) >= 50
    assert len(ERROR_CASES) >= 50


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_parse(example: Path) -> None:
    """Every example Dockerfile (built end to end by the build tests) parses."""
    dockerfile = parse(read(example), example.name)
    assert dockerfile.stages
