"""The store is an OCI image layout other tools read as is."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rootless.store import Store
from tests.helpers import Rootless, which

pytestmark = pytest.mark.integration


def test_skopeo_and_umoci_read_the_store(rootless: Rootless, store_root: Path,
                                         busybox_tar: Path, tmp_path: Path) -> None:
    rootless("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:1")
    image = Store.open(store_root).resolve("busybox:1")
    which("skopeo")
    raw = subprocess.run(["skopeo", "inspect", "--raw",
                          f"oci:{store_root}:docker.io/library/busybox:1"],
                         capture_output=True, check=True, timeout=60).stdout
    assert raw == image.manifest_bytes
    info = json.loads(subprocess.run(
        ["skopeo", "inspect", f"oci:{store_root}:docker.io/library/busybox:1"],
        capture_output=True, check=True, text=True, timeout=60).stdout)
    assert info["Digest"] == image.manifest_digest

    which("umoci")
    listed = subprocess.run(["umoci", "ls", "--layout", str(store_root)],
                            capture_output=True, check=True, text=True, timeout=60).stdout
    assert listed.split() == ["docker.io/library/busybox:1"]
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--rootless", "--image",
                    f"{store_root}:docker.io/library/busybox:1", str(bundle)],
                   capture_output=True, check=True, timeout=120)
    assert (bundle / "rootfs" / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["sh"]
