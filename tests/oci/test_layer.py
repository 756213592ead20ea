"""rootless.oci.layer: the names callers import, kept while the work lives in layer_*."""

from __future__ import annotations

import rootless.oci.layer as layer
from rootless.oci import layer_diff, layer_extract, layer_ondisk


def test_every_public_name_is_the_one_of_its_module() -> None:
    homes = (layer_ondisk, layer_extract, layer_diff)
    for name in layer.__all__:
        assert any(getattr(home, name, None) is getattr(layer, name) for home in homes), name
    # What the cowfs drivers import from here.
    for name in ("OPAQUE_XATTR", "PRIVATE_XATTR_PREFIXES", "Override", "Presented",
                 "has_device_records", "is_opaque", "is_whiteout", "make_opaque",
                 "make_whiteout", "owner_writable_mode", "presented", "read_link_owner",
                 "read_override", "write_device_record", "write_link_owner", "write_override",
                 "extract", "diff", "source_date_epoch", "OPAQUE_NAME", "WHITEOUT_PREFIX"):
        assert name in layer.__all__


def test_the_on_disk_form_does_not_load_tarfile() -> None:
    """The mount drivers import layer_ondisk; tar code stays off their path."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, rootless.oci.layer_ondisk; "
                          "print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert "rootless.oci.layer_ondisk" in out
    assert not {"tarfile", "gzip", "rootless.oci.layer_extract"} & set(out)
