"""A real, non-editable install ships the code, the grammar and the command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("packaging")
    # Build from a copy: pip writes build/ and *.egg-info next to setup.cfg.
    src = work / "src"
    junk = shutil.ignore_patterns(".git", "__pycache__", ".*_cache", "*.egg-info")

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = {"build", "dist"} if Path(directory) == ROOT else set()
        return set(junk(directory, names)) | (top & set(names))

    shutil.copytree(ROOT, src, symlinks=True, ignore=ignore)
    target = work / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--no-input", "--quiet", "--target", str(target),
         str(src)],
        capture_output=True, text=True, cwd=work, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


def _clean_env(target: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    return env


def test_installed_copy_is_not_the_source(installed: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import rootless, rootless.store, rootless.cli; "
                               "print(rootless.__file__)"],
        capture_output=True, text=True, env=_clean_env(installed), cwd=tmp_path, check=True)
    assert out.stdout.strip().startswith(str(installed))


def test_grammar_ships_as_package_data(installed: Path, tmp_path: Path) -> None:
    grammar = installed / "rootless" / "grammar"
    assert (grammar / "__init__.py").is_file()
    assert not grammar.is_symlink()
    expected = sorted(p.name for p in (ROOT / "grammar").glob("*.lark"))
    code = ("import importlib.resources as r; "
            "print(' '.join(sorted(p.name for p in r.files('rootless.grammar').iterdir() "
            "if p.name.endswith('.lark'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_clean_env(installed), cwd=tmp_path, check=True)
    assert out.stdout.split() == expected
    if (ROOT / "grammar" / "dockerfile.lark").exists():
        assert "dockerfile.lark" in out.stdout.split()


def test_every_package_is_installed(installed: Path) -> None:
    for init in sorted(ROOT.glob("rootless/**/__init__.py")):
        relative = init.relative_to(ROOT)
        if "grammar" in relative.parts:
            continue
        assert (installed / relative).is_file(), f"{relative.parent} is missing from setup.cfg"


def test_installed_command_runs(installed: Path, tmp_path: Path) -> None:
    command = installed / "bin" / "rootless"
    res = subprocess.run([str(command), "--help"], capture_output=True, text=True,
                         env=_clean_env(installed), cwd=tmp_path, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "images" in res.stdout and "import" in res.stdout
    res = subprocess.run([str(command), "--root", str(tmp_path / "store"), "images"],
                         capture_output=True, text=True, env=_clean_env(installed),
                         cwd=tmp_path, timeout=60)
    assert res.returncode == 0 and res.stdout.split() == [
        "REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
