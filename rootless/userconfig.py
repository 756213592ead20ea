"""The user's configuration file: ``$XDG_CONFIG_HOME/rootless/config.toml``.

What a user would otherwise repeat as a flag or an environment variable on
every command, as podman reads ``~/.config/containers/storage.conf``::

    [storage]
    driver = "fuse"                       # auto | overlay | fuse | vfs
    root = "/scratch/me/rootless"         # the store (default ~/.local/share/rootless)

Flags win over environment variables (``ROOTLESS_STORAGE_DRIVER``,
``ROOTLESS_ROOT``), which win over this file. ``ROOTLESS_CONFIG`` names
another file. A missing file is no configuration; a broken one is an error
naming the file and the line, never a silent default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rootless.errors import UsageError

STORAGE_DRIVERS = ("auto", "overlay", "fuse", "vfs")
_STORAGE_KEYS = ("driver", "root")


@dataclass(frozen=True, slots=True)
class UserConfig:
    storage_driver: str | None = None
    root: Path | None = None


def config_path() -> Path:
    explicit = os.environ.get("ROOTLESS_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rootless" / "config.toml"


def load_user_config(path: Path | None = None) -> UserConfig:
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return UserConfig()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    import tomllib  # only when there is a file: `rootless run` start-up counts

    try:
        doc = tomllib.loads(raw.decode("utf-8", "replace"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    return _parse(doc, path)


def _parse(doc: dict[str, Any], path: Path) -> UserConfig:
    unknown = sorted(set(doc) - {"storage"})
    if unknown:
        raise UsageError(f"{path}: unknown section or key {unknown[0]!r}",
                         hint="the file knows [storage] driver and root")
    storage = doc.get("storage", {})
    if not isinstance(storage, dict):
        raise UsageError(f"{path}: 'storage' must be a table ([storage])")
    unknown = sorted(set(storage) - set(_STORAGE_KEYS))
    if unknown:
        raise UsageError(f"{path}: unknown key storage.{unknown[0]}",
                         hint="[storage] knows: " + ", ".join(_STORAGE_KEYS))
    driver = storage.get("driver")
    if driver is not None and driver not in STORAGE_DRIVERS:
        raise UsageError(f"{path}: storage.driver is {driver!r}",
                         hint="use one of " + ", ".join(STORAGE_DRIVERS))
    root = storage.get("root")
    if root is not None and (not isinstance(root, str) or not root):
        raise UsageError(f"{path}: storage.root must be a non-empty string (a directory)")
    return UserConfig(driver, Path(root).expanduser() if root else None)
