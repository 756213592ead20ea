"""Archives we save load into real podman and skopeo, and theirs load into our store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import Rootless, which
from tests.interop.conftest import Podman

pytestmark = pytest.mark.integration


@pytest.fixture
def imported(rootless: Rootless, busybox_tar: Path) -> dict[str, object]:
    rootless("import", "-c", 'CMD ["sh", "-c", "echo hi"]', "-c", "ENV GREETING=hello",
             "-c", "WORKDIR /root", "-c", "LABEL org.example=yes", busybox_tar, "busybox:1")
    [info] = json.loads(rootless("image", "inspect", "busybox:1").stdout)
    return info  # type: ignore[no-any-return]


def _skopeo_inspect(*args: str) -> dict[str, object]:
    which("skopeo")
    out = subprocess.run(["skopeo", "inspect", *args], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_save_then_podman_load(rootless: Rootless, podman: Podman, imported: dict[str, object],
                               tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    rootless("save", "-o", archive, "busybox:1")
    out = podman("load", "-i", archive).stdout
    assert "docker.io/library/busybox:1" in out
    [theirs] = json.loads(podman("image", "inspect", "docker.io/library/busybox:1").stdout)
    config = imported["Config"]
    assert isinstance(config, dict)
    assert "sha256:" + theirs["Id"].removeprefix("sha256:") == imported["Id"]
    assert theirs["Config"]["Cmd"] == config["Cmd"] == ["sh", "-c", "echo hi"]
    assert theirs["Config"]["Env"] == config["Env"] == ["GREETING=hello"]
    assert theirs["Config"]["WorkingDir"] == "/root"
    assert theirs["Config"]["Labels"] == {"org.example": "yes"}
    assert theirs["RootFS"]["Layers"] == imported["RootFS"]["Layers"]  # type: ignore[index]


def test_save_oci_archive_then_podman_load(rootless: Rootless, podman: Podman,
                                           imported: dict[str, object], store_root: Path,
                                           tmp_path: Path) -> None:
    from rootless.store import Store

    archive = tmp_path / "bb-oci.tar"
    rootless("save", "--format", "oci-archive", "-o", archive, "busybox:1")
    podman("load", "-i", archive)
    [theirs] = json.loads(podman("image", "inspect", "busybox:1").stdout)
    assert "sha256:" + theirs["Id"].removeprefix("sha256:") == imported["Id"]
    image = Store.open(store_root).resolve("busybox:1")
    info = _skopeo_inspect(f"oci-archive:{archive}")
    assert info["Layers"] == [str(image.layers[0].digest)]
    assert info["Digest"] == image.manifest_digest


def test_skopeo_agrees_on_digests(rootless: Rootless, imported: dict[str, object],
                                  tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    rootless("save", "-o", archive, "busybox:1")
    info = _skopeo_inspect(f"docker-archive:{archive}")
    assert info["Layers"] == imported["RootFS"]["Layers"]  # type: ignore[index]
    raw = _skopeo_inspect("--raw", f"docker-archive:{archive}")
    assert raw["config"]["digest"] == imported["Id"]  # type: ignore[index]
    config = _skopeo_inspect("--config", f"docker-archive:{archive}")
    assert config["config"]["Cmd"] == ["sh", "-c", "echo hi"]  # type: ignore[index]


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_save_loads_into_our_store(rootless: Rootless, podman: Podman,
                                          imported: dict[str, object], tmp_path: Path,
                                          fmt: str) -> None:
    ours = tmp_path / "ours.tar"
    rootless("save", "-o", ours, "busybox:1")
    podman("load", "-i", ours)
    podman("tag", "docker.io/library/busybox:1", "registry.example:5000/team/bb:2")
    theirs = tmp_path / "theirs.tar"
    podman("save", "--format", fmt, "-o", theirs, "registry.example:5000/team/bb:2")
    rootless("rmi", "busybox:1")
    assert rootless("images", "-q").stdout == ""
    out = rootless("load", "-i", theirs).stdout
    assert "Loaded image: registry.example:5000/team/bb:2" in out
    [info] = json.loads(rootless("image", "inspect", "registry.example:5000/team/bb:2").stdout)
    # podman rewrites the config as an OCI config for oci-archive: a new image ID,
    # which must be the one the archive's manifest names.
    raw = _skopeo_inspect("--raw", f"{fmt}:{theirs}")
    assert info["Id"] == raw["config"]["digest"]  # type: ignore[index]
    if fmt == "docker-archive":
        assert info["Id"] == imported["Id"]
    assert info["RootFS"] == imported["RootFS"]
    assert info["Config"]["Cmd"] == ["sh", "-c", "echo hi"]
    # A second load of the same archive is idempotent.
    rootless("load", "-q", "-i", theirs)
    assert len(rootless("images", "-q").stdout.splitlines()) == 1


def test_load_refuses_broken_archives(rootless: Rootless, store_root: Path,
                                      imported: dict[str, object], tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    rootless("save", "-o", archive, "busybox:1")
    rootless("rmi", "busybox:1")
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:len(data) * 2 // 3])
    res = rootless("load", "-i", cut, check=False)
    assert res.returncode != 0 and "truncated" in res.stderr and "Traceback" not in res.stderr
    notar = tmp_path / "notar"
    notar.write_bytes(b"plain text\n" * 100)
    res = rootless("load", "-i", notar, check=False)
    assert res.returncode != 0 and "not a tar archive" in res.stderr
    assert rootless("images", "-q").stdout == ""
    assert list((store_root / "blobs" / "sha256").iterdir()) == []
    assert list((store_root / "tmp").iterdir()) == []
