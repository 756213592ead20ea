"""Registry client: pull, push and login against Docker Hub and any OCI registry.

``pull_image`` is what ``rootless pull`` and the build's FROM use; ``push_image``
is ``rootless push``. Both take a caller-supplied ``requests.Session`` (or make
one). Importing this package is cheap: requests loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rootless.registry.pull import pull_image
    from rootless.registry.push import push_image

__all__ = ["pull_image", "push_image"]


def __getattr__(name: str) -> Any:
    if name == "pull_image":
        from rootless.registry.pull import pull_image

        return pull_image
    if name == "push_image":
        from rootless.registry.push import push_image

        return push_image
    raise AttributeError(name)
