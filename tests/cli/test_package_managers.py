"""Package managers inside `rootless run`, in both ID-mapping modes (issue 7).

The Debian root filesystem is made by mmdebstrap (variant ``apt``) once and
kept in the test user's cache, like tests/build's essential Debian. The
packages come from a local .deb: no network inside the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rootless.sandbox import IdMapping
from tests.helpers import Rootless, runner

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def debian_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rootless-test"
    cache.mkdir(parents=True, exist_ok=True)
    tar = cache / "mmdebstrap-bookworm-apt.tar"
    if not tar.exists():
        partial = cache / f"mmdebstrap-apt.{os.getpid()}.tar"
        proc = subprocess.run(["mmdebstrap", "--mode=unshare", "--variant=apt", "--format=tar",
                               "bookworm", str(partial)], capture_output=True, text=True,
                              timeout=900)
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            pytest.skip(f"mmdebstrap could not make a Debian rootfs: {proc.stderr[-300:]}")
        partial.rename(tar)
    root = tmp_path_factory.mktemp("debian") / "store"
    runner(root)("import", tar, "debian:apt")
    return root


@pytest.fixture(scope="module")
def local_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    base = tmp_path_factory.mktemp("deb")
    pkg = base / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "usr/bin").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text("Package: rlhello\nVersion: 1.0\nArchitecture: all\n"
                                        "Maintainer: t <t@example.com>\nDescription: test\n")
    (pkg / "usr/bin/rlhello").write_text("#!/bin/sh\necho rlhello\n")
    (pkg / "usr/bin/rlhello").chmod(0o755)
    out = base / "debs"
    out.mkdir()
    subprocess.run(["dpkg-deb", "-b", "--root-owner-group", str(pkg), str(out / "rlhello.deb")],
                   check=True, capture_output=True)
    return out


@pytest.mark.parametrize("mode", ["full", "single"])
def test_apt_dpkg_chown_in_debian(debian_store: Path, local_deb: Path, mode: str) -> None:
    if mode == "full" and not isinstance(IdMapping.full_or_reason(), IdMapping):
        pytest.skip("full ID mapping unavailable here")
    rl: Rootless = runner(debian_store)
    env = {"ROOTLESS_ID_MAPPING": mode}
    # apt's file method drops privileges to _apt (its sandbox user) first.
    out = rl("run", "--rm", "-v", f"{local_deb}:/debs:ro", "debian:apt", "sh", "-ec",
             "apt-get install -y /debs/rlhello.deb >/dev/null 2>&1 || "
             "{ apt-get install -y /debs/rlhello.deb; exit 1; }; rlhello; "
             "dpkg -r rlhello >/dev/null; dpkg -i /debs/rlhello.deb >/dev/null; "
             "dpkg -s rlhello | grep Status; "
             "mkdir -p /srv/a/b && touch /srv/a/b/f && chown -R 1234:1234 /srv/a && "
             "stat -c %u /srv/a/b/f", env=env)
    lines = out.stdout.split("\n")
    assert lines[0] == "rlhello"
    assert lines[1] == "Status: install ok installed"
    # full mode really changes the owner; single-ID mode only reports success
    assert lines[2] == ("1234" if mode == "full" else "0")
