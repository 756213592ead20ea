from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from rootless.errors import StoreError
from rootless.oci.digest import sha256_of
from rootless.oci.model import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    canonical_json,
    format_time,
    parse_time,
)

D1 = sha256_of(b"one")
D2 = sha256_of(b"two")


def test_canonical_json_is_sorted_and_compact() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": "é"}]}) == \
        '{"a":[1,{"c":"é","d":2}],"b":1}'.encode()


def test_descriptor_round_trip() -> None:
    d = Descriptor("application/x", D1, 3, {"k": "v"}, {"os": "linux"})
    assert Descriptor.from_json(d.to_json()) == d
    with pytest.raises(StoreError, match="size"):
        Descriptor.from_json({"mediaType": "x", "digest": D1, "size": -1})
    with pytest.raises(StoreError, match="digest"):
        Descriptor.from_json({"mediaType": "x", "size": 1})


def test_built_manifest_parses_back() -> None:
    raw = Manifest.build(Descriptor(OCI_CONFIG, D1, 3), [Descriptor("l", D2, 3)])
    m = Manifest.parse(raw)
    assert m.media_type == OCI_MANIFEST and m.config.digest == D1
    assert [d.digest for d in m.layers] == [D2]
    assert m.digest == sha256_of(raw)


def test_docker_schema2_manifest_keeps_its_bytes() -> None:
    raw = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": D1, "size": 3},
        "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": D2, "size": 3}],
    }, indent=3).encode()
    m = Manifest.parse(raw)
    assert m.media_type == DOCKER_MANIFEST and m.raw == raw and m.digest == sha256_of(raw)


@pytest.mark.parametrize(("raw", "says"), [
    (b"not json", "not valid JSON"),
    (b"[]", "not a JSON object"),
    (b'{"schemaVersion": 1, "config": {}}', "schemaVersion"),
    (b'{"schemaVersion": 2, "manifests": []}', "image index"),
    (b'{"schemaVersion": 2, "mediaType": "text/plain"}', "media type"),
])
def test_bad_manifests(raw: bytes, says: str) -> None:
    with pytest.raises(StoreError, match=says):
        Manifest.parse(raw)


def test_index_round_trip() -> None:
    raw = Index.build([Descriptor(OCI_MANIFEST, D1, 3, {"a": "b"})])
    assert Index.parse(raw).manifests[0].annotations == {"a": "b"}


def test_image_config_view() -> None:
    raw = canonical_json({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05.123456789Z",
        "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": [D1]},
        "history": [{"created_by": "x", "empty_layer": True}, {"comment": "c"}],
    })
    config = ImageConfig.parse(raw)
    assert config.diff_ids == (D1,)
    assert config.container_config == {"Cmd": ["sh"]}
    assert config.created == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert [h.empty_layer for h in config.history] == [True, False]
    with pytest.raises(StoreError, match="rootfs"):
        ImageConfig.parse(b'{"rootfs": 3}')


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2024-01-02T03:04:05.5+00:00", datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
    ("garbage", None), (None, None), ("", None),
])
def test_parse_time(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


def test_format_time() -> None:
    assert format_time(datetime(2024, 1, 2, tzinfo=UTC)) == "2024-01-02T00:00:00Z"
