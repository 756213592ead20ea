"""Choosing one image from a manifest list / OCI index, as Docker chooses.

Pure: the host platform is an argument. ``os`` and ``architecture`` must match;
the variant matches exactly, or by compatibility (an arm/v7 host runs v6 and v5
images, best first; arm64 and amd64 accept an empty variant).
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from typing import Any

from rootless.errors import UsageError

_ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
    "i386": "386", "i686": "386",
}
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_ARM_COMPATIBLE = {"v8": ("v8", "v7", "v6", "v5"), "v7": ("v7", "v6", "v5"), "v6": ("v6", "v5"),
                   "v5": ("v5",)}


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_platform(text: str) -> Platform:
    """``linux/arm64/v8``, ``linux/amd64``, ``arm64`` (os defaults to linux)."""
    parts = [p.strip().lower() for p in text.split("/")]
    if not all(parts) or not 1 <= len(parts) <= 3:
        raise UsageError(f"invalid platform {text!r}: expected OS/ARCH[/VARIANT]")
    if len(parts) == 1:
        parts.insert(0, "linux")
    arch = _ARCH_ALIASES.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else ""
    if arch == "arm64" and variant == "v8":
        variant = ""
    return Platform(parts[0], arch, variant)


def host_platform() -> Platform:
    machine = _platform.machine().lower()
    if machine.startswith("armv") and machine[4:5].isdigit():
        return Platform("linux", "arm", f"v{machine[4]}")
    return Platform("linux", _ARCH_ALIASES.get(machine, machine))


def _entry_platform(entry: dict[str, Any]) -> Platform | None:
    p = entry.get("platform")
    if not isinstance(p, dict) or not p.get("os") or not p.get("architecture"):
        return None
    arch = _ARCH_ALIASES.get(str(p["architecture"]), str(p["architecture"]))
    variant = str(p.get("variant") or "")
    if arch == "arm64" and variant == "v8":
        variant = ""
    return Platform(str(p["os"]), arch, variant)


def _rank(candidate: Platform, wanted: Platform) -> int | None:
    """Lower is better; None when the candidate cannot run on ``wanted``."""
    if candidate.os != wanted.os or candidate.architecture != wanted.architecture:
        return None
    if candidate.variant == wanted.variant:
        return 0
    if wanted.architecture == "arm":
        order = _ARM_COMPATIBLE.get(wanted.variant or _DEFAULT_VARIANT["arm"], ())
        if candidate.variant in order:
            return order.index(candidate.variant)
        return None
    if not wanted.variant or not candidate.variant:
        return 1
    return None


def select_manifest(index: dict[str, Any], wanted: Platform) -> dict[str, Any] | None:
    """The index entry for ``wanted``, or None; the first best match wins, as in Docker."""
    best: tuple[int, int] | None = None
    chosen: dict[str, Any] | None = None
    for position, entry in enumerate(index.get("manifests") or []):
        if not isinstance(entry, dict):
            continue
        found = _entry_platform(entry)
        if found is None:
            continue
        rank = _rank(found, wanted)
        if rank is None:
            continue
        key = (rank, position)
        if best is None or key < best:
            best, chosen = key, entry
    return chosen


def available(index: dict[str, Any]) -> list[str]:
    out = []
    for entry in index.get("manifests") or []:
        found = _entry_platform(entry) if isinstance(entry, dict) else None
        if found is not None and found.os != "unknown":
            out.append(str(found))
    return out
