"""`rootless info`: mapping mode, storage driver, preconditions with remedies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.helpers import Rootless


def test_info_json_shape(rootless: Rootless) -> None:
    data = json.loads(rootless("info", "--format", "json").stdout)
    assert data["IdMapping"]["Mode"] in ("full", "single")
    assert data["StorageDriver"]["Name"] in ("overlay", "fuse", "vfs")
    names = [c["Name"] for c in data["Preconditions"]]
    assert names == ["user namespaces", "outer user namespace", "newuidmap", "newgidmap",
                     "/etc/subuid", "/etc/subgid", "/dev/fuse"]
    assert data["Preconditions"][0]["Ok"] is True  # the tests need user namespaces
    for check in data["Preconditions"]:
        assert check["Ok"] or check["Remedy"]


def test_forced_single_mode_is_reported(rootless: Rootless) -> None:
    data = json.loads(rootless("info", "--format", "json",
                               env={"ROOTLESS_ID_MAPPING": "single"}).stdout)
    assert data["IdMapping"]["Mode"] == "single"
    assert "chown" in data["IdMapping"]["Detail"]


def test_missing_newuidmap_gives_the_remedy(rootless: Rootless, tmp_path: Path) -> None:
    # A PATH with rootless and python but without the uidmap helpers.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("rootless", "python"):
        found = shutil.which(tool)
        assert found is not None
        os.symlink(found, bin_dir / tool)
    result = rootless("info", env={"PATH": str(bin_dir)})
    assert " ID mapping: single" in result.stdout
    assert "[FAIL] newuidmap: not installed" in result.stdout
    assert "remedy: sudo apt-get install uidmap" in result.stdout


def test_unshare_runs_as_mapped_root(rootless: Rootless) -> None:
    out = rootless("unshare", "sh", "-c", "id -u; cat /proc/self/uid_map").stdout.splitlines()
    assert out[0] == "0"
    assert out[1].split() == ["0", str(os.geteuid()), "1"]
    assert rootless("unshare", "sh", "-c", "exit 4", check=False).returncode == 4
    missing = rootless("unshare", "no-such-program", check=False)
    assert missing.returncode == 127 and "executable file not found" in missing.stderr
