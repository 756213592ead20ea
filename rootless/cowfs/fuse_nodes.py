"""The kernel's node IDs for the fuse driver: each names a union path.

The kernel counts its references to a node (each LOOKUP, create or
READDIRPLUS entry adds one; FORGET takes them back); a node lives until its
count is zero. Renames move nodes with their paths; unlink orphans a node
(its path is gone, but open files keep being served through their handles).
"""

from __future__ import annotations

import errno

ROOT = 1


class NodeTable:
    def __init__(self) -> None:
        self.paths: dict[int, str | None] = {ROOT: "/"}   # node -> path (None: unlinked)
        self.ids: dict[str, int] = {"/": ROOT}
        self.lookups: dict[int, int] = {ROOT: 1}
        self.next_id = ROOT + 1

    def path(self, node: int) -> str:
        path = self.paths.get(node)
        if path is None:
            raise OSError(errno.ENOENT, "stale node")
        return path

    def child(self, node: int, name: str) -> str:
        parent = self.path(node)
        return f"/{name}" if parent == "/" else f"{parent}/{name}"

    def remember(self, path: str) -> int:
        """The node of PATH, counting one more kernel reference to it."""
        node = self.ids.get(path)
        if node is None:
            node = self.ids[path] = self.next_id
            self.next_id += 1
            self.paths[node] = path
            self.lookups[node] = 1
        else:
            self.lookups[node] += 1
        return node

    def forget(self, node: int, count: int) -> None:
        left = self.lookups.get(node, 0) - count
        if left > 0 or node == ROOT:
            self.lookups[node] = max(left, 1)
            return
        self.lookups.pop(node, None)
        path = self.paths.pop(node, None)
        if path is not None and self.ids.get(path) == node:
            del self.ids[path]

    def orphan(self, path: str) -> None:
        node = self.ids.pop(path, None)
        if node is not None:
            self.paths[node] = None

    def moved(self, old: str, new: str) -> None:
        """OLD (and everything under it) is now NEW; what NEW named is orphaned."""
        self.orphan(new)
        prefix = old + "/"
        for path in [p for p in self.ids if p == old or p.startswith(prefix)]:
            node = self.ids.pop(path)
            moved = new + path[len(old):]
            self.orphan(moved)
            self.ids[moved] = node
            self.paths[node] = moved
