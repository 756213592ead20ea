"""Fixtures for the cowfs suite: three real layers and a way into a user namespace."""

from __future__ import annotations

import io
import os
import pickle
import signal
import tarfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rootless.cowfs.driver import DRIVERS, unavailable
from rootless.oci.layer import extract

T = TypeVar("T")


def supported_drivers() -> list[Any]:
    params = []
    for name in DRIVERS:
        why = unavailable(name)
        marks = [pytest.mark.skip(reason=f"{name}: {why}")] if why else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def in_namespace(fn: Callable[..., T], *args: Any, timeout: int = 60,
                 mapping: str = "single") -> T:
    """Run FN(*ARGS) as mapped root in new user + mount namespaces; return its result or
    re-raise its failure (as AssertionError carrying the child's traceback)."""
    from rootless.sandbox.userns import IdMapping, run_in_userns

    read_fd, write_fd = os.pipe()

    def child() -> int:
        os.close(read_fd)
        signal.alarm(timeout)  # a hung mount must fail the test, not the suite
        try:
            outcome: tuple[str, Any] = ("ok", fn(*args))
        except BaseException as exc:  # report everything, including assertion failures
            outcome = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        with os.fdopen(write_fd, "wb") as out:
            out.write(pickle.dumps(outcome))
        return 0

    code = -1
    try:
        ids = IdMapping.single() if mapping == "single" else IdMapping.detect()
        code = run_in_userns(child, ids)
    finally:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as f:
            data = f.read()
    if not data:
        raise AssertionError(f"the namespace child died (status {code})")
    kind, value = pickle.loads(data)
    if kind == "error":
        raise AssertionError(value)
    return value  # type: ignore[no-any-return]


def _tar(entries: list[tuple[str, Any]]) -> bytes:
    """(name, bytes) → file; (name, None) → dir; (name, ("uid", uid, mode)) → owned file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, tuple):
                _, uid, mode = data
                info.uid = info.gid = uid
                info.mode, info.size = mode, 5
                tar.addfile(info, io.BytesIO(b"owned"))
            else:
                info.mode, info.size = 0o644, len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# Three layers exercising the whiteout matrix; EXPECTED is the union a container sees.
LAYERS: list[list[tuple[str, Any]]] = [
    [("a", b"a1"), ("dir", None), ("dir/x", b"x"), ("dir/sub", None), ("dir/sub/y", b"y"),
     ("del", b"gone"), ("rootfile", b"r"), ("rootfile2", b"r2"), ("opq", None),
     ("opq/old", b"old"), ("cycle", b"v1"), ("dir2", None), ("dir2/old", b"o"),
     ("keep", b"keep"), ("owned", ("uid", 1000, 0o640)), ("opq2", None), ("opq2/z", b"z"),
     ("opq2/w", b"w")],
    [(".wh.del", b""), ("dir/sub/.wh.y", b""), (".wh.rootfile", b""), ("opq", None),
     ("opq/.wh..wh..opq", b""), ("opq/new", b"new"), (".wh.cycle", b""), (".wh.dir2", b"")],
    [("cycle", b"v3"), ("dir2", None), ("dir2/new", b"n"), ("opq2", None),
     ("opq2/.wh..wh..opq", b""), ("opq2/.wh.z", b""), ("opq2/fresh", b"f")],
]

EXPECTED = {
    "a": b"a1", "dir": None, "dir/x": b"x", "dir/sub": None, "rootfile2": b"r2",
    "opq": None, "opq/new": b"new", "cycle": b"v3", "dir2": None, "dir2/new": b"n",
    "keep": b"keep", "owned": b"owned", "opq2": None, "opq2/fresh": b"f",
}


@dataclass(frozen=True)
class Stack:
    lowers: list[Path]
    upper: Path
    work: Path
    target: Path


@pytest.fixture(scope="session")
def layer_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("layers")
    dirs = []
    for i, entries in enumerate(LAYERS):
        dest = base / f"l{i}"
        extract(io.BytesIO(_tar(entries)), dest, name=f"l{i}")
        dirs.append(dest)
    return dirs


@pytest.fixture
def stack(tmp_path: Path, layer_dirs: list[Path]) -> Stack:
    return Stack(layer_dirs, tmp_path / "upper", tmp_path / "work", tmp_path / "merged")


@pytest.fixture(params=supported_drivers())
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)
