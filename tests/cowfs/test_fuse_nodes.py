"""The fuse driver's node table: kernel references, renames and unlinks."""

from __future__ import annotations

import errno

import pytest

from rootless.cowfs.fuse_nodes import ROOT, NodeTable


def test_a_node_lives_until_the_kernel_forgets_every_reference() -> None:
    table = NodeTable()
    node = table.remember("/etc")
    assert table.remember("/etc") == node and table.child(node, "passwd") == "/etc/passwd"
    table.forget(node, 1)
    assert table.path(node) == "/etc"
    table.forget(node, 1)
    with pytest.raises(OSError) as caught:
        table.path(node)
    assert caught.value.errno == errno.ENOENT
    assert table.remember("/etc") != node  # a new node: IDs are never reused


def test_the_root_is_never_forgotten() -> None:
    table = NodeTable()
    table.forget(ROOT, 5)
    assert table.path(ROOT) == "/" and table.child(ROOT, "bin") == "/bin"


def test_a_rename_moves_the_subtree_and_orphans_what_it_replaced() -> None:
    table = NodeTable()
    directory, inner, replaced = (table.remember(p) for p in ("/a", "/a/b/c", "/z"))
    table.moved("/a", "/z")
    assert (table.path(directory), table.path(inner)) == ("/z", "/z/b/c")
    assert table.paths[replaced] is None
    assert table.remember("/a") not in (directory, inner)


def test_unlink_orphans_the_node_but_keeps_its_count() -> None:
    table = NodeTable()
    node = table.remember("/tmp/f")
    table.orphan("/tmp/f")
    assert table.paths[node] is None and table.lookups[node] == 1
    assert table.remember("/tmp/f") != node
    table.forget(node, 1)
    assert node not in table.paths
