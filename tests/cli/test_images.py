"""Image verbs through the real CLI, against a real busybox rootfs."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rootless.oci.model import canonical_json
from rootless.reference import ImageReference
from rootless.store import Store
from tests.helpers import Rootless, make_busybox_rootfs_tar, tar_bytes


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert lines and lines[0].startswith("rootless: "), stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), stderr
    return lines[0]


def _store_is_empty(store_root: Path) -> None:
    assert json.loads((store_root / "index.json").read_text())["manifests"] == []
    assert list((store_root / "blobs" / "sha256").iterdir()) == []
    assert [p.name for p in (store_root / "tmp").iterdir()] == []


def test_import_inspect_history_tag_rmi(rootless: Rootless, busybox_tar: Path) -> None:
    image_id = rootless("import", "-c", 'CMD ["sh"]', "-c", "ENV PATH=/bin:/usr/bin",
                        "-c", "WORKDIR /root", "-m", "busybox from Debian",
                        busybox_tar, "busybox:1").stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71

    [info] = json.loads(rootless("image", "inspect", "busybox:1").stdout)
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["busybox:1"]
    assert info["RepoDigests"][0].startswith("busybox@sha256:")
    assert info["Config"]["Cmd"] == ["sh"]
    assert info["Config"]["Env"] == ["PATH=/bin:/usr/bin"]
    assert info["Config"]["WorkingDir"] == "/root"
    assert info["Config"]["Entrypoint"] is None
    assert info["Architecture"] in ("amd64", "arm64") and info["Os"] == "linux"
    assert info["RootFS"] == {"Type": "layers", "Layers": [_sha256(busybox_tar)]}
    assert info["Size"] == busybox_tar.stat().st_size  # unpacked, as Docker counts
    assert info["Created"].endswith("Z")
    assert rootless("image", "inspect", "-f", "{{.Id}} {{json .RepoTags}}",
                    "busybox:1").stdout == f'{image_id} ["busybox:1"]\n'

    hist = rootless("history", "busybox:1").stdout.splitlines()
    assert hist[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert hist[1].startswith(image_id[7:19]) and hist[1].endswith("busybox from Debian")
    assert len(hist) == 2
    assert rootless("history", "-q", "--no-trunc", "busybox:1").stdout == image_id + "\n"

    rootless("tag", "busybox:1", "localhost:5000/tools/bb:v2")
    rootless("tag", image_id[7:19], "bb")
    listed = rootless("images").stdout.splitlines()
    assert listed[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = sorted(line.split()[:3] for line in listed[1:])
    assert rows == [["bb", "latest", image_id[7:19]], ["busybox", "1", image_id[7:19]],
                    ["localhost:5000/tools/bb", "v2", image_id[7:19]]]
    assert rootless("images", "-q").stdout == image_id[7:19] + "\n"
    assert rootless("images", "busybox").stdout.count("\n") == 2

    res = rootless("rmi", "bb")
    assert res.stdout == "Untagged: bb:latest\n"
    res = rootless("rmi", image_id[7:19], check=False)
    assert res.returncode != 0 and "multiple repositories" in _one_line_error(res.stderr)
    res = rootless("rmi", "-f", image_id[7:19])
    assert "Untagged: busybox:1" in res.stdout and f"Deleted: {image_id}" in res.stdout
    assert rootless("images", "-q").stdout == ""


def test_images_formats(rootless: Rootless, busybox_tar: Path) -> None:
    image_id = rootless("import", busybox_tar, "registry.example:5000/app:1").stdout.strip()
    [line] = rootless("images", "--format", "json").stdout.splitlines()
    doc = json.loads(line)
    assert doc["Repository"] == "registry.example:5000/app" and doc["Tag"] == "1"
    assert doc["ID"] == image_id[7:19] and doc["Digest"].startswith("sha256:")
    assert doc["CreatedSince"].endswith("ago") and doc["Size"].endswith("MB")
    assert rootless("images", "--format", "{{.Repository}}:{{.Tag}}").stdout == \
        "registry.example:5000/app:1\n"
    assert rootless("images", "--no-trunc", "-q").stdout == image_id + "\n"
    assert "DIGEST" in rootless("images", "--digests").stdout.splitlines()[0]
    assert rootless("images", "nothing*").stdout.count("\n") == 1  # headers only
    unknown = rootless("images", "--format", "{{.Nope}}", check=False)
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.startswith("rootless: invalid --format: can't evaluate field Nope\n")


def _commit_with_history(store_root: Path, busybox_tar: Path) -> str:
    store = Store.open(store_root)
    with busybox_tar.open("rb") as f:
        layer = store.put_layer(f)
    extra = store.put_layer(io.BytesIO(tar_bytes({"etc/motd": b"hello\n"})))
    config = {
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "history": [
            {"created": "2023-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file"},
            {"created": "2023-01-01T00:00:01Z", "created_by": "/bin/sh -c #(nop) CMD [\"sh\"]",
             "empty_layer": True},
            {"created": "2024-01-01T00:00:00Z", "created_by": "RUN echo hello > /etc/motd "
             "&& a very long command line that Docker truncates", "comment": "buildkit"},
        ],
    }
    image = store.commit_image(config, [layer, extra], [ImageReference.parse("hist")])
    return str(image.image_id)


def test_history_of_a_multi_step_image(rootless: Rootless, store_root: Path,
                                       busybox_tar: Path) -> None:
    image_id = _commit_with_history(store_root, busybox_tar)
    lines = rootless("history", "hist").stdout.splitlines()
    assert len(lines) == 4
    assert lines[1].startswith(image_id[7:19])
    assert "RUN echo hello > /etc/motd && a very long co…" in lines[1]
    assert "buildkit" in lines[1]
    assert lines[2].startswith("<missing>") and lines[2].split()[-1] == "0B"
    assert lines[3].startswith("<missing>") and "MB" in lines[3]
    rows = [json.loads(x) for x in
            rootless("history", "--format", "json", "--no-trunc", "hist").stdout.splitlines()]
    assert rows[0]["CreatedBy"].endswith("that Docker truncates")
    assert [r["ID"] for r in rows] == [image_id, "<missing>", "<missing>"]


def test_rmi_refuses_an_image_a_container_uses(rootless: Rootless, store_root: Path,
                                               busybox_tar: Path) -> None:
    image_id = rootless("import", busybox_tar, "busybox").stdout.strip()
    record = store_root / "containers" / ("c" * 64) / "container.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"Id": "c" * 64, "Name": "box", "Image": image_id,
                                  "ImageName": "busybox", "State": {"Running": False}}))
    res = rootless("rmi", "busybox", check=False)
    assert res.returncode == 1
    assert "container cccccccccccc is using its referenced image" in _one_line_error(res.stderr)
    assert rootless("images", "-q").stdout.strip() == image_id[7:19]
    # -f untags; the container still has its image (dangling), so its layers stay.
    assert rootless("rmi", "-f", "busybox").stdout == "Untagged: busybox:latest\n"
    assert rootless("images", "-q").stdout.strip() == image_id[7:19]
    rootless("image", "prune", "-a", "-f")
    assert rootless("images", "-q").stdout.strip() == image_id[7:19]
    record.unlink()
    out = rootless("image", "prune", "-f").stdout
    assert f"deleted: {image_id}" in out and "Total reclaimed space:" in out
    _store_is_empty(store_root)


def test_image_prune_dangling_and_all(rootless: Rootless, store_root: Path,
                                      busybox_tar: Path) -> None:
    old = rootless("import", "-c", "CMD sh", busybox_tar, "app").stdout.strip()
    new = rootless("import", "-c", "CMD ls", busybox_tar, "app").stdout.strip()
    listed = rootless("images").stdout
    assert "<none>" in listed and old[7:19] in listed
    out = rootless("image", "prune", "-f").stdout
    assert f"deleted: {old}" in out and new not in out
    assert rootless("images", "-q").stdout.strip() == new[7:19]
    # The shared layer survived the prune: the remaining image still reads.
    rootless("image", "inspect", "app")
    assert "all images without at least one container" in \
        rootless("image", "prune", "-a", input="n\n").stdout
    assert rootless("images", "-q").stdout.strip() == new[7:19]
    rootless("image", "prune", "-a", "-f")
    _store_is_empty(store_root)


@pytest.mark.parametrize(("case", "says"), [
    ("truncated", "truncated"),
    ("not-a-tar", "not a tar archive"),
    ("truncated-gzip", "corrupt or truncated"),
    ("missing", "cannot open"),
    ("hostile", "refusing entry '../../etc/cron.d/x'"),
])
def test_import_bad_input(rootless: Rootless, store_root: Path, busybox_tar: Path,
                          tmp_path: Path, case: str, says: str) -> None:
    import gzip
    bad = tmp_path / "bad"
    data = busybox_tar.read_bytes()
    if case == "truncated":
        bad.write_bytes(data[:len(data) // 2])
    elif case == "not-a-tar":
        bad.write_bytes(b"#!/bin/sh\necho this is a script\n" * 200)
    elif case == "truncated-gzip":
        packed = gzip.compress(data)
        bad.write_bytes(packed[:len(packed) // 2])
    elif case == "hostile":  # a rootfs with one member that climbs out of the layer
        import io
        import tarfile
        buf = io.BytesIO()
        with tarfile.open(busybox_tar) as src, tarfile.open(fileobj=buf, mode="w") as tar:
            for member in src:
                tar.addfile(member, src.extractfile(member) if member.isfile() else None)
            info = tarfile.TarInfo("../../etc/cron.d/x")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"pwned"))
        bad.write_bytes(buf.getvalue())
    res = rootless("import", bad, "broken", check=False)
    assert res.returncode != 0
    assert says in _one_line_error(res.stderr)
    assert rootless("images", "-q").stdout == ""
    _store_is_empty(store_root)


def test_import_compressed_and_from_stdin(rootless: Rootless, busybox_tar: Path,
                                          tmp_path: Path) -> None:
    import gzip
    packed = tmp_path / "bb.tar.gz"
    packed.write_bytes(gzip.compress(busybox_tar.read_bytes()))
    plain_id = rootless("import", busybox_tar).stdout.strip()
    gz_id = rootless("import", packed).stdout.strip()
    stdin_id = rootless("import", "-", "piped", input=busybox_tar.read_bytes()).stdout.strip()
    ids = {json.loads(rootless("image", "inspect", i).stdout)[0]["RootFS"]["Layers"][0]
           for i in (plain_id, gz_id, stdin_id)}
    assert ids == {_sha256(busybox_tar)}
    [info] = json.loads(rootless("image", "inspect", "piped").stdout)
    assert info["Comment"] == "" or "Imported from -" in rootless("history", "piped").stdout


@pytest.mark.parametrize(("args", "says"), [
    (("image", "inspect", "nosuchimage"), "No such image: nosuchimage"),
    (("history", "nosuchimage:1"), "No such image: nosuchimage:1"),
    (("rmi", "nosuchimage"), "No such image: nosuchimage"),
    (("tag", "nosuchimage", "x"), "No such image: nosuchimage"),
    (("save", "-o", "/dev/null", "nosuchimage"), "No such image: nosuchimage"),
    (("tag", "busybox", "Bad:Name"), "must be lowercase"),
    (("tag", "busybox", "bad name"), "not a valid image name"),
    (("import", "/dev/null", "in valid"), "not a valid image name"),
    (("import", "/dev/null", "x", "-c", "FROB x"), "FROB is not supported"),
    (("images", "ab$c"), None),
])
def test_bad_names_fail_cleanly(rootless: Rootless, busybox_tar: Path,
                                args: tuple[str, ...], says: str | None) -> None:
    rootless("import", busybox_tar, "busybox")
    res = rootless(*args, check=False)
    if says is None:  # a filter that matches nothing is not an error
        assert res.returncode == 0 and res.stdout.count("\n") == 1
        return
    assert res.returncode != 0
    assert says in _one_line_error(res.stderr)
    assert rootless("images", "-q").stdout.count("\n") == 1


def test_kill_during_import_leaves_store_consistent(rootless: Rootless, store_root: Path,
                                                    busybox_tar: Path, tmp_path: Path) -> None:
    first = rootless("import", busybox_tar, "kept").stdout.strip()
    big = make_busybox_rootfs_tar(tmp_path / "big.tar",
                                  extra={f"data/{i}": os.urandom(1 << 20) for i in range(4)})
    data = big.read_bytes()
    proc = subprocess.Popen(["rootless", "--root", str(store_root), "import", "-", "victim"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.write(data[:len(data) // 2])
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    tmp_dir = store_root / "tmp"
    while not any(p.name.startswith("blob-") and p.stat().st_size > 0
                  for p in tmp_dir.iterdir()):
        assert proc.poll() is None, "import ended before it was killed"
        assert time.monotonic() < deadline, "import never started writing"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    assert proc.returncode == -signal.SIGKILL
    listed = rootless("images").stdout.splitlines()
    assert len(listed) == 2 and listed[1].split()[:3] == ["kept", "latest", first[7:19]]
    assert rootless("image", "inspect", "-f", "{{.Id}}", "kept").stdout.strip() == first
    assert json.loads(rootless("images", "--format", "json").stdout)["Repository"] == "kept"
    # The abandoned temp file is garbage the next prune collects.
    assert any(tmp_dir.iterdir())
    rootless("system", "prune", "-f")
    assert list(tmp_dir.iterdir()) == []
    assert rootless("images", "-q").stdout.strip() == first[7:19]
    rootless("save", "-o", tmp_path / "kept.tar", "kept")


def test_concurrent_imports_both_land(rootless: Rootless, store_root: Path,
                                      busybox_tar: Path, tmp_path: Path) -> None:
    other = make_busybox_rootfs_tar(tmp_path / "other.tar", extra={"etc/motd": b"other\n"})
    rootless("images")  # create the store first; creation is also race-safe
    procs = [subprocess.Popen(["rootless", "--root", str(store_root), "import", str(tar), name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for tar, name in ((busybox_tar, "one"), (other, "two"), (busybox_tar, "three"))]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    names = {line.split()[0] for line in rootless("images").stdout.splitlines()[1:]}
    assert names == {"one", "two", "three"}
    index = json.loads((store_root / "index.json").read_text())
    assert len(index["manifests"]) == 3


def test_import_sets_canonical_config(store_root: Path, rootless: Rootless,
                                      busybox_tar: Path) -> None:
    image_id = rootless("import", "-c", "EXPOSE 80", "-c", "LABEL a=b c=\"d e\"",
                        "-c", "ENTRYPOINT [\"/bin/sh\", \"-c\"]", "-c", "USER nobody",
                        "-c", "VOLUME /data", "-c", "STOPSIGNAL SIGINT",
                        busybox_tar, env={"SOURCE_DATE_EPOCH": "1700000000"}).stdout.strip()
    store = Store.open(store_root)
    image = store.resolve(image_id)
    assert canonical_json(image.config) == image.config_bytes
    config = image.config["config"]
    assert config["ExposedPorts"] == {"80/tcp": {}}
    assert config["Labels"] == {"a": "b", "c": "d e"}
    assert config["Entrypoint"] == ["/bin/sh", "-c"] and config["User"] == "nobody"
    assert config["Volumes"] == {"/data": {}} and config["StopSignal"] == "SIGINT"
    assert image.config["created"] == "2023-11-14T22:13:20Z"
    again = rootless("import", "-c", "EXPOSE 80", "-c", "LABEL a=b c=\"d e\"",
                     "-c", "ENTRYPOINT [\"/bin/sh\", \"-c\"]", "-c", "USER nobody",
                     "-c", "VOLUME /data", "-c", "STOPSIGNAL SIGINT",
                     busybox_tar, env={"SOURCE_DATE_EPOCH": "1700000000"}).stdout.strip()
    assert again == image_id  # reproducible


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_load_round_trip_through_pipes(rootless: Rootless, store_root: Path,
                                            busybox_tar: Path, tmp_path: Path,
                                            fmt: str) -> None:
    import gzip
    import subprocess as sp
    image_id = rootless("import", "-c", "CMD sh", busybox_tar, "busybox:1").stdout.strip()
    rootless("tag", "busybox:1", "registry.example:5000/bb:2")
    proc = sp.run(["rootless", "--root", str(store_root), "save", "--format", fmt,
                   "busybox:1", "registry.example:5000/bb:2"], capture_output=True, check=True)
    archive = proc.stdout
    assert archive[257:262] == b"ustar"
    other = tmp_path / "other-store"
    from tests.helpers import runner
    loaded = runner(other)("load", input=gzip.compress(archive)).stdout
    assert set(loaded.splitlines()) == {"Loaded image: busybox:1",
                                        "Loaded image: registry.example:5000/bb:2"}
    [info] = json.loads(runner(other)("image", "inspect", "registry.example:5000/bb:2").stdout)
    assert info["Id"] == image_id and set(info["RepoTags"]) == {
        "busybox:1", "registry.example:5000/bb:2"}
    # Saved by ID, an image has no names; loaded, it is dangling.
    by_id = runner(tmp_path / "third")
    proc = sp.run(["rootless", "--root", str(store_root), "save", "--format", fmt,
                   image_id[7:19]], capture_output=True, check=True)
    assert by_id("load", input=proc.stdout).stdout == f"Loaded image ID: {image_id}\n"
    assert by_id("images").stdout.splitlines()[1].split()[:3] == [
        "<none>", "<none>", image_id[7:19]]


def test_failed_save_keeps_the_old_output(rootless: Rootless, busybox_tar: Path,
                                                      tmp_path: Path) -> None:
    rootless("import", busybox_tar, "busybox")
    out = tmp_path / "out.tar"
    out.write_bytes(b"previous")
    res = rootless("save", "-o", out, "busybox", "nosuch", check=False)
    assert res.returncode != 0 and "No such image: nosuch" in res.stderr
    assert out.read_bytes() == b"previous"  # replaced only when complete
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tar")] == []


def test_a_damaged_image_can_be_seen_and_removed(rootless: Rootless, store_root: Path,
                                                  busybox_tar: Path) -> None:
    rootless("import", busybox_tar, "good")
    damaged_id = rootless("import", "-c", "CMD ls", busybox_tar, "bad").stdout.strip()
    (store_root / "blobs" / "sha256" / damaged_id[7:]).unlink()  # its config, gone
    res = rootless("images")
    assert [line.split()[0] for line in res.stdout.splitlines()[1:]] == ["good"]
    assert "image bad:latest is damaged" in res.stderr and "rmi -f bad:latest" in res.stderr
    rootless("system", "prune", "-f")  # keeps what the damaged image's manifest names
    assert "image bad:latest is damaged" in rootless("images").stderr
    assert rootless("rmi", "bad", check=False).returncode != 0
    assert rootless("rmi", "-f", "bad").stdout.startswith("Deleted: sha256:")
    rootless("system", "prune", "-a", "-f")
    assert rootless("images", "-q").stdout == ""
    assert list((store_root / "blobs" / "sha256").iterdir()) == []


def test_import_platform(rootless: Rootless, busybox_tar: Path) -> None:
    rootless("import", "--platform", "linux/arm/v7", busybox_tar, "armish")
    [info] = json.loads(rootless("image", "inspect", "armish").stdout)
    assert (info["Os"], info["Architecture"], info["Variant"]) == ("linux", "arm", "v7")
    res = rootless("import", "--platform", "windows/amd64", busybox_tar, check=False)
    assert res.returncode == 2 and "expected linux/ARCH" in _one_line_error(res.stderr)


def test_a_full_disk_is_a_clear_error(rootless: Rootless, store_root: Path,
                                      busybox_tar: Path) -> None:
    import subprocess as sp
    rootless("images")
    # A file size limit makes writes fail with EFBIG, as a full disk fails with ENOSPC.
    proc = sp.run(["bash", "-c", 'ulimit -f 200 && exec rootless --root "$0" import "$1" big',
                   str(store_root), str(busybox_tar)], capture_output=True, text=True,
                  timeout=120)
    assert proc.returncode == 1
    assert "File too large" in _one_line_error(proc.stderr)
    _store_is_empty(store_root)
    rootless("import", busybox_tar, "small")
    out = store_root.parent / "saved.tar"
    proc = sp.run(["bash", "-c", 'ulimit -f 200 && exec rootless --root "$0" save -o "$1" small',
                   str(store_root), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "cannot write" in _one_line_error(proc.stderr)
    assert not out.exists() and list(out.parent.glob(".saved.tar.*")) == []


def test_load_refuses_archives_that_do_not_add_up(rootless: Rootless, store_root: Path,
                                                  busybox_tar: Path, tmp_path: Path) -> None:
    layer = tar_bytes({"etc/motd": b"hi\n"})
    other = tar_bytes({"etc/motd": b"something else\n"})
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
    cases = {
        "rootfs": (busybox_tar.read_bytes(), "neither a docker-archive nor an oci-archive"),
        "mismatch": (tar_bytes({
            "c.json": config, "l.tar": other,
            "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["x:1"],
                                          "Layers": ["l.tar"]}]).encode()}),
            "the config says"),
        "missing": (tar_bytes({
            "c.json": config,
            "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["x:1"],
                                          "Layers": ["l.tar"]}]).encode()}),
            "l.tar is missing"),
        "bad-name": (tar_bytes({
            "c.json": config, "l.tar": layer,
            "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["Bad Name"],
                                          "Layers": ["l.tar"]}]).encode()}),
            "not a valid image name"),
    }
    for case, (data, says) in cases.items():
        archive = tmp_path / f"{case}.tar"
        archive.write_bytes(data)
        res = rootless("load", "-i", archive, check=False)
        assert res.returncode == 1, case
        assert says in _one_line_error(res.stderr), (case, res.stderr)
        _store_is_empty(store_root)
