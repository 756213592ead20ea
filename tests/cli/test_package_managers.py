"""Package managers inside `rootless run`, in both ID-mapping modes (issue 7).

The Debian root filesystem is made by mmdebstrap (variant ``apt``) once and
kept in the test user's cache (tests/helpers.py, shared with tests/build). The
packages come from a local .deb: no network inside the tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rootless.sandbox import IdMapping
from tests.helpers import Rootless, build_deb, runner

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def debian_store(tmp_path_factory: pytest.TempPathFactory, debian_tar: Path) -> Path:
    root = tmp_path_factory.mktemp("debian") / "store"
    runner(root)("import", debian_tar, "debian:apt")
    return root


@pytest.fixture(scope="module")
def local_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding rlhello.deb, which installs /usr/bin/rlhello."""
    base = tmp_path_factory.mktemp("deb")
    build_deb(base, "rlhello", "#!/bin/sh\necho rlhello\n")
    return base


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
