"""Build every Dockerfile.examples/* with the real CLI, as an unprivileged user, and
check the result by running it."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest

from tests.build.buildhelp import (
    all_blobs,
    build,
    cached_steps,
    example,
    inspect,
    layer_tars,
    run_output,
)
from tests.helpers import Rootless, runner

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Path:
    """One store for the module, holding the offline `busybox` base image."""
    root = tmp_path_factory.mktemp("build-store") / "store"
    runner(root)("import", busybox_tar, "busybox")
    return root


@pytest.fixture
def rl(store: Path) -> Rootless:
    return runner(store)


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    return context


def test_metadata_only_changes_the_config(rl: Rootless, ctx: Path) -> None:
    base_layers = len(inspect(rl, "busybox")["RootFS"]["Layers"])  # type: ignore[index]
    image, _ = build(rl, ctx, "metadata", "-t", "ex-metadata", "--label", "from.cli=1")
    doc = inspect(rl, image)
    assert len(doc["RootFS"]["Layers"]) == base_layers  # type: ignore[index]
    config = doc["Config"]
    assert isinstance(config, dict)
    assert "APP_VERSION=1.2.3" in config["Env"] and "APP_HOME=/srv/app" in config["Env"]
    assert config["Labels"] == {"org.opencontainers.image.title": "metadata example",
                                "version": "1.2.3", "from.cli": "1"}
    assert set(config["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    assert config["WorkingDir"] == "/srv/app"
    assert config["User"] == "nobody"
    assert set(config["Volumes"]) == {"/data"}
    assert config["Entrypoint"] == ["/bin/echo"]
    assert config["Cmd"] == ["hello", "from", "metadata"]
    assert config["OnBuild"] == ["RUN echo triggered"]
    history = rl("history", "--no-trunc", "ex-metadata").stdout
    assert "ENV APP_VERSION=1.2.3 APP_HOME=/srv/app" in history
    assert run_output(rl, "ex-metadata") == "hello from metadata\n"


def test_onbuild_trigger_runs_in_the_child(rl: Rootless, ctx: Path) -> None:
    build(rl, ctx, "metadata", "-t", "ex-onbuild-base")
    (ctx / "Dockerfile").write_text("FROM ex-onbuild-base\nUSER root\n")
    res = rl("build", "--progress", "plain", "-t", "ex-onbuild-child", ctx)
    assert "triggered" in res.stderr
    child = inspect(rl, "ex-onbuild-child")["Config"]
    assert isinstance(child, dict) and not child.get("OnBuild")


def test_run_deletions_become_whiteouts(rl: Rootless, store: Path, ctx: Path) -> None:
    image, _ = build(rl, ctx, "whiteout", "-t", "ex-whiteout")
    last = layer_tars(store, image, rl)[-1].getnames()
    assert "bin/.wh.vi" in last and "work/.wh.gone.txt" in last
    assert "work/listing.txt" in last
    assert run_output(rl, "ex-whiteout") == "kept.txt\n"
    assert "vi" not in run_output(rl, "ex-whiteout", "ls", "/bin").split()


def _five_thousand_files(ctx: Path) -> int:
    """Make the context; return how many files .dockerignore leaves in it."""
    kept = 0
    for d in range(50):
        sub = ctx / "src" / f"pkg{d:02}"
        sub.mkdir(parents=True)
        for f in range(98):
            name = f"m{f:02}.log" if f % 10 == 0 else f"m{f:02}.py"
            (sub / name).write_text(f"{d}-{f}\n")
            kept += not name.endswith(".log")
    (ctx / "build").mkdir()
    for f in range(97):
        (ctx / "build" / f"obj{f}.o").write_text("x")
    (ctx / "build" / "keep.txt").write_text("kept\n")
    (ctx / "secret.key").write_text("hidden\n")
    (ctx / "README").write_text("readme\n")
    kept += 2  # build/keep.txt, README
    total = sum(len(files) for _, _, files in os.walk(ctx))
    assert total >= 5000
    return kept


def test_copy_of_a_large_context_honours_dockerignore(rl: Rootless, ctx: Path) -> None:
    kept = _five_thousand_files(ctx)
    build(rl, ctx, "dockerignore", "-t", "ex-ignore")
    assert run_output(rl, "ex-ignore").strip() == str(kept)
    listing = run_output(rl, "ex-ignore", "ls", "/ctx", "/ctx/build").split()
    assert "secret.key" not in listing and "keep.txt" in listing and "obj1.o" not in listing


def _payload_tar(mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"hello from the archive\n"
        info = tarfile.TarInfo("payload/hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw) if mode == "gz" else lzma.compress(raw)


def test_add_extracts_archives(rl: Rootless, ctx: Path) -> None:
    (ctx / "payload.tar.gz").write_bytes(_payload_tar("gz"))
    (ctx / "payload.tar.xz").write_bytes(_payload_tar("xz"))
    build(rl, ctx, "add-tar", "-t", "ex-add")
    assert run_output(rl, "ex-add") == "hello from the archive\n"
    assert run_output(rl, "ex-add", "cat", "/opt/xz/payload/hello.txt") == \
        "hello from the archive\n"
    assert run_output(rl, "ex-add", "ls", "/opt/copied").split() == ["payload.tar.gz"]


def test_copy_chown_resolves_names_in_the_image(rl: Rootless, store: Path, ctx: Path) -> None:
    (ctx / "owned.txt").write_text("mine\n")
    image, _ = build(rl, ctx, "chown", "-t", "ex-chown")
    layers = layer_tars(store, image, rl)
    by_name = {m.name: m for layer in layers[-3:-1] for m in layer.getmembers()}
    assert (by_name["home/daemon/owned.txt"].uid, by_name["home/daemon/owned.txt"].gid) == (1, 1)
    numeric = by_name["numeric/owned.txt"]
    assert (numeric.uid, numeric.gid, numeric.mode & 0o7777) == (1234, 5678, 0o640)


def full_mapping() -> dict[str, str]:
    """Environment for the full ID mapping: only there can a RUN see owners other than
    root (with one mapped ID, every other owner reads back as root)."""
    from rootless.sandbox.userns import IdMapping

    if not isinstance(IdMapping.full_or_reason(), IdMapping):
        pytest.skip("the full ID mapping is not available to this user")
    return {"ROOTLESS_ID_MAPPING": "full"}


def test_chown_seen_by_run(rl: Rootless, ctx: Path) -> None:
    # fuse: the overlay driver shows the on-disk owner of unpacked lowers, not the
    # owner recorded from the layer tar (a cowfs limitation, see the cowfs docs).
    env = {**full_mapping(), "ROOTLESS_STORAGE_DRIVER": "fuse"}
    (ctx / "owned.txt").write_text("mine\n")
    build(rl, ctx, "chown", "--no-cache", "-t", "ex-chown-run", env=env)
    assert run_output(rl, "ex-chown-run", env=env) == (
        "1:1 644 /home/daemon/owned.txt\n1234:5678 640 /numeric/owned.txt\n")


def test_multistage_target_builds_only_what_it_needs(rl: Rootless, ctx: Path) -> None:
    _, progress = build(rl, ctx, "multistage", "--target", "final", "-t", "ex-final")
    assert "never needed" not in progress and "[unused" not in progress
    assert run_output(rl, "ex-final") == "built by builder\n"
    assert "debug.txt" not in run_output(rl, "ex-final", "ls", "/").split()
    build(rl, ctx, "multistage", "-t", "ex-debug")
    assert run_output(rl, "ex-debug", "cat", "/debug.txt") == "debug tools\n"


def test_unknown_target_suggests_a_stage(rl: Rootless, ctx: Path) -> None:
    res = rl("build", "-f", example("multistage"), "--target", "finall", ctx, check=False)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "did you mean 'final'" in res.stderr


def test_heredocs(rl: Rootless, ctx: Path) -> None:
    build(rl, ctx, "heredoc", "-t", "ex-heredoc")
    assert run_output(rl, "ex-heredoc") == (
        "script ran for heredoc\ninterpreter ran .rootless-heredoc-script\nliteral $NAME\n"
        "inline file for heredoc\n")


def test_user_then_run(rl: Rootless, ctx: Path) -> None:
    env = full_mapping()
    build(rl, ctx, "user", "--no-cache", "-t", "ex-user", env=env)
    assert run_output(rl, "ex-user", env=env) == "1\n1\n1 /home/daemon/mine.txt\n"


def test_cache_hit_and_partial_invalidation(tmp_path: Path, busybox_tar: Path,
                                            ctx: Path) -> None:
    rl = runner(tmp_path / "cache-store")
    rl("import", busybox_tar, "busybox")
    (ctx / "a.txt").write_text("a1\n")
    (ctx / "b.txt").write_text("b1\n")
    first, progress = build(rl, ctx, "cache", "-t", "ex-cache")
    assert cached_steps(progress) == []
    stamp_a = run_output(rl, "ex-cache", "cat", "/stamp-a")
    again, progress = build(rl, ctx, "cache", "-t", "ex-cache")
    assert again == first  # same config, same layers: the same image
    assert len(cached_steps(progress)) == 4
    os.utime(ctx / "a.txt", (1, 1))  # a touched file is not a changed file
    (ctx / "b.txt").write_text("b2\n")
    third, progress = build(rl, ctx, "cache", "-t", "ex-cache")
    assert third != first
    assert [t.split("] ")[1] for t in cached_steps(progress)] == [
        "COPY a.txt /a.txt", "RUN cat /a.txt > /from-a.txt && date +%s%N > /stamp-a"]
    assert run_output(rl, "ex-cache") == "a1\nb2\n"
    assert run_output(rl, "ex-cache", "cat", "/stamp-a") == stamp_a
    _, progress = build(rl, ctx, "cache", "--no-cache")
    assert cached_steps(progress) == []
    pruned = rl("builder", "prune", "-a", "-f").stdout
    assert "Total" in pruned
    _, progress = build(rl, ctx, "cache")
    assert cached_steps(progress) == []


def test_secret_is_readable_but_never_stored(rl: Rootless, store: Path, ctx: Path,
                                             tmp_path: Path) -> None:
    secret_value = b"s3cr3t-value-7f1c2e"
    secret = tmp_path / "token.txt"
    secret.write_bytes(secret_value)
    build(rl, ctx, "secret", "-t", "ex-secret", "--secret", f"id=token,src={secret}")
    assert run_output(rl, "ex-secret").strip() == str(len(secret_value))
    assert run_output(rl, "ex-secret", "cat", "/env-seen.txt") == "seen\n"
    assert not any(secret_value in blob for blob in all_blobs(store))
    names = [n for layer in layer_tars(store, "ex-secret", rl) for n in layer.getnames()]
    assert not any(n.startswith("run/secrets") for n in names)
    history = rl("history", "--no-trunc", "ex-secret").stdout
    assert secret_value.decode() not in history


def test_missing_required_secret_is_a_clear_error(rl: Rootless, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN --mount=type=secret,id=x,required=true cat /run/secrets/x\n")
    res = rl("build", ctx, check=False)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "Dockerfile:2" in res.stderr and "secret 'x'" in res.stderr


def test_cache_mount_persists_between_builds(rl: Rootless, ctx: Path) -> None:
    build(rl, ctx, "cache-mount", "--build-arg", "BUILD_NO=1", "-t", "ex-cm1")
    build(rl, ctx, "cache-mount", "--build-arg", "BUILD_NO=2", "-t", "ex-cm2")
    first = int(run_output(rl, "ex-cm1").strip())
    assert int(run_output(rl, "ex-cm2").strip()) == first + 1
    # the mount point the sandbox made is not left in the layer
    assert "cache" not in run_output(rl, "ex-cm2", "ls", "/var").split()


def test_failing_run_reports_line_and_exit_code(rl: Rootless, ctx: Path) -> None:
    res = rl("build", "--progress", "plain", "-f", example("failing"), "-t", "ex-failing",
             ctx, check=False)
    assert res.returncode != 0
    assert "about to fail" in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "failing.Dockerfile:4" in last and "exit code: 3" in last and "RUN echo" in last
    assert "Traceback" not in res.stderr
    assert "ex-failing" not in rl("images").stdout
    again = rl("build", "--progress", "plain", "-f", example("failing"), ctx, check=False)
    assert cached_steps(again.stderr) == ['[2/4] RUN echo "first step works" > /ok.txt']


@pytest.mark.parametrize("name", ["escape", "escape-symlink"])
def test_context_escape_is_refused(rl: Rootless, tmp_path: Path, ctx: Path,
                                   name: str) -> None:
    (tmp_path / "outside.txt").write_text("do not copy\n")
    os.symlink("../outside.txt", ctx / "link-out")
    res = rl("build", "-f", example(name), ctx, check=False)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert f"{name}.Dockerfile:3" in res.stderr
    assert "outside the build context" in res.stderr


def test_reproducible_with_source_date_epoch(tmp_path: Path, busybox_tar: Path,
                                             ctx: Path) -> None:
    (ctx / "a.txt").write_text("a\n")
    (ctx / "b.txt").write_text("b\n")
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    ids = []
    for n in range(2):
        rl = runner(tmp_path / f"repro-{n}")
        rl("import", busybox_tar, "busybox", env=env)
        (ctx / "a.txt").touch()
        image, _ = build(rl, ctx, "whiteout", "--no-cache", env=env)
        ids.append(image)
    assert ids[0] == ids[1]


def test_context_from_stdin_tar_and_dockerfile_from_stdin(rl: Rootless, ctx: Path,
                                                          tmp_path: Path) -> None:
    (ctx / "hello.txt").write_text("from a tar\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /\nCMD [\"cat\", "
                                    "\"/hello.txt\"]\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(ctx, arcname=".")
    rl("build", "-t", "ex-stdin-tar", "-", input=buf.getvalue())
    assert run_output(rl, "ex-stdin-tar") == "from a tar\n"
    rl("build", "-t", "ex-stdin-df", "-f", "-", ctx,
       input="FROM busybox\nCOPY hello.txt /again.txt\n")
    assert run_output(rl, "ex-stdin-df", "cat", "/again.txt") == "from a tar\n"


def test_missing_base_image_names_it(rl: Rootless, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text("FROM localhost:1/not/here:v1\nRUN true\n")
    res = rl("build", ctx, check=False)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "localhost:1/not/here:v1" in res.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mapping", ["single", "full"])
def test_dpkg_install_in_debian(tmp_path: Path, debian_tar: Path, mapping: str) -> None:
    import shutil

    from rootless.sandbox.userns import IdMapping
    from tests.helpers import build_deb

    if mapping == "full" and not isinstance(IdMapping.full_or_reason(), IdMapping):
        pytest.skip("the full ID mapping is not available to this user")
    env = {"ROOTLESS_ID_MAPPING": mapping}
    rl = runner(tmp_path / "store")
    rl("import", debian_tar, "debian-min", env=env)
    ctx = tmp_path / "context"
    ctx.mkdir()
    build_deb(ctx, "hello-rootless", "#!/bin/sh\necho hello from a rootless-built package\n")
    shutil.rmtree(ctx / "hello-rootless-pkg")
    _, progress = build(rl, ctx, "dpkg", "-t", "ex-dpkg", env=env)
    assert "Setting up hello-rootless (1.0)" in progress
    assert run_output(rl, "ex-dpkg", env=env) == "hello from a rootless-built package\n"


def test_foreign_architecture_is_refused_before_run(rl: Rootless, busybox_tar: Path,
                                                    ctx: Path) -> None:
    if Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        pytest.skip("this host emulates arm64 through binfmt_misc")
    rl("import", "--platform", "linux/arm64", busybox_tar, "busybox-arm64")
    (ctx / "Dockerfile").write_text("FROM busybox-arm64\nRUN echo should-not-run\n")
    res = rl("build", "--progress", "plain", ctx, check=False)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "should-not-run\n" not in res.stderr.replace("RUN echo should-not-run", "")
    assert "Dockerfile:2" in res.stderr and "linux/arm64" in res.stderr
    assert "qemu" in res.stderr and "exec format error" not in res.stderr


def test_add_url_with_checksum(rl: Rootless, ctx: Path) -> None:
    import hashlib
    import http.server
    import threading

    body = b"downloaded content\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/files/data.txt"
        good = "sha256:" + hashlib.sha256(body).hexdigest()
        (ctx / "Dockerfile").write_text(
            f"FROM busybox\nADD --checksum={good} {url} /dl/\n")
        rl("build", "-t", "ex-url", ctx)
        assert run_output(rl, "ex-url", "cat", "/dl/data.txt") == body.decode()
        (ctx / "Dockerfile").write_text(
            f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url} /dl/\n")
        res = rl("build", ctx, check=False)
        assert res.returncode != 0 and "checksum mismatch" in res.stderr
        assert "Dockerfile:2" in res.stderr
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_run_mounts_bind_from_stage_and_context_and_tmpfs(rl: Rootless, ctx: Path) -> None:
    (ctx / "conf.txt").write_text("from the context\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox AS tools\n"
        "RUN mkdir -p /opt/tools && echo 'from a stage' > /opt/tools/data.txt\n"
        "FROM busybox\n"
        "RUN --mount=type=bind,from=tools,source=/opt/tools,target=/mnt/tools "
        "--mount=type=bind,source=conf.txt,target=/etc/conf.txt "
        "--mount=type=tmpfs,target=/scratch "
        "cat /mnt/tools/data.txt /etc/conf.txt > /seen.txt && touch /scratch/gone\n")
    rl("build", "-t", "ex-mounts", ctx)
    assert run_output(rl, "ex-mounts", "cat", "/seen.txt") == "from a stage\nfrom the context\n"
    root = run_output(rl, "ex-mounts", "ls", "/").split()
    assert "mnt" not in root and "scratch" not in root
    assert "conf.txt" not in run_output(rl, "ex-mounts", "ls", "/etc").split()


def test_copy_from_an_image(rl: Rootless, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY --from=busybox /bin/busybox /bin/busybox\n"
        'ENTRYPOINT ["/bin/busybox"]\nCMD ["echo", "static from scratch"]\n')
    rl("build", "-t", "ex-from-image", ctx)
    assert run_output(rl, "ex-from-image") == "static from scratch\n"


def test_missing_base_is_pulled_from_a_registry(tmp_path: Path, busybox_tar: Path,
                                               ctx: Path) -> None:
    from tests.registry.servers import start_registry

    registry = start_registry(tmp_path / "registry")
    try:
        env = {"DOCKER_CONFIG": str(tmp_path / "docker-config"),
               "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}
        pusher = runner(tmp_path / "pusher")
        ref = f"{registry.host}/base/busybox:1"
        pusher("import", busybox_tar, ref, env=env)
        pusher("push", ref, env=env)
        rl = runner(tmp_path / "fresh")
        (ctx / "Dockerfile").write_text(f"FROM {ref}\nRUN echo pulled > /pulled.txt\n")
        rl("build", "-t", "ex-pulled", ctx, env=env)
        assert ref in rl("images", "--format", "{{.Repository}}:{{.Tag}}", env=env).stdout
        assert run_output(rl, "ex-pulled", "cat", "/pulled.txt", env=env) == "pulled\n"
    finally:
        registry.stop()


def test_run_network_none_has_only_loopback(rl: Rootless, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN --network=none ls /sys/class/net > /nets.txt\n")
    rl("build", "-t", "ex-nonet", ctx)
    assert run_output(rl, "ex-nonet", "cat", "/nets.txt") == "lo\n"


def test_heredoc_name_cannot_write_outside_the_scratch_dir(rl: Rootless, ctx: Path,
                                                           store: Path) -> None:
    dockerfile = ctx / "Dockerfile"
    dockerfile.write_text("FROM busybox\nCOPY <<../../escaped /dst/\nhello\n../../escaped\n"
                          'CMD ["cat", "/dst/escaped"]\n')
    rl("build", "--progress", "plain", "-f", dockerfile, "-t", "heredoc-name", ctx)
    outside_layers = [p for p in store.rglob("escaped") if "layers" not in p.parts]
    assert outside_layers == []
    assert run_output(rl, "heredoc-name") == "hello\n"


def test_hello_quick_start_example(rl: Rootless, ctx: Path) -> None:
    build(rl, ctx, "hello", "-t", "ex-hello")
    assert run_output(rl, "ex-hello") == (
        "built in a RUN step as uid 0\nhello from a rootless container, running as uid 0\n")
