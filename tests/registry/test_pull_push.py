"""Push and pull through the real CLI against Debian's docker-registry on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.helpers import Rootless, which
from tests.registry.conftest import USERS, SeedImage
from tests.registry.servers import Registry, TokenServer

pytestmark = pytest.mark.integration


def manifest_digest(registry: Registry, repo: str, tag: str) -> str:
    resp = requests.head(f"{registry.url}/v2/{repo}/manifests/{tag}", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json, "
                  "application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.oci.image.index.v1+json"}, timeout=10)
    assert resp.status_code == 200, resp.status_code
    return resp.headers["Docker-Content-Digest"]


def test_push_then_pull_into_an_empty_store_keeps_the_digest(
        registry: Registry, rootless: Rootless, store_root: Path, tmp_path: Path,
        rootless_at: Callable[[Path], Rootless], seed_image: SeedImage) -> None:
    ref = f"{registry.host}/roundtrip/busybox:1.0"
    digest = seed_image(store_root, ref, extra_layers=2)
    pushed = rootless("push", ref)
    assert f"1.0: digest: {digest}" in pushed.stdout
    assert manifest_digest(registry, "roundtrip/busybox", "1.0") == digest
    again = rootless("push", ref)
    assert again.stdout.count("Layer already exists") == 4  # 3 layers + config

    other = rootless_at(tmp_path / "other")
    pulled = other("pull", ref)
    assert f"Digest: {digest}" in pulled.stdout
    assert f"Status: Downloaded newer image for {ref}" in pulled.stdout
    from rootless.store import Store

    image = Store.open(tmp_path / "other").resolve(ref)
    assert image.manifest_digest == digest
    second = other("pull", ref)
    assert second.stdout.count("Already exists") == 3
    assert f"Status: Image is up to date for {ref}" in second.stdout


def test_imported_image_round_trips_through_the_registry(
        registry: Registry, rootless: Rootless, tmp_path: Path, busybox_tar: Path,
        rootless_at: Callable[[Path], Rootless]) -> None:
    ref = f"{registry.host}/imported/busybox:1"
    rootless("import", busybox_tar, ref)
    local = json.loads(rootless("image", "inspect", ref).stdout)[0]
    rootless("push", ref)
    other = rootless_at(tmp_path / "other")
    other("pull", ref)
    pulled = json.loads(other("image", "inspect", ref).stdout)[0]
    assert pulled["Id"] == local["Id"]
    assert pulled["RepoDigests"] == local["RepoDigests"]
    assert len(pulled["RepoDigests"]) == 1


def test_pull_by_digest_and_quiet(registry: Registry, rootless: Rootless, store_root: Path,
                                  tmp_path: Path, rootless_at: Callable[[Path], Rootless],
                                  seed_image: SeedImage) -> None:
    ref = f"{registry.host}/bydigest/busybox:latest"
    digest = seed_image(store_root, ref)
    rootless("push", "-q", ref)
    other = rootless_at(tmp_path / "other")
    result = other("pull", "-q", f"{registry.host}/bydigest/busybox@{digest}")
    assert result.stdout.strip() == f"{registry.host}/bydigest/busybox@{digest}"
    from rootless.store import Store

    assert Store.open(tmp_path / "other").resolve(
        f"{registry.host}/bydigest/busybox@{digest}").manifest_digest == digest


def test_pull_all_tags(registry: Registry, rootless: Rootless, store_root: Path, tmp_path: Path,
                       rootless_at: Callable[[Path], Rootless], seed_image: SeedImage) -> None:
    for tag in ("a", "b"):
        ref = f"{registry.host}/alltags/busybox:{tag}"
        seed_image(store_root, ref, extra_layers=1, layer_bytes=tag.encode())
        rootless("push", ref)
    other = rootless_at(tmp_path / "other")
    other("pull", "--all-tags", f"{registry.host}/alltags/busybox")
    from rootless.store import Store

    store = Store.open(tmp_path / "other")
    for tag in ("a", "b"):
        assert store.resolve(f"{registry.host}/alltags/busybox:{tag}")


def test_unknown_image_and_tag_are_one_line_errors(registry: Registry, rootless: Rootless,
                                                   store_root: Path, seed_image: SeedImage
                                                   ) -> None:
    missing = rootless("pull", f"{registry.host}/nothing/here:1", check=False)
    assert missing.returncode != 0
    lines = missing.stderr.strip().splitlines()
    assert lines[0].startswith(f"rootless: {registry.host}/nothing/here:1: ")
    assert "Traceback" not in missing.stderr
    ref = f"{registry.host}/tagless/busybox:1"
    seed_image(store_root, ref)
    rootless("push", ref)
    bad_tag = rootless("pull", f"{registry.host}/tagless/busybox:nope", check=False)
    assert bad_tag.returncode != 0
    assert "manifest unknown" in bad_tag.stderr
    assert "Traceback" not in bad_tag.stderr


def test_registry_down_is_reported(rootless: Rootless) -> None:
    from tests.registry.servers import free_port

    result = rootless("pull", f"127.0.0.1:{free_port()}/down/image:1", check=False,
                      env={"ROOTLESS_REGISTRY_RETRIES": "0"})
    assert result.returncode != 0
    assert "unreachable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- basic auth -----------------------------------------------------------------------


def test_basic_auth_login_push_pull_logout(basic_registry: Registry, rootless: Rootless,
                                           store_root: Path, tmp_path: Path,
                                           rootless_at: Callable[[Path], Rootless],
                                           seed_image: SeedImage, isolated_config: Path
                                           ) -> None:
    ref = f"{basic_registry.host}/private/busybox:1"
    digest = seed_image(store_root, ref)
    denied = rootless("push", ref, check=False)
    assert denied.returncode != 0
    assert "authentication required" in denied.stderr
    assert "rootless login" in denied.stderr

    wrong = rootless("login", "-u", "alice", "--password-stdin", basic_registry.host,
                     input="nope\n", check=False)
    assert wrong.returncode != 0
    assert "incorrect username or password" in wrong.stderr

    ok = rootless("login", "-u", "alice", "--password-stdin", basic_registry.host,
                  input=USERS["alice"] + "\n")
    assert "Login Succeeded" in ok.stdout
    assert USERS["alice"] not in ok.stdout + ok.stderr
    config_file = isolated_config / "config.json"
    assert config_file.stat().st_mode & 0o777 == 0o600
    assert basic_registry.host in json.loads(config_file.read_text())["auths"]

    rootless("push", ref)
    other = rootless_at(tmp_path / "other")
    assert f"Digest: {digest}" in other("pull", ref).stdout

    assert "Removing login credentials" in rootless("logout", basic_registry.host).stdout
    after = rootless_at(tmp_path / "third")("pull", ref, check=False)
    assert after.returncode != 0
    assert "authentication required" in after.stderr


# -- token auth (the Docker Hub flow) -----------------------------------------------


def test_token_auth_anonymous_pull_and_authenticated_push(
        token_registry: Registry, token_server: TokenServer, rootless: Rootless,
        store_root: Path, tmp_path: Path, rootless_at: Callable[[Path], Rootless],
        seed_image: SeedImage) -> None:
    ref = f"{token_registry.host}/public/busybox:1"
    digest = seed_image(store_root, ref, extra_layers=1)
    anonymous_push = rootless("push", ref, check=False)
    assert anonymous_push.returncode != 0
    assert "Traceback" not in anonymous_push.stderr
    assert "authentication required" in anonymous_push.stderr

    rootless("login", "-u", "bob", "-p", USERS["bob"], token_registry.host)
    token_server.requests.clear()
    rootless("push", ref)
    assert ("bob", ["repository:public/busybox:pull,push"]) in token_server.requests
    # One token covers the whole push: the scope is asked for before the first request.
    assert len(token_server.requests) == 1

    rootless("logout", token_registry.host)
    token_server.requests.clear()
    pulled = rootless_at(tmp_path / "other")("pull", ref)
    assert f"Digest: {digest}" in pulled.stdout
    assert token_server.requests == [(None, ["repository:public/busybox:pull"])]

    private = f"{token_registry.host}/private/busybox:1"
    seed_image(store_root, private)
    rootless("login", "-u", "bob", "-p", USERS["bob"], token_registry.host)
    rootless("push", private)
    rootless("logout", token_registry.host)
    refused = rootless_at(tmp_path / "third")("pull", private, check=False)
    assert refused.returncode != 0
    assert "authentication required" in refused.stderr


def test_token_login_with_a_wrong_password_fails(token_registry: Registry,
                                                 rootless: Rootless) -> None:
    result = rootless("login", "-u", "bob", "--password-stdin", token_registry.host,
                      input="wrong\n", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "bob" in result.stderr


# -- interoperability with skopeo --------------------------------------------------------


def test_skopeo_reads_what_we_push(registry: Registry, rootless: Rootless, store_root: Path,
                                   seed_image: SeedImage) -> None:
    skopeo = which("skopeo")
    ref = f"{registry.host}/interop/ours:1"
    digest = seed_image(store_root, ref, extra_layers=1)
    rootless("push", ref)
    out = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["Digest"] == digest
    assert len(info["Layers"]) == 2


def test_we_read_what_skopeo_pushes(registry: Registry, tmp_path: Path, store_root: Path,
                                    rootless_at: Callable[[Path], Rootless],
                                    seed_image: SeedImage) -> None:
    skopeo = which("skopeo")
    # Our store is an OCI layout; skopeo copies one image of it to the registry.
    source = tmp_path / "layout"
    seed_image(source, "localhost/skopeo-source:1")
    from rootless.store import Store

    index = json.loads((source / "index.json").read_text())
    tagged = [m for m in index["manifests"] if m.get("annotations")]
    name = tagged[0]["annotations"]["org.opencontainers.image.ref.name"]
    dest = f"{registry.host}/interop/skopeo:1"
    subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"oci:{source}:{name}",
                    f"docker://{dest}"], capture_output=True, text=True, check=True)
    out = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{dest}"],
                         capture_output=True, text=True, check=True)
    digest = json.loads(out.stdout)["Digest"]
    other = rootless_at(tmp_path / "other")
    assert f"Digest: {digest}" in other("pull", dest).stdout
    store = Store.open(tmp_path / "other")
    assert store.resolve(dest).manifest_digest == digest
    # Pulled, then pushed back elsewhere: the manifest bytes, hence the digest, are kept.
    from rootless.reference import ImageReference

    back = f"{registry.host}/interop/pushed-back:1"
    store.tag(store.resolve(dest), ImageReference.parse(back))
    assert f"1: digest: {digest}" in other("push", back).stdout
    assert manifest_digest(registry, "interop/pushed-back", "1") == digest


# -- manifest lists / OCI indexes ------------------------------------------------------


def _put_index(registry: Registry, repo: str, tag: str, entries: list[tuple[str, dict[str, str]]],
               media_type: str) -> str:
    manifests = []
    for digest, platform in entries:
        head = requests.head(f"{registry.url}/v2/{repo}/manifests/{digest}", headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=10)
        assert head.status_code == 200
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "digest": digest, "size": int(head.headers["Content-Length"]),
                          "platform": platform})
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type,
                       "manifests": manifests}).encode()
    resp = requests.put(f"{registry.url}/v2/{repo}/manifests/{tag}", data=body,
                        headers={"Content-Type": media_type}, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.headers["Docker-Content-Digest"]


@pytest.mark.parametrize("media_type", ["application/vnd.oci.image.index.v1+json",
                                        "application/vnd.docker.distribution.manifest.list.v2+json"])
def test_multi_arch_index_pulls_the_right_platform(
        registry: Registry, rootless: Rootless, store_root: Path, tmp_path: Path,
        rootless_at: Callable[[Path], Rootless], seed_image: SeedImage, media_type: str) -> None:
    repo = "multi/busybox" + ("-list" if "docker" in media_type else "")
    digests = {}
    for arch, variant in (("amd64", None), ("arm64", "v8"), ("arm", "v6"), ("arm", "v7")):
        name = arch + (variant or "")
        digests[name] = seed_image(store_root, f"{registry.host}/{repo}:{name}", arch=arch,
                                   variant=variant, extra_layers=1, layer_bytes=name.encode())
        rootless("push", f"{registry.host}/{repo}:{name}")
    index_digest = _put_index(registry, repo, "latest", [
        (digests["amd64"], {"os": "linux", "architecture": "amd64"}),
        (digests["arm64v8"], {"os": "linux", "architecture": "arm64", "variant": "v8"}),
        (digests["armv6"], {"os": "linux", "architecture": "arm", "variant": "v6"}),
        (digests["armv7"], {"os": "linux", "architecture": "arm", "variant": "v7"}),
    ], media_type)
    from rootless.store import Store

    ref = f"{registry.host}/{repo}:latest"
    cases = [("linux/arm64", "arm64v8"), ("linux/arm/v7", "armv7"), ("linux/arm/v6", "armv6"),
             ("linux/amd64", "amd64")]
    for n, (platform, expected) in enumerate(cases):
        root = tmp_path / f"pull-{n}"
        out = rootless_at(root)("pull", "--platform", platform, ref)
        assert f"Digest: {index_digest}" in out.stdout
        assert Store.open(root).resolve(ref).manifest_digest == digests[expected], platform
    missing = rootless_at(tmp_path / "none")("pull", "--platform", "linux/s390x", ref,
                                             check=False)
    assert missing.returncode != 0
    assert "no matching manifest for linux/s390x" in missing.stderr


def test_single_manifest_of_another_platform_warns(
        registry: Registry, rootless: Rootless, store_root: Path, tmp_path: Path,
        rootless_at: Callable[[Path], Rootless], seed_image: SeedImage) -> None:
    ref = f"{registry.host}/single/s390x:1"
    seed_image(store_root, ref, arch="s390x")
    rootless("push", ref)
    result = rootless_at(tmp_path / "other")("pull", ref)
    assert "WARNING: The requested image's platform (linux/s390x) does not match" \
        in result.stderr
    asked = rootless_at(tmp_path / "asked")("pull", "--platform", "linux/arm64", ref)
    assert "is linux/s390x, not the requested platform linux/arm64" in asked.stderr


def test_chunked_upload_keeps_the_digest(registry: Registry, store_root: Path, tmp_path: Path,
                                         seed_image: SeedImage) -> None:
    from rootless.registry.pull import pull_image
    from rootless.registry.push import push_image
    from rootless.store import Store

    ref = f"{registry.host}/chunked/busybox:1"
    digest = seed_image(store_root, ref, extra_layers=1)
    result = push_image(Store.open(store_root), ref, chunk_size=256 * 1024)
    assert result.digest == digest
    image = pull_image(Store.open(tmp_path / "other"), ref)
    assert image.manifest_digest == digest


def test_cross_repository_mount(registry: Registry, rootless: Rootless, store_root: Path,
                                seed_image: SeedImage) -> None:
    first = f"{registry.host}/mount/source:1"
    seed_image(store_root, first, extra_layers=1)
    rootless("push", first)
    second = f"{registry.host}/mount/target:1"
    from rootless.reference import ImageReference
    from rootless.store import Store

    store = Store.open(store_root)
    store.tag(store.resolve(first), ImageReference.parse(second))
    out = rootless("push", second).stdout
    assert out.count("Mounted from mount/source") == 3  # 2 layers + config


def test_identity_token_from_config_json(token_registry: Registry, token_server: TokenServer,
                                         rootless: Rootless, store_root: Path,
                                         seed_image: SeedImage, isolated_config: Path) -> None:
    isolated_config.mkdir(parents=True, exist_ok=True)
    (isolated_config / "config.json").write_text(json.dumps(
        {"auths": {token_registry.host: {"identitytoken": "refresh-alice"}}}))
    ref = f"{token_registry.host}/sso/busybox:1"
    digest = seed_image(store_root, ref)
    token_server.requests.clear()
    assert f"1: digest: {digest}" in rootless("push", ref).stdout
    assert token_server.requests == [("alice", ["repository:sso/busybox:pull,push"])]


def test_foreign_layer_is_fetched_from_its_url_and_not_pushed(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, store_root: Path,
        seed_image: SeedImage, rootless: Rootless,
        rootless_at: Callable[[Path], Rootless]) -> None:
    import functools
    from http.server import SimpleHTTPRequestHandler

    from rootless.reference import ImageReference
    from rootless.store import Store
    from tests.registry.servers import serve, start_registry

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    files = tmp_path / "cdn"
    files.mkdir()
    server = serve(functools.partial(Quiet, directory=str(files)))
    registry = start_registry(tmp_path_factory.mktemp("registry-foreign"), extra=(
        "validation:\n  manifests:\n    urls:\n      allow:\n        - ^http://127\\.0\\.0\\.1\n"))
    try:
        ref = f"{registry.host}/foreign/busybox:1"
        seed_image(store_root, ref, extra_layers=1)
        store = Store.open(store_root)
        image = store.resolve(ref)
        manifest = image.manifest
        foreign = manifest["layers"][1]
        url = f"http://127.0.0.1:{server.server_address[1]}/{foreign['digest'][7:]}"
        (files / foreign["digest"][7:]).write_bytes(store.read_blob(foreign["digest"]))
        foreign["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        foreign["urls"] = [url]
        data = json.dumps(manifest).encode()
        digest = str(store.add_manifest(data, [ImageReference.parse(ref)]).manifest_digest)

        pushed = rootless("push", ref)
        assert "Skipped foreign layer" in pushed.stdout
        blob = requests.head(f"{registry.url}/v2/foreign/busybox/blobs/{foreign['digest']}",
                             timeout=10)
        assert blob.status_code == 404  # the registry never got the foreign layer
        other = rootless_at(tmp_path / "other")
        assert f"Digest: {digest}" in other("pull", ref).stdout
        assert Store.open(tmp_path / "other").has_blob(foreign["digest"])
    finally:
        registry.stop()
        server.shutdown()
        server.server_close()


def test_pull_on_a_terminal_draws_layer_lines(registry: Registry, rootless: Rootless,
                                              store_root: Path, tmp_path: Path,
                                              seed_image: SeedImage) -> None:
    import os
    import pty

    ref = f"{registry.host}/tty/busybox:1"
    seed_image(store_root, ref, extra_layers=1)
    rootless("push", ref)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(["rootless", "--root", str(tmp_path / "other"), "pull", ref],
                                stdout=follower, stderr=subprocess.DEVNULL)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
    out = b"".join(chunks).decode(errors="replace")
    assert proc.wait(timeout=120) == 0, out
    assert "\x1b[" in out and "\x1b[2K" in out  # lines redrawn in place
    assert "Pull complete" in out
    assert "Status: Downloaded newer image for" in out
