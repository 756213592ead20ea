"""Hostile and broken registries: a real docker-registry behind a fault-injecting proxy.

Each failure is either survived (resume, retry) or reported as one line naming
the reference, with nothing partial left in the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.helpers import Rootless
from tests.registry.conftest import SeedImage, store_state
from tests.registry.servers import Faults, FaultyProxy, Registry

pytestmark = pytest.mark.integration

Faulty = Callable[[Faults], FaultyProxy]


@pytest.fixture
def pushed(registry: Registry, rootless: Rootless, store_root: Path,
           seed_image: SeedImage, request: pytest.FixtureRequest) -> tuple[str, str]:
    """An image in the open registry: (repository path, manifest digest)."""
    import re

    repo = "hostile/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50].strip("-")
    digest = seed_image(store_root, f"{registry.host}/{repo}:1", extra_layers=1)
    rootless("push", f"{registry.host}/{repo}:1")
    return repo, digest


def _one_line_error(stderr: str, ref: str) -> None:
    lines = stderr.strip().splitlines()
    assert lines, "no error message"
    assert lines[0].startswith(f"rootless: {ref}"), stderr
    assert "Traceback" not in stderr
    assert len([x for x in lines if not x.startswith("hint:")]) == 1, stderr


def test_dropped_connection_mid_blob_resumes_with_range(
        pushed: tuple[str, str], faulty: Faulty, tmp_path: Path,
        rootless_at: Callable[[Path], Rootless]) -> None:
    repo, digest = pushed
    faults = Faults(drop_blob_after=50_000, drops=2)
    proxy = faulty(faults)
    ref = f"{proxy.host}/{repo}:1"
    result = rootless_at(tmp_path / "other")("pull", ref)
    assert f"Digest: {digest}" in result.stdout
    assert faults.drops == 0
    assert any("bytes=50000-" in line for line in faults.seen), faults.seen
    state = store_state(tmp_path / "other")
    assert state["tmp"] == []


def test_wrong_digest_is_reported_and_nothing_enters_the_store(
        pushed: tuple[str, str], faulty: Faulty, tmp_path: Path,
        rootless_at: Callable[[Path], Rootless]) -> None:
    repo, _ = pushed
    proxy = faulty(Faults(corrupt_blobs=True))
    ref = f"{proxy.host}/{repo}:1"
    root = tmp_path / "other"
    result = rootless_at(root)("pull", ref, check=False)
    assert result.returncode != 0
    assert "digest mismatch" in result.stderr
    _one_line_error(result.stderr, ref)
    state = store_state(root)
    assert state == {"index": [], "blobs": [], "tmp": []}


def test_transient_500s_are_retried(pushed: tuple[str, str], faulty: Faulty, tmp_path: Path,
                                    rootless_at: Callable[[Path], Rootless]) -> None:
    repo, digest = pushed
    faults = Faults(errors_500=2)
    proxy = faulty(faults)
    result = rootless_at(tmp_path / "other")("pull", f"{proxy.host}/{repo}:1")
    assert f"Digest: {digest}" in result.stdout
    assert faults.errors_500 == 0


def test_a_registry_that_keeps_failing_is_reported(
        pushed: tuple[str, str], faulty: Faulty, tmp_path: Path,
        rootless_at: Callable[[Path], Rootless]) -> None:
    repo, _ = pushed
    proxy = faulty(Faults(errors_500=1000))
    ref = f"{proxy.host}/{repo}:1"
    root = tmp_path / "other"
    result = rootless_at(root)("pull", ref, check=False,
                               env={"ROOTLESS_REGISTRY_RETRIES": "1"})
    assert result.returncode != 0
    assert "500" in result.stderr
    _one_line_error(result.stderr, ref)
    state = store_state(root)
    assert state["index"] == [] and state["tmp"] == []


def test_rate_limit_names_the_limit_and_debug_shows_remaining(
        pushed: tuple[str, str], faulty: Faulty, tmp_path: Path,
        rootless_at: Callable[[Path], Rootless]) -> None:
    repo, _ = pushed
    proxy = faulty(Faults(status_429=True))
    ref = f"{proxy.host}/{repo}:1"
    result = rootless_at(tmp_path / "other")("--debug", "pull", ref, check=False)
    assert result.returncode != 0
    assert "too many requests" in result.stderr
    assert "limit 100 per 6h, remaining 0 per 6h" in result.stderr
    assert "Traceback" not in result.stderr


def test_manifest_with_a_wrong_digest_is_refused(
        pushed: tuple[str, str], faulty: Faulty, tmp_path: Path,
        rootless_at: Callable[[Path], Rootless]) -> None:
    repo, _ = pushed
    proxy = faulty(Faults(corrupt_manifests=True))
    ref = f"{proxy.host}/{repo}:1"
    root = tmp_path / "other"
    result = rootless_at(root)("pull", ref, check=False)
    assert result.returncode != 0
    assert "manifest digest mismatch" in result.stderr
    _one_line_error(result.stderr, ref)
    assert store_state(root) == {"index": [], "blobs": [], "tmp": []}


def test_push_survives_upload_errors(registry: Registry, faulty: Faulty, rootless: Rootless,
                                     store_root: Path, seed_image: SeedImage) -> None:
    faults = Faults(errors_500=2, error_paths="/blobs/uploads/")
    proxy = faulty(faults)
    ref = f"{proxy.host}/hostile/upload:1"
    digest = seed_image(store_root, ref, extra_layers=1)
    result = rootless("push", ref)
    assert f"1: digest: {digest}" in result.stdout
    assert faults.errors_500 == 0
    assert requests.head(f"{registry.url}/v2/hostile/upload/manifests/1", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=10
        ).headers["Docker-Content-Digest"] == digest


def test_debug_output_never_shows_secrets(basic_registry: Registry, rootless: Rootless,
                                          store_root: Path, seed_image: SeedImage) -> None:
    from tests.registry.conftest import USERS

    ref = f"{basic_registry.host}/debug/busybox:1"
    seed_image(store_root, ref)
    rootless("login", "-u", "alice", "--password-stdin", basic_registry.host,
             input=USERS["alice"])
    result = rootless("--debug", "push", ref)
    assert "PUT" in result.stderr  # requests are logged ...
    import base64

    secret = base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
    for text in (USERS["alice"], secret, "_state="):
        assert text not in result.stdout + result.stderr  # ... without credentials


@pytest.mark.parametrize("faults", [Faults(hide_head_digest=True),
                                    Faults(refuse_list_accept=True)],
                         ids=["no-digest-on-head", "404-for-list-accept"])
def test_awkward_registries_still_work(pushed: tuple[str, str], faulty: Faulty, tmp_path: Path,
                                       rootless_at: Callable[[Path], Rootless],
                                       faults: Faults) -> None:
    repo, digest = pushed
    proxy = faulty(faults)
    result = rootless_at(tmp_path / "other")("pull", f"{proxy.host}/{repo}:1")
    assert f"Digest: {digest}" in result.stdout


def test_interrupted_pull_leaves_nothing_partial(
        pushed: tuple[str, str], faulty: Faulty, tmp_path: Path) -> None:
    import signal
    import subprocess

    from tests.registry.servers import wait_until

    repo, _ = pushed
    proxy = faulty(Faults(slow_blobs=0.05))
    root = tmp_path / "other"
    proc = subprocess.Popen(["rootless", "--root", str(root), "pull", f"{proxy.host}/{repo}:1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Interrupt once a layer download is under way (its temp file exists).
        wait_until(lambda: any((root / "tmp").glob("blob-*")), "a blob download",
                   deadline=60)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert b"Traceback" not in stderr
    state = store_state(root)
    assert state["tmp"] == [] and state["index"] == []
