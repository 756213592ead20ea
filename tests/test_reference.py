"""Docker's reference normalisation, case by case."""

from __future__ import annotations

import pytest

from rootless.errors import ReferenceError_
from rootless.reference import ImageReference, is_image_id_prefix

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "full", "familiar"), [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("user/app/sub:v1", "docker.io/user/app/sub:v1", "user/app/sub:v1"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/app:1", "localhost:5000/app:1", "localhost:5000/app:1"),
    ("registry.example:5000/app:1", "registry.example:5000/app:1",
     "registry.example:5000/app:1"),
    ("quay.io/team/tool", "quay.io/team/tool:latest", "quay.io/team/tool:latest"),
    ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
    (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}", f"busybox:1@{DIGEST}"),
    ("a__b-c---d/x_y.z", "docker.io/a__b-c---d/x_y.z:latest", "a__b-c---d/x_y.z:latest"),
    ("app:V1.0_rc-2", "docker.io/library/app:V1.0_rc-2", "app:V1.0_rc-2"),
])
def test_normalises_like_docker(text: str, full: str, familiar: str) -> None:
    ref = ImageReference.parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar
    assert ImageReference.parse(str(ref)) == ref


def test_parts() -> None:
    ref = ImageReference.parse("registry.example:5000/team/app:1.0")
    assert (ref.domain, ref.repository, ref.tag, ref.digest) == (
        "registry.example:5000", "team/app", "1.0", None)
    assert ref.name == "registry.example:5000/team/app"
    assert ref.familiar_name == "registry.example:5000/team/app"
    by_digest = ImageReference.parse(f"app@{DIGEST}")
    assert by_digest.tag is None and by_digest.digest == DIGEST


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty"),
    ("Busybox", "must be lowercase"),
    ("busy box", "not a valid image name"),
    ("bad!name", "not a valid image name"),
    ("-app", "not a valid image name"),
    ("app.", "not a valid image name"),
    ("app:", "invalid tag"),
    ("app:-x", "invalid tag"),
    ("app:" + "x" * 129, "invalid tag"),
    ("app@sha256:abc", "invalid digest"),
    ("app@sha256:" + "a" * 63 + "g", "invalid digest"),
    ("a" * 64, "64-byte hexadecimal"),
    (" busybox", "whitespace"),
    ("x/" * 130 + "y", "255 characters"),
    ("re$gistry.io:5000/app", "invalid registry"),
])
def test_rejects_invalid(text: str, says: str) -> None:
    with pytest.raises(ReferenceError_) as err:
        ImageReference.parse(text)
    assert says in str(err.value)
    assert "\n" not in str(err.value)


def test_with_tag_and_digest() -> None:
    ref = ImageReference.parse("busybox")
    assert str(ref.with_tag("1")) == "docker.io/library/busybox:1"
    assert ref.with_digest(DIGEST).familiar == f"busybox@{DIGEST}"
    with pytest.raises(ReferenceError_):
        ref.with_tag("bad tag")


@pytest.mark.parametrize(("text", "expected"), [
    ("abc123", True), ("sha256:abc", True), ("a" * 64, True), ("a" * 65, False),
    ("xyz", False), ("", False), ("ABC", False),
])
def test_image_id_prefix(text: str, expected: bool) -> None:
    assert is_image_id_prefix(text) is expected
