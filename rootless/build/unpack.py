"""Unpacked layer directories for a list of layers (the cowfs's read-only lowers).

Each layer is extracted once into ``<root>/layers/sha256/<diff_id hex>`` by
``oci.layer.extract`` into ``tmp/`` and renamed into place, so concurrent
builds and runs never see half a layer. Prefers ``rootless.cowfs.ensure_unpacked``
when the cowfs offers it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from rootless.oci.model import LayerInfo
from rootless.store import Store


def ensure_unpacked(store: Store, layers: Sequence[LayerInfo]) -> list[Path]:
    """The unpacked directory of each layer, base first."""
    try:
        from rootless.cowfs import ensure_unpacked as cowfs_unpack  # type: ignore[attr-defined]
    except ImportError:
        cowfs_unpack = None
    if cowfs_unpack is not None:
        return list(cowfs_unpack(store, layers))
    out: list[Path] = []
    for layer in layers:
        dest = store.layer_dir(layer.diff_id)
        if not dest.is_dir():
            _unpack(store, layer, dest)
        out.append(dest)
    return out


def _unpack(store: Store, layer: LayerInfo, dest: Path) -> None:
    from rootless.oci.layer import extract

    dest.parent.mkdir(parents=True, exist_ok=True)
    with store.temp_dir("unpack-") as tmp:
        staging = tmp / "layer"
        with store.open_blob(layer.digest) as blob:
            extract(blob, staging, name=str(layer.digest))
        with contextlib.suppress(FileExistsError, OSError):
            os.rename(staging, dest)
    if not dest.is_dir():
        raise OSError(f"could not unpack layer {layer.diff_id}")
