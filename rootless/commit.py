"""``rootless commit``: a container's writable layer on top of its image, as a new image.

The container's upper directory becomes one OCI layer (``oci.layer.diff``,
read inside the user namespace so sub-ID owners come out as the container
sees them); ``-c`` changes are Dockerfile instructions applied to the config
the way a build applies them.  The image the container runs is never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rootless.containers import Container
from rootless.errors import UsageError
from rootless.store import Store, StoredImage

# The instructions `docker commit --change` accepts.
COMMIT_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER",
                       "VOLUME", "WORKDIR", "STOPSIGNAL", "HEALTHCHECK", "SHELL")


def apply_changes(config: dict[str, Any], changes: Sequence[str], now: str) -> dict[str, Any]:
    """CONFIG with each Dockerfile instruction in CHANGES applied (no history entries)."""
    if not changes:
        return config
    from rootless.build.cache import ImageState
    from rootless.build.config import apply_metadata
    from rootless.build.plan import Step
    from rootless.dockerfile import parse

    for change in changes:
        keyword = change.strip().split(None, 1)[0].upper() if change.strip() else ""
        if keyword not in COMMIT_INSTRUCTIONS:
            raise UsageError(f"{keyword or change!r} is not a valid change command",
                             hint="use one of " + ", ".join(COMMIT_INSTRUCTIONS))
    dockerfile = parse("FROM scratch\n" + "\n".join(changes) + "\n", "--change")
    state = ImageState(config, ())
    for instruction in dockerfile.stages[0].instructions:
        history = state.config.get("history")
        state = apply_metadata(state, Step(instruction, instruction, 0, (), ""), now)
        state.config["history"] = history  # commit writes one entry of its own
        if history is None:
            del state.config["history"]
    state.config.pop("_rootless_cmd_set", None)
    return state.config


def commit_container(store: Store, container: Container, reference: str | None,
                     changes: Sequence[str], *, message: str | None = None,
                     author: str | None = None) -> StoredImage:
    from rootless.reference import ImageReference
    from rootless.sandbox import IdMapping
    from rootless.sandbox.userns import call_in_userns

    image = store.resolve(str(container.doc["Image"]))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    config = apply_changes(copy.deepcopy(image.config), changes, now)
    tags = [ImageReference.parse(reference)] if reference else []
    upper = container.upper
    with store.lease(), store.temp_dir("commit-") as scratch:
        tar_path = scratch / "layer.tar"

        def make_tar() -> bool:
            from rootless.oci.layer import diff

            diff(upper, tar_path)
            return True

        call_in_userns(IdMapping.detect(), make_tar)
        with open(tar_path, "rb") as f:
            layer = store.put_layer(f)
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), str(layer.diff_id)]
    entry: dict[str, Any] = {"created": now, "created_by": " ".join(container.doc.get(
        "Command") or [])}
    if message:
        entry["comment"] = message
    config["history"] = [*(config.get("history") or []), entry]
    config["created"] = now
    if author:
        config["author"] = author
    return store.commit_image(config, [*image.layers, layer], tags)
