"""Running a command in a sandbox and capturing its output, for tests."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from rootless.sandbox import IdMapping, ProcessSpec, Sandbox


@dataclass
class Ran:
    status: int
    stdout: str
    stderr: str


def run_in(rootfs: Path, mapping: IdMapping, *argv: str, **spec_fields: object) -> Ran:
    """Run ARGV in ROOTFS; stdout/stderr captured through temporary files."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        spec = ProcessSpec(argv=tuple(argv), stdout=out.fileno(), stderr=err.fileno())
        spec = replace(spec, **spec_fields)  # type: ignore[arg-type]
        status = Sandbox(str(rootfs), mapping).run(spec)
        out.seek(0)
        err.seek(0)
        return Ran(status, out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def sh(rootfs: Path, mapping: IdMapping, script: str, **spec_fields: object) -> Ran:
    return run_in(rootfs, mapping, "/bin/sh", "-c", script, **spec_fields)


def host_pids_with(marker: str) -> list[int]:
    """Host processes whose command line contains MARKER."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids
