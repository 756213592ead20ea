"""``rootless import``: a root filesystem tarball becomes a one-layer image.

As ``docker import``: the tarball may be gzip, bzip2 or xz compressed; the
layer is its uncompressed tar; ``--change`` lines (CMD, ENTRYPOINT, ENV,
EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR) set the config.
The whole tar is checked (a truncated or non-tar input is refused) before
anything becomes visible in the store.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import platform
import shlex
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any

from rootless.errors import LayerError, UsageError
from rootless.oci.model import format_time
from rootless.reference import ImageReference
from rootless.store import Store, StoredImage

_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_architecture() -> str:
    machine = platform.machine()
    return _ARCHES.get(machine, machine)


def build_time() -> datetime:
    """Now, or SOURCE_DATE_EPOCH when set (reproducible images)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return datetime.now(UTC)


class _CheckedReader(io.RawIOBase):
    """Reads a (possibly compressed) stream; decompression errors become LayerError."""

    def __init__(self, inner: IO[bytes], what: str) -> None:
        self._inner = inner
        self._what = what

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._inner.read(size)
        except (EOFError, gzip.BadGzipFile, lzma.LZMAError, zlib.error, OSError,
                ValueError) as exc:
            raise LayerError(f"{self._what} is corrupt or truncated: {exc}") from None

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def open_maybe_compressed(stream: IO[bytes], what: str) -> IO[bytes]:
    """The uncompressed bytes of ``stream``, whatever of gzip/bzip2/xz it uses."""
    buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
    head = buffered.peek(6)[:6]
    inner: Any
    if head.startswith(b"\x1f\x8b"):
        inner = gzip.GzipFile(fileobj=buffered, mode="rb")
    elif head.startswith(b"BZh"):
        inner = bz2.BZ2File(buffered, "rb")
    elif head.startswith(b"\xfd7zXZ\x00"):
        inner = lzma.LZMAFile(buffered, "rb")  # noqa: SIM115 (closed with the stream)
    elif head.startswith(b"\x28\xb5\x2f\xfd"):
        raise LayerError(f"{what} is zstd-compressed, which rootless cannot read yet",
                         hint="decompress it first: zstd -d FILE")
    else:
        inner = buffered
    return _CheckedReader(inner, what)  # type: ignore[return-value]


def apply_changes(config: dict[str, Any], changes: Sequence[str]) -> None:
    """Apply Dockerfile-style ``--change`` lines to a container config, in order."""
    for line in changes:
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if not rest:
            raise UsageError(f"--change {line!r}: {keyword or 'instruction'} needs an argument")
        if keyword in ("CMD", "ENTRYPOINT"):
            config["Cmd" if keyword == "CMD" else "Entrypoint"] = _command(rest)
        elif keyword == "ENV":
            env = [e for e in config.get("Env") or []]
            for key, value in _pairs(rest, line):
                env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
            config["Env"] = env
        elif keyword == "LABEL":
            config["Labels"] = {**(config.get("Labels") or {}), **dict(_pairs(rest, line))}
        elif keyword == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            for port in rest.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
            config["ExposedPorts"] = ports
        elif keyword == "VOLUME":
            paths = json.loads(rest) if rest.startswith("[") else rest.split()
            config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}
        elif keyword == "WORKDIR":
            config["WorkingDir"] = rest
        elif keyword == "USER":
            config["User"] = rest
        elif keyword == "STOPSIGNAL":
            config["StopSignal"] = rest
        elif keyword == "ONBUILD":
            config["OnBuild"] = [*(config.get("OnBuild") or []), rest]
        else:
            raise UsageError(f"--change {line!r}: {keyword} is not supported",
                             hint="use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, "
                                  "STOPSIGNAL, USER, VOLUME or WORKDIR")


def _command(text: str) -> list[str]:
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", text]


def _pairs(text: str, line: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"--change {line!r}: {exc}") from None
    if words and "=" not in words[0]:
        return [(words[0], text.split(None, 1)[1] if len(words) > 1 else "")]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise UsageError(f"--change {line!r}: expected KEY=VALUE, got {word!r}")
        pairs.append((key, value))
    return pairs


def import_rootfs(store: Store, stream: IO[bytes], *, source: str,
                  tags: Sequence[ImageReference] = (), changes: Sequence[str] = (),
                  message: str = "", arch: str | None = None) -> StoredImage:
    """Store ``stream`` (a rootfs tar, maybe compressed) as a new image and tag it.

    ``arch`` is ``ARCH`` or ``ARCH/VARIANT`` (``arm/v7``); default the host's.
    """
    container_config: dict[str, Any] = {}
    apply_changes(container_config, changes)
    created = format_time(build_time())
    with store.lease():
        what = "the tarball on stdin" if source == "-" else source
        layer = store.put_layer(open_maybe_compressed(stream, what), what=what)
        architecture, _, variant = (arch or host_architecture()).partition("/")
        config: dict[str, Any] = {
            "architecture": architecture,
            **({"variant": variant} if variant else {}),
            "os": "linux",
            "created": created,
            "config": container_config,
            "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]},
            "history": [{"created": created,
                         "comment": message or f"Imported from {source}"}],
        }
        return store.commit_image(config, [layer], tags)
