"""The FUSE wire format: struct sizes of <linux/fuse.h> and the name encodings."""

from __future__ import annotations

import stat

from rootless.cowfs import fuse_kernel as k


def test_struct_sizes_match_the_kernel_abi() -> None:
    sizes = {k.IN_HEADER: 40, k.OUT_HEADER: 16, k.ATTR: 88, k.INIT_OUT: 64,
             k.KSTATFS: 80, k.SETATTR_IN: 88, k.DIRENT: 24, k.OPEN_OUT: 16}
    assert {s.format: s.size for s in sizes} == {s.format: n for s, n in sizes.items()}
    assert k.ENTRY_HEAD.size + k.ATTR.size == 128       # struct fuse_entry_out
    assert k.ATTR_OUT_HEAD.size + k.ATTR.size == 104    # struct fuse_attr_out


def test_dirents_are_padded_to_eight_bytes() -> None:
    tail, name = k.dirent_parts(b"abc", stat.S_IFDIR)
    record = k.DIRENT_HEAD.pack(7, 3) + tail + name
    assert len(record) == 32 and record.endswith(b"abc\0\0\0\0\0")
    assert k.DIRENT.unpack_from(record) == (7, 3, 3, stat.S_IFDIR >> 12)


def test_names_keep_bytes_that_are_not_utf8() -> None:
    assert k.cstring(memoryview(b"caf\xe9\0junk")) == "caf\udce9"
    assert k.two_cstrings(memoryview(b"old\0new\0")) == ("old", "new")
