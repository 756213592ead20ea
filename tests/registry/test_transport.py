"""Insecure-registry rules, certs.d CAs, and TLS against a real docker-registry."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from rootless.registry.transport import is_local_host, rate_limit_error, tls_policy
from tests.helpers import Rootless
from tests.registry.conftest import SeedImage
from tests.registry.servers import Registry, self_signed, start_registry


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1", "127.1.2.3:80",
                                  "[::1]:5000", "::1"])
def test_loopback_hosts_are_local(host: str) -> None:
    assert is_local_host(host)


@pytest.mark.parametrize("host", ["docker.io", "10.0.0.1:5000", "localhost.example", "[::2]"])
def test_other_hosts_are_not_local(host: str) -> None:
    assert not is_local_host(host)


def test_tls_policy_rules(isolated_config: Path, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert tls_policy("registry.example").verify is True
    assert not tls_policy("registry.example").allow_http
    assert tls_policy("127.0.0.1:5000").verify is False
    assert tls_policy("127.0.0.1:5000").allow_http
    assert tls_policy("127.0.0.1:5000", tls_verify=True).verify is True
    assert tls_policy("registry.example", tls_verify=False).allow_http

    settings = tmp_path / "xdg-config" / "rootless"
    settings.mkdir(parents=True)
    (settings / "registries.json").write_text(json.dumps(
        {"insecure-registries": ["registry.example"]}))
    assert tls_policy("registry.example").allow_http
    monkeypatch.setenv("ROOTLESS_INSECURE_REGISTRIES", "other.example:5000")
    assert tls_policy("other.example:5000").verify is False

    certs = settings / "certs.d" / "secure.example"
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_text("x")
    (certs / "client.cert").write_text("x")
    (certs / "client.key").write_text("x")
    policy = tls_policy("secure.example")
    assert policy.verify == str(certs / "ca.crt")
    assert policy.client_cert == (str(certs / "client.cert"), str(certs / "client.key"))


def test_rate_limit_message_names_the_limits() -> None:
    resp = requests.Response()
    resp.status_code = 429
    resp.headers["ratelimit-limit"] = "100;w=21600"
    resp.headers["ratelimit-remaining"] = "0;w=21600"
    err = rate_limit_error("docker.io", resp)
    assert str(err) == ("docker.io: too many requests: pull rate limit reached "
                        "(limit 100 per 6h, remaining 0 per 6h)")
    assert err.hint is not None and "rootless login docker.io" in err.hint


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    workdir = tmp_path_factory.mktemp("registry-tls")
    cert, key = self_signed(workdir, "registry", san="IP:127.0.0.1")
    reg = start_registry(workdir, tls=(cert, key))
    yield reg
    reg.stop()


@pytest.mark.integration
def test_tls_registry_with_and_without_its_ca(
        tls_registry: Registry, rootless: Rootless, store_root: Path, tmp_path: Path,
        rootless_at: Callable[[Path], Rootless], seed_image: SeedImage) -> None:
    ref = f"{tls_registry.host}/tls/busybox:1"
    digest = seed_image(store_root, ref)
    # Loopback: HTTPS without verification, as Docker does for localhost.
    rootless("push", ref)
    refused = rootless_at(tmp_path / "a")("pull", "--tls-verify=true", ref, check=False)
    assert refused.returncode != 0
    assert "TLS failure" in refused.stderr
    assert "certs.d" in refused.stderr
    assert "Traceback" not in refused.stderr

    certs = tmp_path / "xdg-config" / "rootless" / "certs.d" / tls_registry.host
    certs.mkdir(parents=True)
    shutil.copy(tls_registry.workdir / "registry.crt", certs / "ca.crt")
    pulled = rootless_at(tmp_path / "b")("pull", "--tls-verify=true", ref)
    assert f"Digest: {digest}" in pulled.stdout
    assert "InsecureRequestWarning" not in pulled.stderr


def test_docker_hub_api_host_and_auth_scope(isolated_config: Path) -> None:
    from rootless.registry.client import RegistryClient
    from rootless.registry.transport import api_host

    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("quay.io") == "quay.io"
    from rootless.registry.credentials import Credentials

    client = RegistryClient("docker.io", credentials=Credentials("u", "p"))
    assert client.transport.policy.verify is True and not client.transport.policy.allow_http
    client.auth._basic = True  # as after a Basic challenge
    hub = client.auth(requests.Request("GET", "https://registry-1.docker.io/v2/").prepare())
    assert hub.headers["Authorization"].startswith("Basic ")
    cdn = client.auth(requests.Request("GET", "https://cdn.example/blob").prepare())
    assert "Authorization" not in cdn.headers  # redirects and foreign URLs get nothing


def test_errors_name_the_reference() -> None:
    from rootless.errors import AuthenticationError
    from rootless.registry.transport import about

    err = about(AuthenticationError("docker.io: authentication required", status=401,
                                    hint="rootless login docker.io"),
                "docker.io", "busybox:latest")
    assert isinstance(err, AuthenticationError)
    assert str(err) == "busybox:latest: authentication required"
    assert err.status == 401 and err.hint == "rootless login docker.io"
