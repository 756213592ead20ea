"""export: the merged view of a container's layers, with no whiteouts left."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from rootless.export import LayerSource, flatten
from rootless.oci.layer import make_whiteout
from tests.helpers import Rootless, tar_bytes


def _layer(entries: dict[str, bytes | None]) -> LayerSource:
    raw = tar_bytes(entries)

    @contextlib.contextmanager
    def source() -> Iterator[IO[bytes]]:
        yield io.BytesIO(raw)
    return source


def _flat(*layers_top_down: LayerSource) -> dict[str, bytes | None]:
    out = io.BytesIO()
    flatten(list(layers_top_down), out)
    out.seek(0)
    result: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=out) as tar:
        for m in tar:
            f = tar.extractfile(m) if m.isreg() else None
            result[m.name] = f.read() if f else None
    return result


def test_upper_wins_and_whiteouts_hide() -> None:
    base = _layer({"etc": None, "etc/a": b"base", "etc/b": b"b", "opt": None, "opt/x": b"x",
                   "var": None, "var/sub": None, "var/sub/f": b"f"})
    top = _layer({"etc": None, "etc/a": b"top", "etc/.wh.b": b"",
                  "opt": None, "opt/.wh..wh..opq": b"", "opt/y": b"y",
                  "var": None, "var/sub": b"now a file"})
    assert _flat(top, base) == {
        "etc": None, "etc/a": b"top", "opt": None, "opt/y": b"y",
        "var": None, "var/sub": b"now a file",
    }


def test_whiteouts_only_hide_lower_layers() -> None:
    # A layer may delete a path and create it again in the same layer.
    base = _layer({"f": b"old"})
    top = _layer({".wh.f": b"", "f": b"new"})
    assert _flat(top, base) == {"f": b"new"}
    assert _flat(_layer({".wh.gone": b""}), _layer({"gone": b"x", "kept": b"k"})) == {
        "kept": b"k"}


def test_export_a_container(rootless: Rootless, store_root: Path, busybox_tar: Path,
                            tmp_path: Path) -> None:
    image_id = rootless("import", busybox_tar, "busybox").stdout.strip()
    cid = "d" * 64
    container = store_root / "containers" / cid
    (container / "upper" / "etc").mkdir(parents=True)
    (container / "upper" / "etc" / "motd").write_text("hello from the container\n")
    make_whiteout(container / "upper" / "etc" / "group")
    (container / "container.json").write_text(json.dumps(
        {"Id": cid, "Name": "box", "Image": image_id, "State": {"Running": False}}))
    out = tmp_path / "box.tar"
    rootless("export", "-o", out, "box")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        motd = tar.extractfile("etc/motd")
        assert motd is not None and motd.read() == b"hello from the container\n"
    assert {"bin/busybox", "bin/sh", "etc/passwd", "etc/motd"} <= names
    assert "etc/group" not in names and not any(".wh." in n for n in names)
    res = rootless("export", "-o", out, "nosuchbox", check=False)
    assert res.returncode != 0 and "No such container: nosuchbox" in res.stderr
    again = tmp_path / "again.tar"
    rootless("container", "export", "-o", again, "dddd")  # by unique ID prefix
    assert again.read_bytes() == out.read_bytes()
