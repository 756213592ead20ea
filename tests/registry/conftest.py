"""Fixtures for registry tests: real registries on 127.0.0.1 and images to push."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.registry.servers import (
    Faults,
    FaultyProxy,
    Registry,
    TokenServer,
    htpasswd_auth,
    start_registry,
)

USERS = {"alice": "wonderland", "bob": "builder"}


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Credentials and rootless settings in a temp dir, never the user's real ones."""
    docker_config = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("ROOTLESS_INSECURE_REGISTRIES", raising=False)
    return docker_config


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry without auth."""
    reg = start_registry(tmp_path_factory.mktemp("registry-open"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry with htpasswd (bcrypt) basic auth; users in USERS."""
    workdir = tmp_path_factory.mktemp("registry-basic")
    reg = start_registry(workdir, auth=htpasswd_auth(workdir, USERS))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(USERS, tmp_path_factory.mktemp("token-server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory,
                   token_server: TokenServer) -> Iterator[Registry]:
    """docker-registry with token auth (the Docker Hub flow) against ``token_server``."""
    reg = start_registry(tmp_path_factory.mktemp("registry-token"),
                         auth=token_server.registry_auth())
    yield reg
    reg.stop()


@pytest.fixture
def faulty(registry: Registry) -> Iterator[Callable[[Faults], FaultyProxy]]:
    """Start a fault-injecting proxy in front of the open registry."""
    proxies: list[FaultyProxy] = []

    def start(faults: Faults) -> FaultyProxy:
        proxy = FaultyProxy(registry.host, faults)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


SeedImage = Callable[..., str]


@pytest.fixture
def seed_image(busybox_tar: Path) -> SeedImage:
    """Put a busybox image (plus optional extra layers) into a store, tagged; returns its
    manifest digest."""

    def seed(root: Path, ref: str, *, arch: str = "amd64", extra_layers: int = 0,
             variant: str | None = None, layer_bytes: bytes = b"") -> str:
        import io
        import tarfile

        from rootless.reference import ImageReference
        from rootless.store import Store

        store = Store.open(root)
        with open(busybox_tar, "rb") as f:
            layers = [store.put_layer(f)]
        for n in range(extra_layers):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                data = layer_bytes or f"layer {n} of {ref}\n".encode()
                info = tarfile.TarInfo(f"extra-{n}.txt")
                info.size = len(data)
                info.mtime = 1700000000
                tar.addfile(info, io.BytesIO(data))
            buf.seek(0)
            layers.append(store.put_layer(buf))
        config: dict[str, object] = {
            "architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
            "created": "2026-01-01T00:00:00Z",
        }
        if variant:
            config["variant"] = variant
        image = store.commit_image(config, layers, [ImageReference.parse(ref)])
        return str(image.manifest_digest)

    return seed


def store_state(root: Path) -> dict[str, object]:
    """What a failed pull must not have changed: tags, blobs, leftover temp files."""
    index = json.loads((root / "index.json").read_text()) if (root / "index.json").exists() \
        else {"manifests": []}
    blobs = sorted(p.name for p in (root / "blobs" / "sha256").glob("*")) \
        if (root / "blobs").exists() else []
    tmp = sorted(p.name for p in (root / "tmp").glob("*")) if (root / "tmp").exists() else []
    return {"index": index["manifests"], "blobs": blobs, "tmp": tmp}
