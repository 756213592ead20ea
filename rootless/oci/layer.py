"""OCI layer tars ⇄ unpacked layer directories: the names callers import.

Three modules, one job each:

* ``layer_ondisk``: the on-disk form shared by every cowfs driver (whiteouts
  as 0:0 character devices, ``user.overlay.opaque``, ownership and device
  records in ``user.rootless.*`` xattrs) and ``presented``, what a file looks
  like through it;
* ``layer_extract``: a layer tar (plain, gzip, zstd) into that form, its
  diff_id verified on the way;
* ``layer_diff``: an upper directory back into an OCI layer tar.
"""

from __future__ import annotations

from rootless.oci.layer_diff import diff, source_date_epoch
from rootless.oci.layer_extract import extract
from rootless.oci.layer_ondisk import (
    DEVICES_XATTR,
    LINK_OWNER_PREFIX,
    OPAQUE_NAME,
    OPAQUE_XATTR,
    OVERRIDE_XATTR,
    PRIVATE_XATTR_PREFIXES,
    STASHED_XATTR_PREFIX,
    WHITEOUT_PREFIX,
    Override,
    Presented,
    clear_opaque,
    has_device_records,
    is_opaque,
    is_whiteout,
    make_opaque,
    make_whiteout,
    owner_writable_mode,
    presented,
    read_link_owner,
    read_override,
    write_device_record,
    write_link_owner,
    write_override,
)

__all__ = [
    "DEVICES_XATTR",
    "LINK_OWNER_PREFIX",
    "OPAQUE_NAME",
    "OPAQUE_XATTR",
    "OVERRIDE_XATTR",
    "PRIVATE_XATTR_PREFIXES",
    "STASHED_XATTR_PREFIX",
    "WHITEOUT_PREFIX",
    "Override",
    "Presented",
    "clear_opaque",
    "diff",
    "extract",
    "has_device_records",
    "is_opaque",
    "is_whiteout",
    "make_opaque",
    "make_whiteout",
    "owner_writable_mode",
    "presented",
    "read_link_owner",
    "read_override",
    "source_date_epoch",
    "write_device_record",
    "write_link_owner",
    "write_override",
]
