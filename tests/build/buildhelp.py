"""Helpers for build tests: offline base images, building examples, running results."""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import tarfile
import uuid
from pathlib import Path

from tests.helpers import Rootless

EXAMPLES = Path(__file__).resolve().parents[2] / "Dockerfile.examples"
_OUTPUT_LINE = re.compile(r"^#\d+ \d+\.\d{3} (.*)$")


def example(name: str) -> Path:
    return EXAMPLES / f"{name}.Dockerfile"


def build(rootless: Rootless, context: Path, name: str, *args: str,
          check: bool = True, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Build example NAME in CONTEXT; returns (image ID, progress text)."""
    iid = context.parent / f"{context.name}.{name}.iid"
    res = rootless("build", "--progress", "plain", "-f", example(name), "--iidfile", iid,
                   *args, context, check=check, env=env)
    image_id = iid.read_text().strip() if res.ok and iid.exists() else ""
    return image_id, res.stderr


def inspect(rootless: Rootless, image: str) -> dict[str, object]:
    doc = json.loads(rootless("image", "inspect", image).stdout)
    assert isinstance(doc, list) and len(doc) == 1
    return doc[0]  # type: ignore[no-any-return]


def run_output(rootless: Rootless, image: str, *command: str,
               env: dict[str, str] | None = None) -> str:
    """What IMAGE prints when run (its ENTRYPOINT/CMD, or COMMAND).

    Uses ``rootless run --rm`` when that verb exists; otherwise runs the same
    argv as a RUN step of a throwaway build on top of IMAGE (the same sandbox).
    """
    if rootless("run", "--help", check=False).ok:
        # run, then rm (not --rm: it races the container record as of this writing)
        name = f"probe-{uuid.uuid4().hex[:12]}"
        try:
            return rootless("run", "--name", name, image, *command, env=env).stdout
        finally:
            rootless("rm", "-f", name, check=False, env=env)
    config = inspect(rootless, image)["Config"]
    assert isinstance(config, dict)
    argv = list(config.get("Entrypoint") or []) + (
        list(command) if command else list(config.get("Cmd") or []))
    with _probe_context() as ctx:
        (ctx / "Dockerfile").write_text(f"FROM {image}\nRUN {json.dumps(argv)}\n")
        res = rootless("build", "--no-cache", "--progress", "plain", ctx, env=env)
    # Only the probe step's output (an ONBUILD trigger of IMAGE may print too).
    probe_title = f"RUN {json.dumps(argv)}"
    probe_vertex = None
    lines = []
    for line in res.stderr.splitlines():
        number, _, rest = line.partition(" ")
        if rest.startswith("[") and rest.endswith(probe_title):
            probe_vertex = number
        elif number == probe_vertex and (m := _OUTPUT_LINE.match(line)):
            lines.append(m.group(1))
    return "".join(line + "\n" for line in lines)


class _probe_context:
    def __enter__(self) -> Path:
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="rootless-probe-")
        return Path(self.dir)

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def layer_tars(store_root: Path, image: str, rootless: Rootless) -> list[tarfile.TarFile]:
    """The image's layer tars (uncompressed, in memory), base first."""
    manifest_digest = inspect(rootless, image)["Descriptor"]
    assert isinstance(manifest_digest, dict)
    manifest = json.loads(_blob(store_root, manifest_digest["digest"]))
    out = []
    for layer in manifest["layers"]:
        data = _blob(store_root, layer["digest"])
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        out.append(tarfile.open(fileobj=io.BytesIO(data)))  # noqa: SIM115 - in memory
    return out


def all_blobs(store_root: Path) -> list[bytes]:
    out = []
    for path in sorted((store_root / "blobs" / "sha256").iterdir()):
        data = path.read_bytes()
        out.append(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    return out


def _blob(store_root: Path, digest: str) -> bytes:
    return (store_root / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def cached_steps(progress: str) -> list[str]:
    """Titles of the steps the progress output marked CACHED."""
    titles: dict[str, str] = {}
    cached = []
    for line in progress.splitlines():
        number, _, rest = line.partition(" ")
        if rest.startswith("["):
            titles[number] = rest
        elif rest == "CACHED":
            cached.append(titles.get(number, number))
    return cached
